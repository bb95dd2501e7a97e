# Step 1 of the tutorial: pick the usable rows of the catalog and split them into train.csv and
# val.csv (columns image_path,gender,articleType,baseColour).
if __name__ in ('__main__', '__mp_main__'):  # first: a Ctrl-C during the imports below (seconds) is one line too
    import cli
    cli.quiet_ctrl_c_while_starting(__name__)

import argparse
import codecs
import contextlib
import csv
import hashlib
import io
import json
import os
import random
import re
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from decimal import Decimal

from atomic import (absolute_path, atomic_open, check_no_folder_in_the_way, check_writable_folder, flush_to_disk,
                    folder_locked, kept_aside, put_back_left_asides, remove_left_temporaries,
                    renamed_together)
from catalog import (BEGINNING, HOW_TO_FETCH, IMAGE_SIZE, LINK_TO_NOTHING, NO_IMAGE_FILE, SPLIT_COLUMNS, WIDE_BOMS,
                     csv_rows, beginning_of, describe_download, format_counts, image_problem, labels_apart_in_case,
                     nul_safe, read_styles, with_nul_bytes)
from cli import (NO_SUCH_FILE, UserError, add_debug_flag, check_working_folder_for, counted, ctrl_c_held, first_few,
                 one_line, path_name, positive_int, printable, progress_bar, quoted_path, reach_problem, run_cli,
                 seed_number, shown, usable_cores, what_is_there, worker_processes)
from sample_catalog import cut_short

FIELDNAMES = list(SPLIT_COLUMNS)
MAX_IMAGES = 40000  # the tutorial's


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Split the fashion catalog into train.csv and val.csv',
                                     allow_abbrev=False)
    parser.add_argument('--input', type=path_name, default='fashion-product-images',
                        help='catalog folder holding styles.csv and images/ (default: fashion-product-images)')
    parser.add_argument('--output', default='.',
                        help='folder to write train.csv and val.csv to (default: .)')
    parser.add_argument('--max-images', type=positive_int, default=None,
                        help=f'use at most this many images, as the tutorial does (default: {MAX_IMAGES})')
    parser.add_argument('--val-fraction', type=float, default=0.2,
                        help='share of the images that goes to val.csv (default: 0.2)')
    parser.add_argument('--seed', type=seed_number, default=42, help='shuffling seed (default: 42)')
    parser.add_argument('--any-size', action='store_true',
                        help='keep images of any size; they are fitted into 60x80 with white '
                             'padding when loaded (default: off, only 60x80 as in the tutorial)')
    parser.add_argument('--any-mode', action='store_true',
                        help='keep grayscale, RGBA, CMYK and palette images; they are converted '
                             'to RGB when loaded (default: off, only RGB as in the tutorial)')
    parser.add_argument('--no-replace', action='store_true',
                        help='refuse to write over a train.csv or val.csv in --output that holds another split '
                             '(default: off, replaced with a note)')
    parser.add_argument('--workers', type=positive_int, default=usable_cores(),
                        help='processes that check the images (default: %(default)s, the cores this process may use)')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if not 0 < args.val_fraction < 1:
        parser.error(f'--val-fraction {args.val_fraction} must be above 0 and below 1')
    # A cap given is noted where fewer pictures are there; the tutorial's is not, as on any catalog
    # smaller than the real one (the demo's sample) it named a flag the user never gave.
    args.cap_given, args.max_images = args.max_images is not None, args.max_images or MAX_IMAGES
    return args


def _check(job):
    path, any_size, any_mode = job
    return image_problem(path, IMAGE_SIZE, any_size, any_mode)


def _check_batch(jobs):
    return [_check(job) for job in jobs]


CHECKED_AT_ONCE = 256  # images a worker is sent at a time: one message each would cost more than the check


def leave_stops_to_this_process():
    """An image-checking worker's initializer. A Ctrl-C reaches every process of the terminal's group,
    as `timeout`'s SIGTERM does: raised in a worker, it could land inside the pool's queue with its
    lock taken, and the other worker, and split_data.py, then waited for that lock for good. A Ctrl-C
    is left to the main process, which stops the workers; a SIGTERM or a SIGHUP ends a worker at once,
    as the system's default does. One ignored (nohup) stays so."""
    for number, action in ((signal.SIGINT, signal.SIG_IGN), (signal.SIGTERM, signal.SIG_DFL),
                           (signal.SIGHUP, signal.SIG_DFL)):
        if signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, action)


def keep_usable(styles, image_folder, args, skipped):
    """The rows whose image exists, decodes, and is 60x80 RGB, and the ids of those that had no
    image file; the others are counted in skipped."""
    paths = [os.path.join(image_folder, f'{style.id}.jpg') for style in styles]
    jobs = [(path, args.any_size, args.any_mode) for path in paths]
    batches = [jobs[start:start + CHECKED_AT_ONCE] for start in range(0, len(jobs), CHECKED_AT_ONCE)]
    # No more workers than batches to send: forked, all start at once, and --workers 400 started
    # 400 processes (3.5 s, not 0.2) to check 200 images.
    workers = max(1, min(args.workers, len(batches)))
    pool = ProcessPoolExecutor(workers, mp_context=worker_processes(workers), initializer=leave_stops_to_this_process)
    try:
        with ctrl_c_held():  # forked as the first batch is sent, a worker holds a stop until its initializer runs
            checking = [pool.submit(_check_batch, batch) for batch in batches]
        problems = []
        with progress_bar(total=len(jobs), desc='checking images', unit='img') as bar:
            for batch, checked in zip(batches, checking):
                try:
                    problems += checked.result()
                except BrokenProcessPool:  # a traceback, which said no more
                    raise UserError('a process checking the images ended unexpectedly (killed, by a kill or by the '
                                    'system as memory ran out); nothing was written: run split_data.py again') from None
                bar.update(len(batch))
    finally:
        # After a stop, the batches not begun are dropped by the pool's own thread: cancelled from
        # here (as pool.map does), Python 3.11's thread failed on them with a traceback, marking
        # them broken where a SIGTERM had ended a worker.
        pool.shutdown(cancel_futures=True)
    kept, missing = [], []
    for style, path, problem in zip(styles, paths, problems):
        if problem:
            skipped[problem] += 1
            if problem == NO_IMAGE_FILE:
                missing.append(style.id)
        else:
            kept.append((path, style))
    return kept, missing


def no_images_left(skipped, args, missing_hint=None):
    hint = []
    if any(reason.startswith('not 60x80') for reason in skipped) and not args.any_size:
        hint.append('--any-size keeps images of other sizes (fitted into 60x80 with white padding)')
    if 'not RGB' in skipped and not args.any_mode:
        hint.append('--any-mode keeps grayscale and other non-RGB images (converted to RGB)')
    if missing_hint:
        hint.append(missing_hint)
    if skipped[LINK_TO_NOTHING]:
        hint.append(fetching_hint(skipped))
    return f'no usable image left in {args.input}: skipped {format_counts(skipped)}' + ''.join(
        f'. {line}' for line in hint) + '.'


def missing_pictures_hint(image_folder, missing, none_kept):
    """Where rows had no image file (their ids: missing), what to do, or None: images/ holds their
    pictures under other names, or one folder deeper; else, where no row was kept, where they were
    looked for. Pictures of other ids (a logo, say) are no reason to rename any."""
    if not missing:
        return None
    renamed = named_otherwise(image_folder, missing)
    if renamed:  # a copy that upper-cased the names, a program's .jpeg, a hidden extension doubled
        id_, name = next(iter(renamed.items()))
        return (f'images/ holds the pictures of {len(renamed):,} of them under other names, such as {one_line(name)} '
                f'for {id_}.jpg; rename them to ID.jpg, the name they are looked for by'
                + ('' if name.lower().endswith(('.jpg', '.jpeg')) else
                   ' (a picture is read by its content, whatever its name ends in)'))
    deeper, count = folders_deeper(image_folder, missing)
    if deeper:  # an archive unpacked into a folder of its own name (images/images/), or sorted into several
        return (f'{folders_named(deeper)} {"holds" if len(deeper) == 1 else "hold"} the pictures of {count:,} of '
                'them, one folder deeper than they are looked for; move them up into images/')
    if none_kept:
        first = os.path.join(image_folder, f'{missing[0]}.jpg')
        return (f'The pictures are looked for as images/ID.jpg, {one_line(first)} for the first row: none of these '
                f'{len(missing):,} is there, under that name or another')
    return None


def fetching_hint(skipped):
    count = skipped[LINK_TO_NOTHING]
    return (f'{counted(count, "picture")} in images/ {"is a link" if count == 1 else "are links"} to no file, as '
            f'git-annex and DVC leave those whose contents were not fetched: fetch them {HOW_TO_FETCH}')


# Names of pictures that are not ID.jpg: a copy that upper-cased them, a program's .jpeg, or
# pictures saved in another format (PNG, say), which are read all the same once renamed.
OTHER_PICTURE_NAMES = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff')


def named_otherwise(folder, missing):
    """The pictures in folder of the ids in missing under names other than ID.jpg (10001.JPG,
    10001.jpeg, 10001.png, 10001.jpg.jpg, 0010001.jpg; or 10001.jpg for the id 0010001), by id."""
    wanted = {id_.lstrip('0'): id_ for id_ in missing}  # not int(): an id may have thousands of digits
    found = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                id_ = wanted.get(entry.name.split('.', 1)[0].lstrip('0'))
                if (id_ is not None and id_ not in found and entry.name != f'{id_}.jpg'
                        and entry.name.lower().endswith(OTHER_PICTURE_NAMES) and entry.is_file()):
                    found[id_] = entry.name
    except OSError:
        return {}
    return found


def folders_named(names):
    """images/A/, images/A/ and images/B/, ... or the first three and how many there are."""
    shown = [f'images/{one_line(name)}/' for name in names]
    if len(shown) > 3:
        return f'{first_few(shown)} ({len(shown)} folders)'
    return ' and '.join(filter(None, [', '.join(shown[:-1]), shown[-1]]))


def folders_deeper(folder, missing):
    """The folders in folder holding pictures of the ids in missing as ID.jpg, those with the most
    first, and how many ids' pictures they hold together; ([], 0) where none does. All of them: a
    catalog sorted into folders by category (images/Apparel/, images/Footwear/) was named by its
    largest folder alone, the others found one run at a time."""
    names, found, counts = {f'{id_}.jpg' for id_ in missing}, set(), {}
    try:
        with os.scandir(folder) as entries:
            inside = [entry.name for entry in entries if entry.is_dir()]
        for name in inside:
            with os.scandir(os.path.join(folder, name)) as entries:
                here = {entry.name for entry in entries if entry.name in names}
            if here:
                counts[name] = len(here)
                found |= here
    except OSError:
        pass
    return sorted(counts, key=lambda name: (-counts[name], name)), len(found)


def in_another_case(folder, name):
    """An entry of folder named as name in another case (Images for images), or None."""
    try:
        return next((other for other in os.listdir(folder) if other.lower() == name.lower() and other != name), None)
    except OSError:
        return None


def folder_in_csv(images, folder):
    """The pictures' folder as a split in folder names it: relative to folder, so the CSVs and the
    catalog can be used from any working directory, and moved together. By name, so that links
    into the project (a catalog kept on another disk) stay links; but where a link on the way would
    take that path elsewhere (the system follows '..' from the folder a link points to), between
    the folders the links point to."""
    rel = os.path.relpath(os.path.abspath(images), folder)
    followed = os.path.join(folder, rel)
    if not (os.path.isdir(followed) and os.path.samefile(followed, images)):
        rel = os.path.relpath(os.path.realpath(images), os.path.realpath(folder))
    if any(end in rel for end in '\r\n'):  # the row would run over two lines
        raise UserError(f'{printable(images)}: a folder on the way to the pictures has a line break in its name, '
                        'which a CSV row cannot hold; rename it')
    if any('\udc80' <= char <= '\udcff' for char in rel):  # bytes Python kept as they were
        raise UserError(f'{shown(images)}: a folder on the way to the pictures has a name that is not valid UTF-8, '
                        'which the CSVs are; rename it')
    return rel.replace(os.sep, '/')


def existing_part(folder):
    """folder, or where it is still to be made, the nearest folder above it that is there: from
    there, the pictures' path is by their names, as the split's will be (from a folder that is not
    there, folder_in_csv takes the folders the links lead to, whose names may differ)."""
    existing = absolute_path(folder)
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    return existing


def write_rows(rows, f, folder):
    writer = csv.writer(f)
    writer.writerow(FIELDNAMES)
    folders = {}  # every picture is in images/: its path is worked out once, not for each row
    for image_path, style in rows:
        where, name = os.path.split(image_path)
        if where not in folders:
            folders[where] = folder_in_csv(where, folder)
        path = name if folders[where] == os.curdir else f'{folders[where]}/{name}'
        writer.writerow([path, style.gender, style.articleType, style.baseColour])


def split_paths(folder):
    return os.path.join(folder, 'train.csv'), os.path.join(folder, 'val.csv')


class OtherSplitThere(UserError):
    """train.csv or val.csv holds another split, which --no-replace keeps."""

    def __init__(self, paths):
        self.paths = paths
        super().__init__(f'{" and ".join(paths)}: another split is there, which --no-replace keeps; '
                         'move it away or give another --output')


def save_split(train, val, folder, stops_held, replace=True, keep_old=True):
    """Writes train.csv and val.csv into folder; returns their paths, and those of the two that
    held another split (over which replace=False writes nothing; keep_old=False keeps no copy of).
    Once the new files are written (the old split is then kept, and the new renamed in), a stop (a
    Ctrl-C, a SIGTERM) waits until the ExitStack stops_held ends."""
    # Another split_data.py writing into folder waits for this one (atomic.folder_locked): between
    # the renames of the one and the other, they left one's train.csv beside the other's val.csv.
    # Held for long, most likely by a demo.py (it holds its --work as it trains) or split_data.py on a slow disk.
    with folder_locked(folder, f'--output {folder}', holder='a demo.py or another split_data.py writing in it'):
        return save_split_locked(train, val, folder, stops_held, replace, keep_old)


def save_split_locked(train, val, folder, stops_held, replace, keep_old):
    # Both files change or neither (atomic.renamed_together): a run cut short (a Ctrl-C, a full
    # disk) leaves no new train.csv beside an old val.csv whose images it could share.
    paths, before = split_paths(folder), split_in(folder)
    moved = []
    with renamed_together() as together:
        files = []
        for rows, path in zip((train, val), paths):
            with atomic_open(path, newline='', encoding='utf-8', together=together) as f:
                write_rows(rows, f, absolute_path(folder))
                flush_to_disk(f)
            files.append(f.name)
        written = [lines_digest(name) for name in files]  # the bytes as written
        replaced = [path for path, old, new in zip(paths, before, written) if old not in (None, new)]
        if replaced and not replace:
            raise OtherSplitThere(replaced)  # the temporary files go, and the old ones stay
        # From here a stop waits for the old split's new names, the renames and the lines that say so
        # (the caller's): taken between them, it left the new split with the old one lost, or the old
        # train.csv kept beside the val.old.csv before it. Microseconds, but on a disk without hard
        # links, which copies the old files.
        stops_held.enter_context(ctrl_c_held())
        if replaced and keep_old:
            # Before the new split is renamed in: killed (kill -9) as they were renamed, it was lost,
            # only kept aside under temporary names, which the next run removed.
            moved = keep_old_split(folder, paths, before, written)
    return paths, replaced, moved


def keep_old_split(folder, paths, before, written):
    """The split at paths (its digests `before`) copied to train.old.csv and val.old.csv: edited by
    hand, it is the user's work, and a run trained on it needs its files to be scored or resumed.
    One kept there before moves to train.old.N.csv (keep_earlier_old): returns its names there."""
    asides = []
    try:
        for path, old, digest in zip(paths, old_split_paths(folder), before):
            asides.append(kept_aside(path, os.path.basename(old)) if digest is not None else None)
        moved = keep_earlier_old(folder, [before, written])
        for aside, old in zip(asides, old_split_paths(folder)):
            if aside is not None:
                os.replace(aside, old)
            elif os.path.lexists(old):  # no val.csv there, or an empty one: no older one is left for its pair
                os.remove(old)
        return moved
    finally:
        for aside in asides:
            if aside is not None and os.path.lexists(aside):
                os.remove(aside)


def keep_earlier_old(folder, splits_there):
    """The split kept as train.old.csv and val.old.csv, about to give those names to the one
    replaced now: moved to train.old.N.csv and val.old.N.csv (N the first number free), where it is
    not one of splits_there (the digests of the new split and of the one replaced: then nothing is
    lost). Returns the names it has now, [] where it was not moved."""
    olds = old_split_paths(folder)
    held = [lines_digest(path) if first_row(path) is not None else None for path in olds]
    if held == [None, None] or held in splits_there:
        return []
    moved = []
    for old, digest, new in zip(olds, held, earlier_split_paths(folder, first_free_number(folder))):
        if digest is not None:  # an empty one is no split, and goes as before
            os.replace(old, new)
            moved.append(new)
    return moved


def old_split_paths(folder):
    return os.path.join(folder, 'train.old.csv'), os.path.join(folder, 'val.old.csv')


def earlier_split_paths(folder, number):
    return os.path.join(folder, f'train.old.{number}.csv'), os.path.join(folder, f'val.old.{number}.csv')


def first_free_number(folder):
    number = 1
    while any(os.path.lexists(path) for path in earlier_split_paths(folder, number)):
        number += 1
    return number


def kept_splits(folder):
    """The splits split_data.py kept in folder, the latest first: train.old.csv and val.old.csv,
    then train.old.N.csv and val.old.N.csv, the highest N first."""
    numbers = set()
    with contextlib.suppress(OSError):  # no folder, or one that cannot be read: none kept there
        numbers = {int(found.group(1)) for found in map(re.compile(r'(?:train|val)\.old\.([0-9]+)\.csv').fullmatch,
                                                        os.listdir(folder)) if found}
    return [old_split_paths(folder)] + [earlier_split_paths(folder, n) for n in sorted(numbers, reverse=True)]


def split_digest(path, ordered=True):
    """The SHA-256 of a split's pictures and labels, which a checkpoint keeps to tell when the same
    name holds another split. Of each picture's path only its file name counts: the same seed
    splits into another folder as the same pictures, named from there (`../x/images/1.jpg`). Nor do
    line endings, the last line break and a byte-order mark: an editor, dos2unix or git may change
    those, and split_data.py writes the csv module's CRLF. ordered=False: nor does the order of the
    rows (a file sorted in a spreadsheet holds the same split)."""
    with open(path, 'rb') as f:
        return pictures_digest(f.read(), ordered)


def split_digests(path):
    """split_digest(path) and split_digest(path, ordered=False), from one reading of the file."""
    with open(path, 'rb') as f:
        rows = named_rows(f.read())
    return digest_of(rows), digest_of(in_any_order(rows))


def pictures_digest(data, ordered=True, legacy=False):
    """split_digest of a split's bytes. legacy: as checkpoints took it until 2026-12-07, which gave
    a split saved in UTF-16 or UTF-32, with blank lines or with spaces after its header's commas
    another digest than the same rows' (a run's own split saved again so was "other rows")."""
    rows = named_rows(data, legacy)
    return digest_of(rows if ordered else in_any_order(rows))


def named_rows(data, legacy=False):
    """A split's rows as the scripts read them (catalog.read_csv_rows: in any of their encodings,
    blank lines aside, each field without the spaces around it), each picture named by its file
    name alone, and of its columns only the split's, in split_data.py's order: a column added in a
    spreadsheet, or the columns moved, leave the pictures and labels the run read. A row of more
    fields than the header, which the scripts skip, keeps them."""
    if not legacy:
        try:
            header, rows = csv_rows('', data, SPLIT_COLUMNS, 'a split', notes=False)
        except UserError:  # no split the scripts read: its lines as they are will do
            return named_rows(data, legacy=True)
        places = [header.index(name) for name in FIELDNAMES]
        return [FIELDNAMES] + [picture_named([row[i].strip() if i < len(row) else '' for i in places]
                                             + row[len(header):]) for row in rows]
    text = data.decode('utf-8', 'surrogateescape').removeprefix('\ufeff')
    try:
        rows = list(with_nul_bytes(csv.reader(io.StringIO(nul_safe(text), newline='')), text))
    except csv.Error:  # a file the csv module cannot read: its lines will do
        rows = [[line] for line in text.splitlines()]
    header = [name.strip() for name in rows[0]] if rows else []
    if header != FIELDNAMES and set(FIELDNAMES) <= set(header):
        places = [header.index(name) for name in FIELDNAMES]
        rows = [FIELDNAMES] + [[row[i] if i < len(row) else '' for i in places] if row else row for row in rows[1:]]
    return [picture_named(row) if row else row for row in rows]


def picture_named(row):
    """row with its picture named by its file name alone."""
    return [row[0].replace('\\', '/').rsplit('/', 1)[-1], *row[1:]]


def in_any_order(rows):
    return rows[:1] + sorted(row for row in rows[1:] if row)  # the header first, blank lines aside


def digest_of(rows):
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def lines_digest(path):
    """The SHA-256 of a split's lines, its paths as written, line endings aside: within one folder,
    what tells another split, as pictures of another catalog under the same names (a copy of it
    resized, say) make another split."""
    with open(path, 'rb') as f:
        return rows_digest(f.read())


def rows_digest(data):
    """lines_digest of a split's bytes; what checkpoints kept before split_digest took only the
    pictures' names."""
    return hashlib.sha256(b'\n'.join(data.removeprefix(codecs.BOM_UTF8).splitlines())).hexdigest()


def check_only_splits_replaced(folder):
    """Before any work: a train.csv or val.csv in folder is a split, which the new one replaces
    (with a note), or empty. A file of that name that is no split is the user's, and stays. One with
    columns of the user's added, reordered or spaced (a spreadsheet's) is a split, as the scripts
    that read it take it: before, it was refused as none, and could not be kept as *.old.csv."""
    for path in split_paths(folder) + old_split_paths(folder):
        header = first_row(path)
        if header is not None and not set(FIELDNAMES) <= {name.strip() for name in header}:
            said = beginning_of(path)  # a picture's bytes were shown as characters
            said += f', not {",".join(FIELDNAMES)!r}' if said.startswith('its first line') else ''
            raise UserError(f'--output {folder}: {path} is not a split ({said}), and would be replaced; move it '
                            'away or give another --output')


def first_row(path):
    """The first row of the CSV file at path, as the scripts that read a split find it: after any
    blank lines, and in UTF-16 or UTF-32 where a byte-order mark says so (before, such a split was
    "not a split", its header shown as NUL bytes). None where there is no file, or no row in it:
    blank lines alone. One whose first 64 KiB are blank, and more, is no split either, [] (its
    first line ''), not taken for blank, and kept: a split may follow."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None
    with open(path, 'rb') as f:
        data = f.read(BEGINNING)  # not the whole of a large file that is no CSV
        more = bool(f.read(1))
    encoding = next((name for bom, name in WIDE_BOMS.items() if data.startswith(bom)), 'utf-8-sig')
    # incremental: a character cut at the end of what was read waits, and is not an error
    text = codecs.getincrementaldecoder(encoding)(errors='replace').decode(data)
    line = next((line for line in text.splitlines() if line.strip()), None)
    if line is None:
        return [] if more else None
    return next(with_nul_bytes(csv.reader([nul_safe(line)]), line), [])


def split_in(folder):
    """The digests of train.csv and val.csv in folder, None for one that is not there or empty (no
    rows a run could have trained on, and none to keep: `touch train.csv val.csv`, say): to tell the
    user when a new split replaces rows that a run may have trained on."""
    return [lines_digest(path) if first_row(path) is not None else None for path in split_paths(folder)]


def split(kept, args):
    # A real permutation: the original drew 40,000 indices *with* replacement
    # (np.random.choice(40000, 40000)), which duplicated images and leaked them into val.csv.
    rows = list(kept)
    random.Random(args.seed).shuffle(rows)
    rows = rows[:args.max_images]
    n_train = training_count(len(rows), args.val_fraction)
    return rows[:n_train], rows[n_train:]


def training_count(count, val_fraction):
    """How many of count pictures split() puts in train.csv: rounded half to even, as round() does
    (of 2 pictures, --val-fraction 0.25 keeps both for training)."""
    return round(count * (1 - val_fraction))


def both_sides_filled(count, val_fraction):
    return 0 < training_count(count, val_fraction) < count


# The --val-fractions a refused split is offered, as typed: hundredths, and below 0.01 and above
# 0.99 one digit more at a time, where even a share that small leaves a picture on each side.
SMALL_SHARES = [Decimal(digit).scaleb(-places) for places in range(3, 10) for digit in range(1, 10)]  # 0.001, ...
OFFERED_FRACTIONS = sorted([f'{share:f}' for share in SMALL_SHARES] + [f'{1 - share:f}' for share in SMALL_SHARES]
                           + [f'0.{hundredths:02}'.rstrip('0') for hundredths in range(1, 100)], key=Decimal)


def fractions_that_split(count):
    """The lowest and highest of OFFERED_FRACTIONS that leave at least one of count pictures on
    each side, or None. Every fraction between them does too: a higher one never leaves more for
    training."""
    fitting = [text for text in OFFERED_FRACTIONS if both_sides_filled(count, float(text))]
    return (fitting[0], fitting[-1]) if fitting else None


def what_splits(count, usable, args):
    """What to give where count pictures split with args.val_fraction leave a side empty (count is
    usable, at most --max-images), after the separator of the refusal that says it."""
    if count > 1:
        low, high = fractions_that_split(count)
        return f': give a --val-fraction from {low} to {high}'
    if usable < 2:
        return '; no --val-fraction splits 1 image: a split needs at least 2 usable pictures'
    enough = next((cap for cap in range(2, usable + 1) if both_sides_filled(cap, args.val_fraction)), None)
    if enough is not None:
        return f'; no --val-fraction splits 1 image: give --max-images {enough:,} or more'
    low, high = fractions_that_split(usable)
    return (f'; no --val-fraction splits 1 image: give --max-images {usable:,} with a --val-fraction from {low} '
            f'to {high}')


def not_a_file(path):
    if os.path.isdir(path):
        return 'a folder'
    return 'a link that leads to no file' if os.path.islink(path) else 'not a regular file (a pipe or a device)'


def check_output_names_a_folder(output):
    """--output is the folder train.csv and val.csv go to: one given as a file's name (--output
    train.csv, as train.py's --train-csv takes it) made a folder train.csv/ holding train.csv and
    val.csv. A folder of that name already there is the user's, and taken."""
    parent, name = os.path.split(os.path.normpath(output))
    if name.lower().endswith('.csv') and not os.path.lexists(output):
        raise UserError(f'--output {output}: names a CSV file, but is the folder to write train.csv and val.csv to; '
                        f'give that folder: --output {quoted_path(parent or os.curdir)}')


def main(argv=None, keep_old=True, cap_named='--max-images'):
    """keep_old=False: a split replaced is not kept as train.old.csv and val.old.csv (demo.py's own,
    of a sample catalog it has just drawn anew, whose pictures it no longer names). cap_named: the
    flag that gave --max-images, as the note on fewer pictures names it (demo.py's --images)."""
    args = parse_args(argv)
    check_working_folder_for(args.input, args.output)
    if os.path.isfile(args.input):
        raise UserError(f'--input {args.input}: a file; give the catalog\'s folder, which holds styles.csv and '
                        'images/' + (f' ({os.path.dirname(args.input) or "."})'
                                     if os.path.basename(args.input) == 'styles.csv' else ''))
    problem = reach_problem(args.input)
    if problem not in (None, NO_SUCH_FILE):  # a loop of links, say: the download advice would not help
        raise UserError(f'--input {args.input}: {problem}')
    if problem == NO_SUCH_FILE:  # a folder mistyped, or the dataset not unpacked yet: the folder named
        raise UserError(f'--input {args.input}: no such folder. ' + describe_download(args.input))
    drawing = cut_short(args.input)
    if drawing:  # its styles.csv, if any, does not label the pictures that are there
        raise UserError(f'--input {args.input}: {drawing}')
    styles_path = os.path.join(args.input, 'styles.csv')
    if not os.path.isfile(styles_path):
        if os.path.lexists(styles_path):  # there, but no file: the download advice would not help
            raise UserError(f'{styles_path}: {not_a_file(styles_path)}, where the catalog\'s labels are to be')
        raise UserError(f'{styles_path}: no such file. ' + describe_download(args.input))
    image_folder = os.path.join(args.input, 'images')
    if not os.path.isdir(image_folder):
        if os.path.lexists(image_folder):  # there, but no folder: the download advice would not help
            raise UserError(f'{image_folder}: {what_is_there(image_folder)}, not a folder, where the catalog\'s '
                            'pictures are to be')
        other = in_another_case(args.input, 'images')
        if other:
            raise UserError(f'{image_folder}: no such folder, but {os.path.join(args.input, other)} is there; the '
                            'pictures are looked for in images/, in lower case: rename it')
        raise UserError(f'{image_folder}: no such folder. ' + describe_download(args.input))

    check_output_names_a_folder(args.output)
    check_writable_folder(args.output, f'--output {args.output}')  # before the images are checked
    folder_in_csv(image_folder, existing_part(args.output))  # a name the CSVs cannot hold: said before the work too
    check_no_folder_in_the_way(args.output, r'(train|val)(\.old)?\.csv', f'--output {args.output}')
    check_only_splits_replaced(args.output)
    # First: a split_data.py killed between its renames left a new train.csv beside the old val.csv, whose
    # pictures it may share, and the old train.csv aside, which would be removed as half-written.
    put_back_left_asides(args.output, r'train\.csv|val\.csv', 'split_data.py', first='train.csv')
    remove_left_temporaries(args.output, r'(train|val)(\.old)?\.csv', 'split_data.py')
    styles, skipped = read_styles(styles_path)
    print(f'{styles_path}: {counted(len(styles) + sum(skipped.values()), "row")}, '
          f'{len(styles):,} with usable labels')
    apart = labels_apart_in_case(styles)
    if apart:  # a row or two typed by hand, say: a class of their own, which the model learns apart
        print(f'note: {styles_path}: labels that differ only in case or spacing, each learned as a class of its own: '
              f'{first_few(apart, sep="; ")}; spell each one way to learn it as one')
    kept, missing = keep_usable(styles, image_folder, args, skipped)
    hint = missing_pictures_hint(image_folder, missing, none_kept=not kept)
    if not kept:
        raise UserError(no_images_left(skipped, args, hint))
    print(f'kept {counted(len(kept), "row")}; skipped {sum(skipped.values()):,}: {format_counts(skipped)}')
    if hint:  # some of the pictures renamed, say: the rows of the others are kept, theirs skipped
        print(f'note: {counted(len(missing), "row")} had no image file. {hint}')
    if skipped[LINK_TO_NOTHING]:
        print(f'note: {fetching_hint(skipped)}')
    if args.cap_given and len(kept) < args.max_images:
        print(f'note: fewer usable images ({len(kept):,}) than {cap_named} ({args.max_images:,}); using all of them')

    train, val = split(kept, args)
    if not train or not val:
        raise UserError(f'{counted(len(train) + len(val), "image")} ({len(kept):,} usable in {args.input}, '
                        f'--max-images {args.max_images:,}) split with --val-fraction {args.val_fraction}: '
                        f'{len(train)} for training and {len(val)} for validation; each needs at least one'
                        + what_splits(len(train) + len(val), len(kept), args))
    os.makedirs(args.output, exist_ok=True)
    with contextlib.ExitStack() as stops_held:  # a stop once the files are renamed: taken after these lines
        (train_path, val_path), replaced, moved = save_split(train, val, args.output, stops_held,
                                                             not args.no_replace, keep_old)
        print(f'wrote {counted(len(train), "row")} to {train_path} and {counted(len(val), "row")} to {val_path}')
        if replaced:
            print(replaced_note(args.output, keep_old, moved))
    return {'train': len(train), 'val': len(val), 'skipped': skipped}


def replaced_note(folder, kept_old, moved=()):
    # Said now, not only when test.py or --resume refuses the new files (the checkpoint's split_digests).
    kept = [path for path in old_split_paths(folder) if os.path.isfile(path)] if kept_old else []
    note = (f'note: this replaced another split in {folder}' + (f', kept as {" and ".join(kept)}' if kept else '')
            + (f' (the split kept there before is now {" and ".join(moved)})' if moved else '')
            + ': a run trained on it cannot --resume on the new files (its validation pictures may now be in '
            'train.csv)')
    if len(kept) == 2:
        note += f', but can with --train-csv {quoted_path(kept[0])} --val-csv {quoted_path(kept[1])}'
    return note


if __name__ == '__main__':
    run_cli(main, files_first=True)
