# The whole pipeline in one command: split_data.py, train.py, test.py.
#   python demo.py
# With the real dataset in fashion-product-images/ it runs the tutorial's job (50 epochs).
# Without it, it first draws a built-in sample catalog in the same layout (sample_catalog.py)
# and trains a few epochs on it, so a newcomer sees every step and every output in minutes.
if __name__ in ('__main__', '__mp_main__'):  # first: a Ctrl-C during the imports below (seconds) is one line too
    import cli
    cli.quiet_ctrl_c_while_starting(__name__)
    cli.check_working_folder()

import argparse
import csv
import hashlib
import importlib.util
import json
import os
import time

import split_data
import train
from atomic import absolute_path, atomic_open, check_writable_folder, folder_locked, folder_made, json_object
from cli import (PROJECT, UserError, add_debug_flag, counted, device_name, path_name, pick_device, positive_int,
                 quoted_path, reach_problem, run_cli)
from dataset import HEADS, TITLES
from runs import check_log_folder, check_run_folder, run_folder, tensorboard_installed
from sample_catalog import (MARK, cut_short, files_in, holds_theirs, image_count, is_sample_catalog, make_catalog,
                            own_mark, sample_catalog_size)


DATA = 'fashion-product-images'  # where the tutorial has the dataset unpacked
SAMPLE_IMAGES = 3000  # --images of the sample catalog, by default


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Run split, train and test in one go', allow_abbrev=False)
    parser.add_argument('--data', type=path_name, default=None,
                        help='the real catalog, a folder with styles.csv and images/, or a sample catalog of '
                             'sample_catalog.py\'s (default: '
                             f'{DATA} where it holds styles.csv, else a built-in sample catalog)')
    parser.add_argument('--work', default='demo',
                        help='folder for the sample catalog, splits, checkpoints and results (default: demo)')
    parser.add_argument('--images', type=image_count, default=None,
                        help='pictures in the sample catalog; on the real data, how many of its pictures are split '
                             '(default: 3000 drawn; on the real data the tutorial\'s 40,000)')
    parser.add_argument('--epochs', type=positive_int, default=None,
                        help='training epochs (default: 8 on the sample catalog, 50 on the real data)')
    parser.add_argument('--batch-size', type=positive_int, default=None,
                        help='images per step (default: 32 on the sample catalog, 16 on the real data)')
    parser.add_argument('--device', type=device_name, default='auto', help='cuda, cuda:N, mps or cpu (default: auto)')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def check_data_given(folder):
    # A --data given is the dataset meant: mistyped, or its styles.csv left out of the unpacking, it
    # was taken for no dataset, and the demo trained its sample instead, saying so in a line among
    # many. Left out, the demo uses the dataset where the tutorial has it, and a sample where none is.
    styles = os.path.join(folder, 'styles.csv')
    unfinished = cut_short(folder) if os.path.isdir(folder) else None
    if unfinished:  # "holds no styles.csv", it said, or to remove it "to draw the sample again", which it does not
        raise UserError(f'--data {folder}: {unfinished}')
    problem = (reach_problem(folder, 'no such folder') or (not os.path.isdir(folder) and 'not a folder')
               or reach_problem(styles, 'holds no styles.csv') or (not os.path.isfile(styles) and 'its styles.csv is '
                                                                  'not a file'))
    if not problem and images_missing(folder):  # not "leave --data out": it may be the default one
        raise half_unpacked(f'--data {folder}', folder)
    if problem:
        raise UserError(f'--data {folder}: {problem}; give the folder that holds the dataset\'s styles.csv and '
                        'images/, or leave --data out to run on a built-in sample catalog')


def check_data_found(folder):
    # Half unpacked: its styles.csv taken for the dataset, the demo failed at step 2, with the advice
    # to run the demo, which failed the same way.
    if has_real_dataset(folder) and images_missing(folder):
        raise half_unpacked(folder, folder, f', or move {folder} away to run the demo on a built-in sample catalog')


def images_missing(folder):
    """Whether folder has nothing by the name images/: no Images/ either, nor a file or a link to
    nothing, each of which split_data.py names as what it is."""
    return not os.path.lexists(os.path.join(folder, 'images')) and not split_data.in_another_case(folder, 'images')


def half_unpacked(named, folder, more=''):
    return UserError(f'{named}: holds a styles.csv but no images/ folder (the dataset half unpacked?); unpack its '
                     f'images/ there too (see {guide()}){more}')


def has_real_dataset(folder):
    # A sample catalog drawn into it (`--work .` draws into ./fashion-product-images, the default
    # --data) is not the real dataset: the tutorial's 50 epochs on it would be a mistake.
    return os.path.isfile(os.path.join(folder, 'styles.csv')) and not is_sample_catalog(folder)


def sample_catalog(args):
    """The sample catalog's folder in --work, drawn if need be; and whether it was drawn now, when
    a split of it in --work is of pictures that are gone or changed (an earlier one's, of another
    --images or cut short)."""
    root = os.path.join(args.work, 'fashion-product-images')
    mark = own_mark(root)  # read once: it hashes the catalog's styles.csv
    drawn, complete = sample_catalog_size(root, mark), os.path.isfile(os.path.join(root, 'styles.csv'))
    # Ours to draw over: a sample catalog, or a drawing cut short over nothing of the user's (its
    # styles.csv, if any, the earlier catalog's).
    ours = bool(mark) and not holds_theirs(root, mark)
    if complete and not ours:
        if mark:
            raise drawn_over(root, f'--work {args.work}')
        # The real one, maybe (`python proj/demo.py --work proj` from another folder): the demo
        # would train its short sample recipe on it, saying it used a sample.
        raise UserError(f'--work {args.work}: {root} holds a catalog that is not a sample one (the real dataset?); '
                        f'to run the tutorial\'s job on it, pass --data {root}, or give another --work')
    # Drawn as the demo draws it, not by sample_catalog.py with other flags
    if complete and drawn == args.images and mark.get('seed') == 0 and mark.get('quirks') is False:
        print(f'using the sample catalog already in {root}')
        return root, False
    started = time.perf_counter()
    try:
        # Over a sample catalog of another --images, or one cut short; never over anything else.
        make_catalog(root, n_images=args.images, seed=0, overwrite=ours)
    except ValueError as error:
        raise UserError(f'--work {args.work}: {error}; move it away or give another --work') from error
    print(f'drew {args.images:,} sample pictures into {root} in {time.perf_counter() - started:.0f}s')
    return root, True


def drawn_over(root, named):
    """The error for a catalog folder with a styles.csv beside a drawing over it cut short
    (sample_catalog.py --overwrite over a dataset, say): not a sample catalog, nor the dataset it
    was; passing it as --data finds the mark again."""
    mark = os.path.join(root, MARK)
    return UserError(f'{named}: {root} holds a styles.csv beside a sample catalog\'s drawing that was cut short '
                     f'({mark} says unfinished); if it is a dataset of yours, some of its pictures may be drawn ones: '
                     f'put them back, remove {mark} and pass --data {root}; or remove '
                     f'{os.path.join(root, "styles.csv")} to draw the sample again')


def split_elsewhere(work, catalog, real):
    """The first file of the split in work that names pictures of another catalog than `catalog`,
    by its first row (or cannot be read as a split): the user's maybe, which the demo keeps. So is
    one of the pictures in the sample catalog's folder where no sample catalog is (the tutorial's
    paths, of a dataset since moved away): the demo, drawing its catalog there, wrote over it."""
    for path in split_data.split_paths(work):
        if split_data.first_row(path) is None:  # none there, or empty or blank lines alone: no split (written over)
            continue
        try:
            with open(path, newline='', encoding='utf-8') as f:
                rows = csv.reader(f)
                next(rows)  # the header
                picture = os.path.realpath(os.path.join(work, next(rows)[0]))
        except FileNotFoundError:
            continue
        # ValueError: a NUL byte in the path, which os.path.realpath refuses
        except (OSError, UnicodeDecodeError, csv.Error, StopIteration, IndexError, ValueError):
            return path
        if os.path.dirname(os.path.dirname(picture)) != os.path.realpath(catalog):  # CATALOG/images/ID.jpg
            return path
        if not (real or is_sample_catalog(catalog)):  # a sample catalog cut short is one too (marked)
            return path
    return None


# In --work: the digests of the split the demo wrote there, which tell it from one of the user's.
SPLIT_MARK = 'demo_split.json'


def own_split(work):
    """Whether train.csv and val.csv in work are the split the demo wrote there, as SPLIT_MARK says:
    the demo's to replace, where an earlier demo of another --images or catalog left it. Before,
    it was refused as maybe the user's (`demo.py --images 2000 --epochs 1`, then `demo.py`)."""
    mark = json_object(os.path.join(work, SPLIT_MARK)) or {}
    try:
        digests = split_data.split_in(work)
    except OSError:  # one not to be read: not known to be the demo's
        return False
    return None not in digests and mark.get('digests') == digests


def mark_own_split(work, catalog):
    with atomic_open(os.path.join(work, SPLIT_MARK), encoding='utf-8') as f:
        json.dump({'written by': 'demo.py', 'digests': split_data.split_in(work), 'catalog': labels_digest(catalog)}, f)


def labels_digest(catalog):
    with open(os.path.join(catalog, 'styles.csv'), 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def split_of_another_drawing(work, catalog):
    """Whether the demo's own split in work was made of another catalog than the one there now: one
    drawn anew by an earlier demo stopped before it split it (a Ctrl-C at step 2). Kept as *.old.csv
    and offered to test.py, it named pictures that are gone, or now others with other labels."""
    made_of = (json_object(os.path.join(work, SPLIT_MARK)) or {}).get('catalog')
    return made_of is not None and made_of != labels_digest(catalog)  # a mark of before 2026-12-06 does not say


def split_of_pictures_in(work, catalog):
    """Whether the split in work names pictures of catalog, by the first row of its train.csv. The
    demo's own split of the real data, or of a sample catalog given as --data, names pictures that
    a sample catalog drawn anew in --work leaves where they are: it was dropped with that one's."""
    try:
        with open(split_data.split_paths(work)[0], newline='', encoding='utf-8') as f:
            rows = csv.reader(f)
            next(rows)  # the header
            picture = os.path.realpath(os.path.join(work, next(rows)[0]))
    # ValueError: a NUL byte in the path, which os.path.realpath refuses
    except (OSError, UnicodeDecodeError, csv.Error, StopIteration, IndexError, ValueError):
        return True  # not known to be of another catalog
    return os.path.dirname(os.path.dirname(picture)) == os.path.realpath(catalog)  # CATALOG/images/ID.jpg


def kept_split(work, paths):
    return UserError(f'--work {work}: {" and ".join(paths)}: another split than the demo\'s is there, maybe '
                     'yours, which the demo does not write over; move it away or give another --work')


def load_test_script():
    # Loaded by path: a plain `import test` would only find test.py because it happens to hide
    # Python's own `test` package on sys.path.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'test.py')
    spec = importlib.util.spec_from_file_location('fashion_test_script', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RESULTS = 'eval-last'  # test.py's folder in the run's, as test.py names it for last.pth


def train_command(args, catalog, real, epochs, batch_size):
    """train.py's command line, made before any work: the folders it names are checked then."""
    train_csv, val_csv = split_data.split_paths(args.work)
    # The real job is the tutorial's recipe; the short sample run anneals its learning rate
    # (cosine) so that its last epoch, not a lucky one, is the good one.
    recipe = [] if real else ['--schedule', 'cosine', '--val-every', '1']
    # TensorBoard's, where it is installed: else train.py notes that the --logs given go unwritten
    logs = [f'--logs={os.path.join(args.work, "logs")}'] if tensorboard_installed() else []
    # Paths as --flag=PATH: a --work of -demo/ would read as a flag after a bare --flag.
    return [f'--attributes_file={os.path.join(catalog, "styles.csv")}', f'--train-csv={train_csv}',
            f'--val-csv={val_csv}', '--epochs', str(epochs), '--batch-size', str(batch_size), '--device', args.device,
            f'--checkpoints={os.path.join(args.work, "checkpoints")}'] + logs + recipe


def check_outputs(training, test_script, work):
    """Before any work: the folders train.py and test.py will write in, by their own checks, so that
    a file in the way is found now, not after the catalog is drawn and split (minutes). Named by
    --work, which holds them: the demo has no --checkpoints or --logs."""
    settings = train.parse_args(training)
    run_dir = run_folder(settings, None)  # train.py names its own by the clock too, seconds later
    check_run_folder(run_dir, settings, None, f'--work {work}')
    check_log_folder(settings, run_dir, None, f'--work {work}')
    results = os.path.join(run_dir, RESULTS)
    test_script.check_output_folder(results, f'--output {results}')


def no_dataset_line(data):
    """What the demo found in --data, where no real dataset is; run from another folder (the
    default --data is named from the working one), where the project's own holds the dataset."""
    if is_sample_catalog(data):
        found = 'only a sample catalog'
    else:  # pictures without their labels are no dataset either, but the user may think them one
        found = 'pictures but no styles.csv' if files_in(os.path.join(data, 'images')) else 'no dataset'
    beside = os.path.join(PROJECT, DATA)
    if has_real_dataset(beside) and not images_missing(beside) and not same_folder(beside, data):
        hint = f' (the one in {beside} is used with --data {quoted_path(beside)})'
    else:
        hint = f' (see {guide()} for the real one)'
    return f'{found} in {absolute_path(data)}/{hint}: using a built-in sample catalog of drawn products'


def same_folder(one, other):
    try:
        return os.path.samefile(one, other)
    except OSError:  # one not there
        return False


def guide():
    """The project's fashion-product-images/README.md, on the real dataset, as named from here."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fashion-product-images', 'README.md')
    return path if os.path.relpath(path).startswith(os.pardir) else os.path.relpath(path)


def step(number, text):
    print(f'\n=== step {number}/4: {text}', flush=True)


def main(argv=None):
    args = parse_args(argv)
    pick_device(args.device)  # a --device that is not there is refused now, not after minutes of work
    given = args.data is not None
    if not given:
        args.data = DATA
    else:
        check_data_given(args.data)
    check_writable_folder(args.work, f'--work {args.work}')  # and a folder it cannot write in
    if not given:
        check_data_found(args.data)
    # A second demo.py in the same --work waits for this one, a minute at most: two at once drew,
    # split and trained in the same files.
    named, holder = f'--work {args.work}', 'another demo.py running in it'
    with folder_made(args.work), folder_locked(args.work, named, holder):
        run_demo(args, given)


def run_demo(args, data_given):
    mark = own_mark(args.data)  # of a drawing there: none beside the real dataset
    if mark and os.path.isfile(os.path.join(args.data, 'styles.csv')) and holds_theirs(args.data, mark):
        raise drawn_over(args.data, f'--data {args.data}')  # no sample, to train the demo's own in its place
    real = has_real_dataset(args.data)
    # A sample catalog given as --data is the one meant: another was drawn in its place, unsaid but
    # in a line among many. Trained with the sample recipe; split, as the real data, to --images.
    sample_given = data_given and bool(mark)  # is_sample_catalog's test, the mark read above
    # On the real data, a quick look at the pipeline (`--images 2000 --epochs 1`): it was ignored.
    at_most = ['--max-images', str(args.images)] if (real or sample_given) and args.images else []
    args.images = args.images or SAMPLE_IMAGES
    epochs = args.epochs or (50 if real else 8)
    batch_size = args.batch_size or (16 if real else 32)
    started = time.perf_counter()
    catalog = args.data if real or sample_given else os.path.join(args.work, 'fashion-product-images')
    ours = own_split(args.work)
    theirs = None if ours else split_elsewhere(args.work, catalog, real)
    if theirs:  # said now, before a sample catalog is drawn into the user's folder
        raise kept_split(args.work, [theirs])
    training, test_script = train_command(args, catalog, real, epochs, batch_size), load_test_script()
    check_outputs(training, test_script, args.work)

    step(1, 'the catalog')
    redrawn = False
    if real or sample_given:
        job = 'the tutorial\'s job' if real else 'the sample recipe'
        print(f'found the {"real dataset" if real else "sample catalog"} in {catalog}: running {job} '
              f'({counted(epochs, "epoch")})' + (f' on {counted(int(at_most[1]), "picture")} of it (--images)'
                                                 if at_most else ''))
    else:
        print(no_dataset_line(args.data))
        catalog, redrawn = sample_catalog(args)
        redrawn = redrawn or (ours and split_of_another_drawing(args.work, catalog))
    # The demo's own split is kept but where its pictures are gone: of the sample catalog just drawn anew.
    gone = redrawn and split_of_pictures_in(args.work, catalog)

    step(2, 'split_data.py')
    # Another split of the same catalog is kept too, unless it is the demo's own, or the demo has
    # just drawn the catalog anew.
    keep = [] if redrawn or ours else ['--no-replace']
    try:
        # The demo's own split replaced is kept as *.old.csv, as split_data.py does (a run trained on
        # it can be scored on it), but for one of the catalog drawn before, whose pictures are gone.
        split_data.main([f'--input={catalog}', f'--output={args.work}'] + keep + at_most, keep_old=not gone,
                        cap_named='--images')
    except split_data.OtherSplitThere as error:
        raise kept_split(args.work, error.paths) from error
    mark_own_split(args.work, catalog)

    step(3, 'train.py')
    run_dir = train.main(training)

    step(4, 'test.py')
    checkpoint = os.path.join(run_dir, 'last.pth')
    results = os.path.join(run_dir, RESULTS)
    test_script.main([f'--checkpoint={checkpoint}', f'--val-csv={split_data.split_paths(args.work)[1]}',
                      f'--output={results}', '--device', args.device])

    with open(os.path.join(results, 'metrics.json')) as f:
        metrics = json.load(f)
    print(f'\n=== done in {time.perf_counter() - started:.0f}s')
    for head in HEADS:
        print(f'{TITLES[head]:<12} accuracy {metrics[f"{head}_accuracy"]:.1%} '
              f'(majority class {metrics["majority_rate"][head]:.1%})')
    print(outputs_list(run_dir, results))


def outputs_list(run_dir, results):
    """Where the demo's files are, each path as the shell takes it, as train.py's `evaluate with`
    line names the checkpoint: pasted, `my demo/checkpoints/.../last.pth` was two arguments and
    `-demo/...` a flag. The confusion matrices' braces stay outside the quotes, for the shell to
    expand."""
    confusion = f'{quoted_path(results)}{os.sep}confusion_{{{",".join(HEADS)}}}.png'
    files = [('checkpoint', quoted_path(os.path.join(run_dir, 'last.pth'))),
             ('per-epoch metrics', quoted_path(os.path.join(run_dir, 'metrics.csv'))),
             ('training curves', quoted_path(os.path.join(run_dir, 'curves.png'))),
             ('metrics', quoted_path(os.path.join(results, 'metrics.json'))), ('confusion matrices', confusion),
             ('prediction grid', quoted_path(os.path.join(results, 'predictions.png')))]
    return '\n'.join(f'{label + ":":<19} {path}' for label, path in files)


if __name__ == '__main__':
    run_cli(main)
