# Step 5 of the tutorial: evaluate a trained checkpoint on the validation split.
#   python test.py --checkpoint checkpoints/RUN/last.pth
# Writes metrics.json, one confusion matrix per head and a grid of predictions, and prints
# accuracy and balanced accuracy over the whole set.
if __name__ in ('__main__', '__mp_main__'):  # first: a Ctrl-C during the imports below (seconds) is one line too
    import cli
    cli.quiet_ctrl_c_while_starting(__name__)
    cli.check_working_folder()

import argparse
import json
import math
import os
import re

from allocator import keep_freed_memory
from atomic import (absolute_path, all_or_none, atomic_open, check_no_folder_in_the_way, check_writable_folder,
                    folder_locked, folder_made, json_object, put_back_left_asides,
                    remove_left_temporaries)
from augment import prepare_batch
from catalog import beginning_of, not_a_csv_file, read_csv_rows
from checkpoint import (PRECISIONS, answers_not_numbers, changed_since_the_run, check_checkpoint_file,
                        kept_as_old, model_from_checkpoint, path_as_trained, pictures_from, same_rows)
from cli import (UserError, add_debug_flag, counted, device_name, first_few, non_negative_int, one_line, path_name,
                 pick_device, positive_int, quoted_path, run_cli, shell_quoted, shown, whole_number)
from dataset import HEADS, TITLES, FashionDataset, decoding_workers, image_named, in_real_folders, val_transform
from evaluate import autocast_for, majority_rates, one_pass_channels_last, validate, validation_precision
from memory_data import InMemoryLoader, memory_format
from plots import (MOST_IN_GRID, can_show, draw_figures, drawn_by_matplotlib, drawn_here, plot_confusion_matrix,
                   show_figures, visualize_grid)
from split_data import split_digest


# The files test.py writes in its --output folder, each atomically (atomic.py).
OUTPUT_NAMES = ('metrics.json', *(f'confusion_{head}.png' for head in HEADS), 'predictions.png')
OUTPUT_FILES = '|'.join(map(re.escape, OUTPUT_NAMES))


def grid_size(text):
    """--grid: any number of pictures from 1, as many as the split holds drawn up to MOST_IN_GRID
    (pictures_in_grid says so), so no bound above: `--grid 10**20` was refused as over 2**63."""
    return whole_number(text, 1, below=math.inf)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a trained checkpoint', allow_abbrev=False)
    parser.add_argument('--checkpoint', required=True, help='checkpoint written by train.py (required)')
    parser.add_argument('--val-csv', '--annotations', type=path_name, default=None,
                        help="split to evaluate on (default: the one the checkpoint was validated on, "
                             "as train.py was given it; ./val.csv for the tutorial's bare state_dict)")
    parser.add_argument('--attributes_file', type=path_name, default=None,
                        help="styles.csv, needed only for the original tutorial's bare state_dict "
                             'checkpoints (default: the label names stored in the checkpoint)')
    parser.add_argument('--output', default=None,
                        help='folder for metrics.json and the PNGs '
                             '(default: eval-<checkpoint name> beside the checkpoint)')
    parser.add_argument('--device', type=device_name, default='auto', help='cuda, cuda:N, mps or cpu (default: auto)')
    parser.add_argument('--batch-size', type=positive_int, default=256,
                        help='images per forward pass (default: 256)')
    parser.add_argument('--workers', type=non_negative_int, default=decoding_workers(),
                        help='worker processes that decode the images, once at the start; 0: none, this '
                             'process alone (default: %(default)s)')
    parser.add_argument('--precision', choices=PRECISIONS, default='auto',
                        help="fp32 or bf16 autocast (default: auto, the precision train.py validated "
                             'the checkpoint in, so both give the same figures)')
    parser.add_argument('--channels-last', choices=['auto', 'on', 'off'], default='auto',
                        help='channels_last memory format, the same figures up to float rounding (default: auto, '
                             'on except on CUDA, where one pass over a validation set ends before its start-up pays)')
    parser.add_argument('--grid', type=grid_size, default=32,
                        help=f'images in the prediction grid, the first of the split, at most {MOST_IN_GRID} '
                             '(default: 32)')
    parser.add_argument('--show', action='store_true',
                        help='also open the figures in windows (default: off, files only)')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def output_folder(args):
    if args.output is not None:  # '' too: `--output "$OUT"` with OUT unset is refused, not ignored
        return args.output
    return os.path.join(os.path.dirname(absolute_path(args.checkpoint)), default_folder_name(args.checkpoint))


def default_folder_name(checkpoint):
    return f'eval-{os.path.splitext(os.path.basename(checkpoint))[0]}'


def check_default_folder_is_its_own(folder, checkpoint, named):
    """The default folder, named after the checkpoint without its ending, holding the results of
    another checkpoint there (model.pt beside model.pth): refused before the work, which replaced
    them, said only after. Any other's are replaced, with a note: those of a checkpoint gone (the
    run's folder moved), or of the one a copied run folder was copied from, or written there by
    --output."""
    other = (json_object(os.path.join(folder, 'metrics.json')) or {}).get('checkpoint')
    if not (isinstance(other, str) and os.path.isabs(other) and os.path.isfile(other)) \
            or os.path.samefile(other, checkpoint):
        return
    if os.path.samefile(os.path.dirname(other), os.path.dirname(absolute_path(checkpoint))) \
            and default_folder_name(other) == default_folder_name(checkpoint):
        raise UserError(f'{named}: holds the results of {other}, another checkpoint whose name differs only in '
                        'its ending; give --output to write these elsewhere')


# Names of files, not of folders: `--output metrics.json` made a folder of that name.
FILE_ENDINGS = ('.json', '.csv', '.png', '.txt', '.pth')


def check_output_folder(folder, named, given=True):
    """Before any work (demo.py's too, before its first step): that test.py's files can be written
    in folder. `named` says where the folder comes from, such as '--output out'; given=False, for
    the default one, named after a checkpoint (eval-checkpoint.pth, of checkpoint.pth.tar), which
    the check of a name for a file refused."""
    if given and not os.path.exists(folder) and folder.lower().endswith(FILE_ENDINGS):
        raise UserError(f'{named}: names a file, but test.py writes a folder of them ({first_few(OUTPUT_NAMES)}); '
                        f'give a folder, such as {quoted_path(os.path.splitext(folder)[0])}')
    check_writable_folder(folder, named)
    check_no_folder_in_the_way(folder, OUTPUT_FILES, named)
    check_only_outputs_replaced(folder, named)


def check_only_outputs_replaced(folder, named):
    """Before any work: a file of folder named as one of test.py's is one it wrote, which the new
    one replaces, or empty. One that is not is the user's, and stays."""
    for name in OUTPUT_NAMES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            continue
        if name.endswith('.png') and not figure_of_test_py(path, folder):
            raise UserError(f'{named}: {path} is no figure of test.py (no PNG that it drew), and would be replaced; '
                            'move it away or give another --output')
        if name == 'metrics.json' and not holds_metrics(path):
            raise UserError(f'{named}: {path} holds no metrics of test.py ({beginning_of(path)}), and would '
                            'be replaced; move it away or give another --output')


def figure_of_test_py(path, folder):
    """Whether the PNG at path is one test.py drew: marked so, or, drawn before the mark, one that
    matplotlib saved beside a metrics.json of test.py's."""
    return drawn_here(path) or (drawn_by_matplotlib(path) and holds_metrics(os.path.join(folder, 'metrics.json')))


def holds_metrics(path):
    """Whether path holds a JSON object with test.py's keys: val_samples (evaluate.validate's)
    and checkpoint (main's)."""
    report = json_object(path)
    return report is not None and {'val_samples', 'checkpoint'} <= report.keys()


def results_of_another(folder, report):
    """What the results in folder are of ('CHECKPOINT on VAL_CSV'), where another checkpoint or
    split than report's: said as they are replaced. Those of the same, at an earlier epoch (last.pth
    scored again as the run goes on), are what the user expects to be replaced. The split goes by
    its rows, in any order, where both results record them: val.csv split again holds another, and
    the run's own kept as val.old.csv the same."""
    old = json_object(os.path.join(folder, 'metrics.json')) or {}
    if not {'checkpoint', 'val_csv'} <= old.keys():
        return None
    same_split = (old['val_rows'] == report['val_rows'] if isinstance(old.get('val_rows'), str)
                  else old['val_csv'] == report['val_csv'])  # results written before val_rows
    if old['checkpoint'] == report['checkpoint'] and same_split:
        return None
    other_rows = ', scored when it held other rows' if old['val_csv'] == report['val_csv'] and not same_split else ''
    return f'{one_line(str(old["checkpoint"]))} on {one_line(str(old["val_csv"]))} there{other_rows}'


def split_to_score(args, state):
    """--val-csv, or else the split train.py validated the checkpoint on: so that by default these
    figures are its last validation's, not those of whatever ./val.csv is here. And the pictures
    the checkpoint trained on, where those it shares with it are to be counted once it is read."""
    if args.val_csv:
        # In any order: the figures do not depend on it (a split sorted in a spreadsheet is the same)
        if changed_since_the_run(state, 'val_csv', args.val_csv, ordered=False):  # as asked, but not without a word
            trained = trained_pictures(state)  # else no telling which pictures it trained on
            print(f'note: {one_line(args.val_csv)} holds other rows than when {one_line(args.checkpoint)} was '
                  'validated on it' + ('' if trained else ', maybe pictures it trained on')
                  + '; scoring it as --val-csv asks')
            return args.val_csv, trained
        if same_rows(state, 'train_csv', args.val_csv, ordered=False):
            print(f'note: {one_line(args.val_csv)} holds the rows {one_line(args.checkpoint)} trained on: these '
                  'figures say how well it learned them, not how it does on pictures it has not seen')
            return args.val_csv, None
        return args.val_csv, trained_pictures(state)
    saved = state.get('args') or {}
    if saved.get('val_csv') is None:  # the tutorial's, for its bare state_dict
        if not os.path.isfile('./val.csv'):  # said as the reading found it, without the flag that helps
            raise UserError(f'./val.csv: {not_a_csv_file("./val.csv")}; {args.checkpoint} names no split it was '
                            'validated on (the original tutorial\'s do not). Pass --val-csv')
        return './val.csv', None
    path, gone = path_as_trained(saved, 'val_csv')
    if gone:
        print(f'note: {one_line(gone)}, which {one_line(args.checkpoint)} was validated on, is not there; scoring '
              f'{one_line(path)} from here')
    if not os.path.isfile(path):
        raise UserError(f'{path}: {not_a_csv_file(path)}; {args.checkpoint} was validated on it. Pass --val-csv')
    if changed_since_the_run(state, 'val_csv', path, ordered=False):
        kept = kept_as_old(state, 'val_csv', path)
        advice = (f'pass --val-csv {quoted_path(kept)} (the old one, which split_data.py kept) to score what it was '
                  f'validated on, or --val-csv {quoted_path(path)} to score this one anyway') if kept else \
            'pass --val-csv to score it anyway'
        raise UserError(f'{path}: it holds other rows than when {args.checkpoint} was validated on it'
                        f'{shared_with_training(path, saved, trained_pictures(state))}; {advice}')
    return path, None


def shared_with_training(split, saved, trained):
    """What a run's validation split changed since the run shares with the pictures it trained on,
    as the end of a sentence: counted where its train.csv still holds them (a row or two removed by
    hand), else a guess (split_data.py run again, which replaces both)."""
    if trained is None:
        return ' (split_data.py run again?), maybe pictures it trained on'
    train_csv, pictures = trained
    shared = sum(picture in pictures for picture in pictures_of(split, pictures_from(saved, 'val_csv', split)))
    return (f', and {shared:,} of its pictures are in {train_csv}, which it trained on' if shared else
            f', though none of its pictures is in {train_csv}, which it trained on')


def trained_pictures(state):
    """(train_csv, the pictures it names) where the run's train.csv still holds the rows the
    checkpoint trained on, else None: nothing else says which pictures those were."""
    saved = state.get('args') or {}
    if saved.get('train_csv') is None:
        return None
    train_csv, _ = path_as_trained(saved, 'train_csv')
    if not same_rows(state, 'train_csv', train_csv, ordered=False):
        return None
    return train_csv, set(pictures_of(train_csv, pictures_from(saved, 'train_csv', train_csv)))


def note_trained_pictures(args, trained, dataset):
    """--val-csv with some of the pictures the checkpoint trained on (`trained`: trained_pictures; a
    split made again with another seed, say) flatters its figures, which would not show it.
    Counted over the rows of --val-csv that are scored (dataset's): rows skipped as they were read
    (a missing picture, a label the checkpoint never saw) were counted too, as many as all."""
    train_csv, trained = trained
    scored = in_real_folders(dataset.data)
    shared = sum(picture in trained for picture in scored)
    if shared:
        print(f'note: {shared:,} of the {len(scored):,} pictures of {one_line(args.val_csv)} are in '
              f'{one_line(train_csv)} too, which {one_line(args.checkpoint)} trained on: these figures are '
              'inflated by pictures it learned')


def pictures_of(split, from_folder=None):
    """The pictures a split names, by their real paths: one made through a link to the catalog names
    the same pictures otherwise (a path of the tutorial's from from_folder, as FashionDataset's
    pictures_from). Read without the notes FashionDataset gives on it; none where it cannot be
    read, which FashionDataset then says."""
    try:
        header, rows = read_csv_rows(split, ('image_path',), 'a split made by split_data.py', notes=False)
    except (UserError, OSError):
        return []
    column = header.index('image_path')
    folder = os.path.dirname(absolute_path(split))
    named = [row[column] for row in rows if len(row) > column and row[column].strip()]
    return in_real_folders(image_named(written, folder, from_folder) for written in named)


def skipped_rows(dataset, metrics):
    """The split's rows left out of the figures, by reason: at reading, and at decoding."""
    skipped = dict(dataset.skipped.most_common())
    undecoded = len(dataset) - metrics['val_samples']
    if undecoded:
        skipped['image that could not be decoded'] = undecoded
    return skipped


def pictures_in_grid(asked, pictures):
    """How many of the split's pictures the grid draws: --grid, up to the split's and MOST_IN_GRID,
    said before the evaluation: a refusal after it would lose its minutes, and a grid of every
    picture is no figure to look at (a PNG 68,380 pixels tall for 2,100). Of a split no larger than
    the most, all are drawn, and nothing needs saying."""
    drawn = min(asked, pictures)
    if drawn <= MOST_IN_GRID:
        return drawn
    print(f'note: --grid {asked}: the prediction grid draws the first {MOST_IN_GRID} of the {pictures:,} pictures '
          f'({counted(MOST_IN_GRID // 8, "row")} of 8); metrics.json and the confusion matrices count every picture')
    return MOST_IN_GRID


def print_report(metrics, majority):
    print(f'{"head":<12} {"accuracy":>9} {"balanced":>9} {"majority":>9}')
    for head in HEADS:
        print(f'{TITLES[head]:<12} {metrics[f"{head}_accuracy"]:9.4f} '
              f'{metrics[f"{head}_balanced_accuracy"]:9.4f} {majority[head]:9.4f}')


def main(argv=None):
    args = parse_args(argv)
    check_checkpoint_file(args.checkpoint)  # first: the default --output is named after it
    folder = output_folder(args)
    # Before the evaluation, not after it; a default folder is named as one, so that --output is
    # seen to be the way to put the figures elsewhere.
    named = f'--output {shell_quoted(folder)}' if args.output is not None else f'--output (default: {folder})'
    check_output_folder(folder, named, given=args.output is not None)
    if args.output is None:
        check_default_folder_is_its_own(folder, args.checkpoint, named)
    put_back_left_asides(folder, OUTPUT_FILES, 'test.py')  # first: else removed as half-written
    remove_left_temporaries(folder, OUTPUT_FILES, 'test.py')
    show = args.show and can_show(folder)  # told before the evaluation, not after it
    device = pick_device(args.device)
    keep_freed_memory(device)  # on a CPU: each batch reuses the last one's memory (allocator.py)
    model, attributes, state = model_from_checkpoint(args.checkpoint, args.attributes_file)
    channels_last = one_pass_channels_last(device) if args.channels_last == 'auto' else args.channels_last == 'on'
    model = model.to(device, memory_format=memory_format(channels_last)).eval()
    precision = args.precision
    if precision == 'auto':
        precision = validation_precision(state, device)
    # Paths printed as one_line writes them: a line break or a terminal's escape sequence in a name
    # (run\x1b[31m.pth) neither splits the line nor reaches the terminal, as in the error messages.
    print(f'device: {device} ({precision}{", channels_last" if channels_last else ""}); '
          f'checkpoint {one_line(args.checkpoint)}'
          + (f' (epoch {state["epoch"]})' if state.get('epoch') else ''))

    args.val_csv, trained = split_to_score(args, state)
    dataset = FashionDataset(args.val_csv, attributes, val_transform,
                             pictures_from(state.get('args') or {}, 'val_csv', args.val_csv))
    val_rows = split_digest(args.val_csv, ordered=False)  # as it was read: it may change in the minutes to come
    if trained:
        note_trained_pictures(args, trained, dataset)
    in_grid = pictures_in_grid(args.grid, len(dataset))  # before the pictures are decoded and scored
    loader = InMemoryLoader.from_dataset(dataset, args.batch_size, device, train=False, workers=args.workers,
                                         channels_last=channels_last)
    metrics, predicted, truth = validate(model, loader, device, autocast_for(device, precision))
    if not math.isfinite(metrics['val_loss']):  # else scored, each answer the first class
        raise answers_not_numbers(args.checkpoint, f'on {args.val_csv}')
    majority = majority_rates(truth)
    print(f'{counted(metrics["val_samples"], "image")} from {one_line(args.val_csv)}')
    print_report(metrics, majority)

    # How it was scored, and the rows left out: figures in bf16, or over part of a split (labels the
    # checkpoint never saw), looked like any others in the file.
    report = dict(metrics, checkpoint=absolute_path(args.checkpoint), epoch=state.get('epoch'),
                  val_csv=absolute_path(args.val_csv), val_rows=val_rows,
                  skipped_rows=skipped_rows(dataset, metrics),
                  device=str(device), precision=precision, channels_last=channels_last,
                  majority_rate={head: majority[head] for head in HEADS})
    figures = [(plot_confusion_matrix, (truth[head], predicted[head], attributes.labels(head),
                                        f'{TITLES[head]}: normalised confusion matrix ({shown(args.val_csv)})',
                                        os.path.join(folder, f'confusion_{head}.png'), show))
               for head in HEADS]
    figures.append((visualize_grid, (prepare_batch(loader.images[:in_grid]).cpu().numpy(),
                                     {h: p[:in_grid] for h, p in predicted.items()},
                                     {h: t[:in_grid] for h, t in truth.items()},
                                     attributes, os.path.join(folder, 'predictions.png'), show)))
    # A Ctrl-C or a full disk while the figures are drawn leaves the last evaluation's files, not
    # its figures beside these metrics; another test.py writing there meanwhile is waited for.
    with folder_made(folder), folder_locked(folder, named), \
            all_or_none([os.path.join(folder, name) for name in OUTPUT_NAMES]):
        replaced = results_of_another(folder, report)
        with atomic_open(os.path.join(folder, 'metrics.json'), encoding='utf-8') as f:
            json.dump(report, f, indent=2)
        draw_figures(figures, parallel=not show)
    print(f'wrote metrics.json, confusion_{{{",".join(HEADS)}}}.png and predictions.png to {one_line(folder)}')
    if replaced:
        print(f'note: they replace the results of {replaced}; --output writes them elsewhere')
    if show:  # after the block: a Ctrl-C to close the windows keeps the files written
        show_figures()


if __name__ == '__main__':
    run_cli(main, workers_flag='--workers', files_first=True)
