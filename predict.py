# Predict gender, article type and colour of any product photos with a trained checkpoint:
#   python predict.py --checkpoint checkpoints/RUN/best.pth photos/ shirt.png --output predictions.csv
#   find photos -name '*.jpg' | python predict.py --checkpoint checkpoints/RUN/best.pth --files-from - --output p.csv
#   python predict.py --checkpoint checkpoints/RUN/best.pth --export model.onnx
# Prints the top-k classes of each head with their probabilities for every picture; --output
# writes one row per picture (.csv or .json); --export writes an ONNX model for serving, with a
# JSON file beside it (model.json) holding the label names and the preprocessing.
#
# Any picture can be given, not only the catalog's 60x80 JPEGs: each one is brought to the model's
# input exactly as training does it (dataset.load_image). The EXIF rotation of phone photos is
# applied, transparent pixels are put on white, any mode (grayscale, palette, CMYK, RGBA) becomes
# RGB, and the picture is scaled (Lanczos) to fit in 60x80 (width x height) with its aspect ratio
# kept, centred, and padded with white like the catalog's background. So a 1800x2400 catalog
# image shrinks to exactly 60x80, and a 224x224 crop becomes 60x60 with 10 white rows above and
# below. A file that cannot be read gets an error in its row and the others go on.
if __name__ == '__main__':  # first: a Ctrl-C during the imports below (seconds) is one line too
    import cli
    cli.quiet_ctrl_c_while_starting()
    cli.check_working_folder()

import argparse
import codecs
import csv
import json
import math
import os
import re
import shlex
import sys
import unicodedata
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError, features

from allocator import keep_freed_memory
from atomic import (absolute_path, atomic_open, check_writable_file, json_value, name_pattern,
                    remove_left_temporaries, through_link)
from augment import prepare_batch
from checkpoint import answers_not_numbers, model_from_checkpoint
from catalog import PICTURE_FORMATS, UNREADABLE, beginning_of, format_counts, not_an_image_file, resolved_folder
from cli import (UserError, add_debug_flag, as_printed, counted, device_name, files_first_from_here, first_few,
                 one_line, path_name, pick_device, positive_int, printable, progress_bar, run_cli, shell_quoted, shown)
from dataset import HEADS, TITLES, decoding_workers, load_image
from split_data import first_row

# Per head: the top-1 label and probability, then all top-k as "label:prob;label:prob".
CSV_HEADER = ['image', *(f'{head}{suffix}' for head in HEADS for suffix in ('', '_prob', '_topk')), 'error']
JSON_KEYS = {'image', *HEADS, 'error'}  # of each record write_json writes
BROKEN_LINK, NO_SUCH_FILE = 'a link that leads to no file', 'no such file'
# What a folder's pictures are named: every ending Pillow registers for a format photos come in, where
# this Pillow reads it, as a picture named on the command line is read (AVIF's, from phones and browsers,
# .apng, and JPEG 2000's .jp2, .j2k, .jpx and others were passed over unsaid). Pillow registers AVIF's
# only where it reads AVIF; JPEG 2000's always, but reads them only with its codec.
PHOTO_FORMATS = ('JPEG', 'PNG', 'BMP', 'GIF', 'WEBP', 'TIFF', 'AVIF', 'JPEG2000')
READ_HERE = [kind for kind in PHOTO_FORMATS if kind in PICTURE_FORMATS
             and (kind != 'JPEG2000' or features.check_codec('jpg_2000'))]
IMAGE_EXTENSIONS = tuple(ending for _, ending in sorted((READ_HERE.index(kind), ending) for ending, kind
                                                        in Image.registered_extensions().items() if kind in READ_HERE))
# Photos in a format this Pillow does not read: a folder's are passed over, but counted in a note (an
# iPhone's photos are HEIC, which Pillow reads only with a plugin; a folder of them and of its PNG
# screenshots gave '12 of 12 images predicted', the HEIC ones unsaid). JPEG XL's likewise, AVIF's
# and JPEG 2000's where this Pillow lacks their codecs.
UNREAD_PHOTO_EXTENSIONS = tuple(ending for ending in ('.heic', '.heif', '.hif', '.jxl', '.avif', '.avifs', '.jp2',
                                                      '.j2k', '.jpx') if ending not in IMAGE_EXTENSIONS)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Predict gender, article type and colour of '
                                                 'product photos, or export the model to ONNX', allow_abbrev=False)
    parser.add_argument('images', nargs='*', type=path_name, metavar='IMAGE_OR_FOLDER',
                        help='image files, and folders searched recursively for '
                             f'{", ".join(IMAGE_EXTENSIONS)} files '
                             '(default: none; needed unless --files-from or --export is given)')
    parser.add_argument('--files-from', default=None, metavar='LIST', action=OneList,
                        help='also predict the images and folders named in this text file, one path a '
                             'line, relative paths taken from the current folder; - reads the list '
                             'from the standard input (default: none)')
    parser.add_argument('--checkpoint', required=True, help='checkpoint written by train.py (required)')
    parser.add_argument('--top-k', type=positive_int, default=3,
                        help='classes shown per head, most likely first (default: 3)')
    parser.add_argument('--output', default=None,
                        help='also write one row per image to this .csv or .json file (default: none)')
    parser.add_argument('--export', default=None, metavar='MODEL.onnx',
                        help='write the model as ONNX, and MODEL.json beside it with the label names '
                             'and the preprocessing (default: no export)')
    parser.add_argument('--batch-size', type=positive_int, default=64,
                        help='images per forward pass; memory grows with it (default: 64)')
    parser.add_argument('--device', type=device_name, default='auto', help='cuda, cuda:N, mps or cpu (default: auto)')
    parser.add_argument('--attributes_file', type=path_name, default=None,
                        help="styles.csv, needed only for the original tutorial's bare state_dict "
                             'checkpoints (default: the label names stored in the checkpoint)')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if not args.images and args.files_from is None and args.export is None:
        parser.error('give images or folders to predict, --files-from LIST, or --export MODEL.onnx')
    if args.output is not None and not args.images and args.files_from is None:
        parser.error('--output needs images or folders to predict')
    if args.files_from == '':  # `--files-from "$LIST"` with LIST unset is refused, not ignored
        parser.error("--files-from '': no file name; give a list such as files.txt, or - for the standard input")
    if args.export is not None and os.path.basename(args.export).lower() in ('', '.onnx'):
        # '' too: `--export "$MODEL"` with MODEL unset is refused, not ignored
        parser.error(f'--export {shell_quoted(args.export)}: no file name; give one such as model.onnx')
    if args.export is not None and not args.export.lower().endswith('.onnx'):
        parser.error(f'--export {args.export}: the name must end in .onnx (the .json is written beside it)')
    return args


def images_in_folder(folder, unreadable, passed_over):
    """The image files under folder; the folders the system would not list go to unreadable, and
    the photos in a format this Pillow does not read (UNREAD_PHOTO_EXTENSIONS) to passed_over."""
    found, seen = [], set()
    for parent, folders, files in os.walk(folder, onerror=unreadable.append, followlinks=True):
        # Linked folders are walked too, but each real folder once: a link to a folder above
        # this one would never end, and one linked twice would give each picture twice.
        real = os.path.realpath(parent)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        # Hidden names are skipped: macOS leaves a '._name.jpg' beside every picture it copies to
        # a non-Mac disk, and those are not images.
        folders[:] = sorted(name for name in folders if not name.startswith('.'))  # the first name wins
        found += [os.path.join(parent, name) for name in files
                  if not name.startswith('.') and name.lower().endswith(IMAGE_EXTENSIONS)]
        passed_over += [os.path.join(parent, name) for name in files
                        if not name.startswith('.') and name.lower().endswith(UNREAD_PHOTO_EXTENSIONS)]
    return sorted(found)


def path_problem(path):
    try:
        os.stat(path)
    except FileNotFoundError:
        target = link_target(path)
        return f'{BROKEN_LINK}: {target}' if target else 'no such file or folder'
    except OSError as error:  # a folder on the way that may not be entered, say
        return error.strerror or str(error)
    return None


def link_target(path):
    """Where a link at path leads, as a line shows it, or None where path is no link."""
    try:
        return one_line(os.readlink(path))
    except OSError:  # no link there (or nothing at all)
        return None


def as_listed(path):
    """A path of a list written on Windows (PowerShell's `Get-ChildItem -Recurse -Name` writes
    sub\\a.jpg) with / for \\, where no file has the name as written: a backslash is a letter in a
    Linux name, and one that has it is taken as it is."""
    if '\\' in path and not os.path.lexists(path):
        forward = path.replace('\\', '/')
        if os.path.lexists(forward):
            return forward
    return path


class OneList(argparse.Action):
    """--files-from, refused where given again: the second list replaced the first, whose pictures
    were left out without a word, where the help says "also predict"."""

    def __call__(self, parser, namespace, value, option_string=None):
        first = getattr(namespace, self.dest)
        if first is not None:
            first, value = shell_quoted(first), shell_quoted(value)
            parser.error(f'{option_string} given twice: one list is read, and {first} would be left out for {value}; '
                         f'give one list (cat {first} {value} > both.txt)')
        setattr(namespace, self.dest, value)


def read_list(name):
    """The paths a --files-from list names, one a line, as the command line would give them: any
    bytes a Linux file name may hold; blank lines, Windows line ends and a UTF-8 mark left out, and
    a UTF-16 list (Windows PowerShell 5.1's `>` writes one) read as such."""
    try:
        if name == '-':
            if sys.stdin is None:  # started with it closed (`<&-`)
                raise UserError('--files-from -: there is no standard input to read the list from')
            if sys.stdin.isatty():  # not a pipe: the script would seem to hang
                print('reading the paths from the terminal, one a line; end the list with Ctrl-D', file=sys.stderr)
            data = read_text(sys.stdin.buffer, name)
        else:
            with open(name, 'rb') as f:
                data = read_text(f, name)
    except OSError as error:
        raise UserError(f'--files-from {name}: could not read it ({error.strerror or error})') from error
    # splitlines: \n, \r\n and \r, and for bytes only those
    paths = [os.fsdecode(line) for line in data.removeprefix(codecs.BOM_UTF8).splitlines() if line.strip()]
    if not paths:
        raise UserError(f'--files-from {list_name(name)}: names no images or folders (it is empty)')
    return list(map(as_listed, paths))


def read_text(f, name):
    """The bytes of a list, in UTF-8. A file with NUL bytes is refused from its first 64 KiB on:
    no path holds one, and a picture given by mistake (or /dev/zero) is not read to its end."""
    data = f.read(65536)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # PowerShell 5.1's `>`
        return (data + f.read()).decode('utf-16', 'replace').encode('utf-8')
    if b'\0' not in data:
        data += f.read()
    if b'\0' in data:
        raise UserError(f'--files-from {list_name(name)}: holds NUL bytes, so it is no list of paths, one a line '
                        'in UTF-8, or in UTF-16 with its byte-order mark (a list written by find -print0 is not '
                        'taken: leave out -print0)')
    return data


def list_name(name):
    return 'the standard input' if name == '-' else name


def named(path, limit=100):
    """A path in a message: on one line, escaped as in the table, and cut short (a list that is
    no list may hold a line of thousands of bytes). One that begins or ends with a space is quoted,
    as in the table: 'a.jpg ' from a list was said to be missing as a.jpg, which is there."""
    text = quoted_if_spaced(one_line(path))
    return text if len(text) <= limit else text[:limit - 3] + '...'


def quoted_if_spaced(text):
    # As ls does: 'a.jpg ' and a.jpg, both there, look the same unquoted.
    return shlex.quote(text) if text != text.strip() else text


def there_without_its_spaces(path):
    """Whether path, not there, names a file there once the spaces around it are left out."""
    return path != path.strip() != '' and os.path.exists(path.strip())


def report_missing(listed, name, others):
    """Says which listed paths are not there. A list of many pictures may name a few that are gone,
    as the catalog's styles.csv does: those get their row with the error, and the others go on."""
    gone = [path for path in listed if path_problem(path)]
    missing = {}  # each once, as each gets one row: gone.jpg listed twice, or as ./gone.jpg
    for path in gone:
        missing.setdefault(resolved_folder(path), path)
    missing = list(missing.values())
    if gone and len(gone) == len(listed) and not others:  # the wrong folder, not a few pictures gone
        first = missing[0]
        trimmed = f'; {named(first.strip())}, without the spaces, is there' if there_without_its_spaces(first) else ''
        raise UserError(f'--files-from {list_name(name)}: none of its {counted(len(missing), "path")} is there, '
                        f'e.g. {named(first)} ({path_problem(first)}{trimmed}); relative paths are taken from the '
                        f'current folder, {os.getcwd()}')
    if missing:
        examples = first_few(list(map(named, missing)))
        spaced = sum(map(there_without_its_spaces, missing))
        hint = ('' if not spaced else '; without the spaces around it, it names a file that is there'
                if len(missing) == 1 else f'; {spaced:,} of them {"names" if spaced == 1 else "name"} a file that is '
                'there without the spaces around them')
        print(f'note: {counted(len(missing), "path")} in {list_name(name)} {"is" if len(missing) == 1 else "are"} '
              f'not there ({examples}); {"its row says" if len(missing) == 1 else "their rows say"} so{hint}')


def find_images(paths, listed=(), list_file=None):
    """The image files to predict: files as given, folders walked recursively, in sorted order.
    A path on the command line that is not there is refused; listed ones are a --files-from list's."""
    problems = [f'{named(path)} ({problem})' for path in paths if (problem := path_problem(path))]
    if problems:
        raise UserError(f'cannot predict {", ".join(problems)}')
    if listed:
        report_missing(listed, list_file, others=paths)
    found, empty, unreadable, passed_over = [], [], [], []
    for path in [*paths, *listed]:
        # A file named on the command line or in a list is tried whatever its extension: it was
        # asked for; one that is not there is kept, so that its row says so.
        in_path = images_in_folder(path, unreadable, passed_over) if os.path.isdir(path) else [path]
        found += in_path
        if not in_path and path not in [error.filename for error in unreadable]:
            empty.append(path)
    left_out = [f'{named(error.filename)} ({error.strerror})' for error in unreadable]
    passed_over = once_each(sorted(passed_over))
    if not found:
        in_list = [f'the {counted(len(listed), "folder")} in {list_name(list_file)}'] if listed else []
        searched = [*map(named, paths), *in_list]
        raise UserError(f'no image files ({", ".join(IMAGE_EXTENSIONS)}) found in {", ".join(searched)} '
                        "(names that start with '.' are passed over)"
                        + (f'; could not read {", ".join(left_out)}' if left_out else '')
                        + (f'; {unread_photos(passed_over)}' if passed_over else ''))
    if passed_over:
        print(f'note: {unread_photos(passed_over)}')
    empty = once_each(empty)  # a folder named twice (dd, ./dd) noted once, as its pictures are predicted once
    for folder in empty[:10]:  # a list may name thousands
        print(f'note: no image files in {named(folder)}')
    if len(empty) > 10:
        print(f'note: and {counted(len(empty) - 10, "more folder")} without image files')
    for folder in left_out:
        print(f'note: could not read {folder}; its pictures are left out')
    return once_each(found)


def once_each(paths):
    # A file named twice, or under two spellings (dd/a.jpg, ./dd/a.jpg), is predicted once.
    unique = {}
    for path in paths:
        unique.setdefault(resolved_folder(path), path)  # '..' after a link, as the system takes it
    return list(unique.values())


def unread_photos(paths):
    """What a note says of the photos of a folder in a format this Pillow does not read."""
    endings = Counter(os.path.splitext(path)[1].lower() for path in paths)
    return (f'passed over {counted(len(paths), "photo")} in a format this Pillow does not read '
            f'({format_counts(endings)}), e.g. {named(paths[0])}; convert them to JPEG or PNG to predict them')


def output_format(path):
    if not path or os.path.basename(path).lower() in ('.csv', '.json'):
        raise UserError(f'--output {shell_quoted(path)}: no file name; give one such as predictions.csv')
    extension = os.path.splitext(path)[1].lower()
    if extension not in ('.csv', '.json'):
        raise UserError(f'--output {path}: the name must end in .csv or .json (that picks the format)')
    return extension[1:]


def holds_predictions(path, kind):
    """Whether the file at path is empty or begins as this script's output of that kind (csv or
    json) does: one that a new run may replace. Any other is the user's (a split, a run's metrics)."""
    row = first_row(path)
    if row is None:  # empty, or blank lines alone, or the UTF-8 mark an editor saves: as split_data.py
        return True  # writes over such a train.csv (it was refused, "it is blank")
    if kind == 'csv':
        return row == CSV_HEADER
    # Read whole: a file of the user's may begin as ours does ([{"image": ...), annotations say.
    records = json_value(path, encoding='utf-8-sig')  # ours, saved again by an editor
    return isinstance(records, list) and all(isinstance(r, dict) and set(r) == JSON_KEYS for r in records)


def check_output(path, export):
    """--output's name and folder, before any work; never the file --export writes beside its model."""
    if path and os.path.isdir(path):  # said first: a folder's name rarely ends in .csv
        raise UserError(f'--output {path}: is a folder; name the file to write in it, e.g. '
                        f'{os.path.join(path, "predictions.csv")}')
    if export:  # first: a model already there, read as predictions, told less
        from export_onnx import sidecar_path
        if os.path.realpath(path) == os.path.realpath(sidecar_path(export)):
            raise UserError(f'--output {path}: --export {export} writes its label names and preprocessing '
                            'there; give --output another name')
        if os.path.realpath(path) == os.path.realpath(export):  # through a link: p.csv -> model.onnx, or back
            raise UserError(f'--output {path}: leads to the same file as --export {export}, which the model is '
                            'written to; give --output another name')
    kind = output_format(path)
    if os.path.isfile(path) and not holds_predictions(path, kind):
        raise UserError(f'--output {path}: holds no predictions of predict.py ({beginning_of(path)}), '
                        'and would be replaced; move it away or give another name')
    written = through_link(path, f'--output {path}')
    if os.path.exists(written) and not os.path.isfile(written):  # a rename would put a file in its place
        raise UserError(f'--output {path}: ' + (f'a link to {written}, which' if written != path else 'it')
                        + ' is no regular file (a device or a pipe); name a file')
    check_writable_file(written, f'--output {path}')
    folder = os.path.dirname(absolute_path(written))
    remove_left_temporaries(folder, name_pattern(os.path.basename(written)), 'predict.py')


def read_error(path, error):
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return 'empty file (0 bytes)'
    if isinstance(error, FileNotFoundError):  # listed, or gone since the folder was walked
        target = link_target(path)
        return f'{BROKEN_LINK} ({target})' if target else NO_SUCH_FILE
    if isinstance(error, OSError) and error.errno is not None:  # permissions, a vanished file
        return f'could not open it ({error.strerror})'
    if isinstance(error, UnidentifiedImageError):
        return 'not an image, or a format Pillow cannot read'
    if isinstance(error, Image.DecompressionBombError):
        return (f'too large to open safely (more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, '
                "Pillow's limit against decompression bombs); scale it down first")
    text = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return f'truncated or corrupt image ({text})'


def read_image(path):
    """(uint8 array 80x60x3 as the model sees it, None), or (None, why it could not be read)."""
    if os.path.exists(path) and not os.path.isfile(path):
        return None, not_an_image_file(path)
    try:
        return np.asarray(load_image(path), dtype=np.uint8), None
    except UNREADABLE as error:
        return None, read_error(path, error)


def read_batches(paths, batch_size, pool):
    # The next batch is decoded in the thread pool while the model runs on this one; decoding a
    # full-size JPEG takes longer than the forward pass.
    def submit(start):
        return [pool.submit(read_image, path) for path in paths[start:start + batch_size]]

    pending = submit(0)
    for start in range(0, len(paths), batch_size):
        ahead = submit(start + batch_size)
        yield paths[start:start + batch_size], [job.result() for job in pending]
        pending = ahead


def top_k(model, arrays, attributes, k, device):
    """For each image, {head: [(label, probability), ...]} with the k most likely classes first."""
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(device)
    output = model(prepare_batch(images))  # the same normalisation as val_transform
    results = [{} for _ in arrays]
    for head in HEADS:
        labels = attributes.labels(head)
        probs, ids = output[head].float().softmax(dim=1).topk(min(k, len(labels)), dim=1)
        for result, p, i in zip(results, probs.tolist(), ids.tolist()):
            result[head] = [(labels[c], prob) for c, prob in zip(i, p)]
    return results


def answered(heads):
    """Whether the top-k of each head are numbers: softmax gives NaN for all of a picture's classes
    where any of its outputs is NaN or infinite."""
    return not any(math.isnan(probability) for top in heads.values() for _, probability in top)


def predict_all(model, attributes, paths, args, device):
    """One row per path, in order: {'image', 'error', 'gender', 'article', 'color'}."""
    rows = []
    bar = progress_bar(total=len(paths), unit='image', desc='predicting', disable=len(paths) <= args.batch_size)
    pool = ThreadPoolExecutor(decoding_workers())
    try:
        with torch.inference_mode():
            for batch_paths, decoded in read_batches(paths, args.batch_size, pool):
                good = [array for array, error in decoded if error is None]
                results = iter(top_k(model, good, attributes, args.top_k, device) if good else [])
                for path, (array, error) in zip(batch_paths, decoded):
                    heads = next(results) if error is None else {head: [] for head in HEADS}
                    if not answered(heads):  # else printed as 'nan%', and the first class named
                        raise answers_not_numbers(args.checkpoint, f'for {shown(path)}')
                    # shown: a name that is not UTF-8 written as \xNN, which a CSV or terminal takes
                    rows.append({'image': shown(path), 'error': error, **heads})
                bar.update(len(batch_paths))
    finally:
        # On a Ctrl-C or a kill too: the decodes queued ahead (a batch of full-size photos, tens of
        # seconds) are dropped, not waited for; only those under way are.
        pool.shutdown(cancel_futures=True)
        bar.close()  # now, not at the exit: the bar would come after the line saying why it stopped
    return rows


def table_cell(top, rank, width):
    # 'Label   71.2%': the label padded to the column, then the probability in 6 characters.
    if rank >= len(top):  # a head with fewer classes than --top-k
        return ' ' * width
    label, prob = top[rank]
    return f'{padded(table_label(label), width - 7)} {prob:6.1%}'


def table_label(label):
    # A class named by an empty cell of styles.csv (the tutorial's vocabulary keeps it, and its
    # place in the weights) as '', not a blank in the table; its escapes as the names' are.
    return "''" if not label else table_name(label)


def format_table(rows):
    """An aligned table: one line per rank, the image named on its first line."""
    width = {head: max([len(TITLES[head])] + [columns(table_label(label)) + 7
                                              for row in rows for label, _ in row[head]])
             for head in HEADS}
    names = [table_name(row['image']) for row in rows]
    name_width = max(len('image'), *map(columns, names))
    titles = '  '.join(f'{TITLES[head]:<{width[head]}}' for head in HEADS)
    lines = [f'{"image":<{name_width}}  {titles}'.rstrip()]
    for row, shown_name in zip(rows, names):
        if row['error']:
            lines.append(f'{padded(shown_name, name_width)}  error: {row["error"]}')
            continue
        for rank in range(max(len(row[head]) for head in HEADS)):
            name = shown_name if rank == 0 else ''
            cells = '  '.join(table_cell(row[head], rank, width[head]) for head in HEADS)
            lines.append(f'{padded(name, name_width)}  {cells}'.rstrip())
    return lines


def columns(text):
    """The terminal columns text takes: two for a wide character (Chinese, Japanese, Korean), none
    for a combining one (an accent written apart), one for the others."""
    return sum(0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in 'WF' else 1
               for char in text)


def table_name(name):
    # é as \xe9 on an ASCII terminal; a name that begins or ends with a space quoted
    return quoted_if_spaced(as_printed(printable(name)))


def padded(text, width):
    return text + ' ' * (width - columns(text))


def write_csv(rows, f):
    writer = csv.writer(f)
    writer.writerow(CSV_HEADER)
    for row in rows:
        fields = [row['image']]
        for head in HEADS:
            top = row[head]
            fields += [top[0][0], f'{top[0][1]:.6f}'] if top else ['', '']
            fields.append(';'.join(f'{label}:{prob:.6f}' for label, prob in top))
        writer.writerow(fields + [row['error'] or ''])


def write_json(rows, f):
    records = [{'image': row['image'],
                **{head: [{'label': label, 'probability': round(prob, 6)} for label, prob in row[head]]
                   for head in HEADS},
                'error': row['error']} for row in rows]
    json.dump(records, f, indent=2)


def write_output(rows, path):
    written = through_link(path, f'--output {path}')  # a link named stays a link
    folder = os.path.dirname(absolute_path(written))
    try:
        os.makedirs(folder, exist_ok=True)
        with atomic_open(written, newline='', encoding='utf-8') as f:
            (write_csv if output_format(path) == 'csv' else write_json)(rows, f)
    except OSError as error:
        raise UserError(f'--output {path}: could not write it ({error.strerror or error})') from error


def export_model(model, attributes, path, checkpoint):
    # Imported here so that onnx and onnxscript are needed only by those who export.
    from export_onnx import export_onnx
    sidecar = export_onnx(model, attributes, path, checkpoint)
    print(f'wrote {one_line(path)} and {one_line(sidecar)}')


def reason(error):
    """A row's error without its detail, to count the rows by: 'truncated or corrupt image' for
    'truncated or corrupt image (broken data stream)', 'not an image' for 'not an image, or ...'."""
    return re.split(r' \(|, ', error, maxsplit=1)[0]


def check_some_readable(rows):
    bad = [row for row in rows if row['error']]
    if len(bad) < len(rows):
        return
    listed = '; '.join(f'{named(row["image"])} ({row["error"]})' for row in bad[:5])
    more = f'; and {len(bad) - 5} more' if len(bad) > 5 else ''
    raise UserError(f'none of the image files could be read ({counted(len(bad), "file")}): {listed}{more}')


def main(argv=None):
    args = parse_args(argv)
    if args.output is not None:
        # The file is then its work, as test.py's and split_data.py's are: a reader that stopped
        # early (`| head -1` after a note, `2>&1 | head -1` on the progress bar) stopped the run
        # before --output was written, status 1 and no word. Its lines now go nowhere, and it is written.
        files_first_from_here()
        # The output name and the paths are checked before the model is loaded: a typo fails at
        # once. '' too: `--output "$OUT"` with OUT unset is refused, not ignored.
        check_output(args.output, args.export)
    if args.export is not None:
        from export_onnx import check_export  # onnx and its folder: needed only by those who export
        check_export(args.export)
    listed = read_list(args.files_from) if args.files_from is not None else []
    paths = find_images(args.images, listed, args.files_from) if args.images or listed else []
    device = pick_device(args.device)  # one not there: refused before any file is written
    model, attributes, state = model_from_checkpoint(args.checkpoint, args.attributes_file)
    model.eval()
    if args.export is not None:
        export_model(model, attributes, args.export, args.checkpoint)
    if not paths:
        return

    # fp32 on every device: the forward pass on 60x80 pictures is cheap next to decoding them, and
    # the probabilities then match the exported ONNX model's (on a GPU up to TF32 rounding, which
    # PyTorch's cuDNN convolutions use by default).
    keep_freed_memory(device)  # on a CPU: each batch reuses the last one's memory (allocator.py)
    model = model.folded().to(device)  # batch norms folded into the convolutions: faster
    print(f'device: {device}; checkpoint {one_line(args.checkpoint)}'
          + (f' (epoch {state["epoch"]})' if state.get('epoch') else '') + f'; {counted(len(paths), "image")}')
    rows = predict_all(model, attributes, paths, args, device)
    check_some_readable(rows)
    not_written = None
    if args.output is not None:  # before the table: a reader of it that stops early (`| head`) loses nothing
        try:
            write_output(rows, args.output)
        except UserError as error:  # a disk that filled during the run: the table still keeps them
            not_written = error
    print('\n'.join(format_table(rows)))
    why = Counter(reason(row['error']) for row in rows if row['error'])
    bad = sum(why.values())
    summary = (f'{len(rows) - bad:,} of {counted(len(rows), "image")} predicted'
               + (f', {bad:,} unreadable: {format_counts(why)}' if bad else ''))
    print(summary + (f'; wrote {one_line(args.output)}' if args.output is not None and not_written is None else ''))
    if not_written is not None:
        raise not_written


if __name__ == '__main__':
    run_cli(main, memory_flag='--batch-size')
