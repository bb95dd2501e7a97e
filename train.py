# Step 4 of the tutorial: train the three-headed model.
#   python train.py                                    # the tutorial's run: 50 epochs, batch 16
#   torchrun --nproc_per_node=4 train.py               # the same on 4 GPUs (batch 16 per GPU)
#   python train.py --resume checkpoints/RUN/last.pth  # carry on where a run stopped
if __name__ in ('__main__', '__mp_main__'):  # first: a Ctrl-C during the imports below (seconds) is one line too
    import cli
    cli.quiet_ctrl_c_while_starting(__name__)
    cli.check_working_folder()

import argparse
import contextlib
import csv
import importlib
import io
import logging
import math
import os
import pickle
import re
import sys
import time
import warnings

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

import distributed
from allocator import keep_freed_memory, peak_resident_mib
from atomic import atomic_open
from catalog import describe_download
from checkpoint import (PRECISIONS, checkpoint_load, checkpoint_save, first_sentence, load_weights, non_finite_weight,
                        pictures_from, resumable_load)
from cli import (NO_SUCH_FILE, NOTHING_HALF_WRITTEN, UserError, add_debug_flag, command, counted, ctrl_c_held,
                 debugging, device_name, first_few, folder_name, how_stopped, leave_stops_to_the_main_process,
                 non_negative_float, non_negative_int, path_name, peer_ended, positive_float, positive_int, print_error,
                 print_if_possible, progress_bar, quoted_path, reach_problem, run_cli, seed_number, shown_path, started,
                 this_torchrun, usable_cores, worker_ended, worker_processes)
from dataset import (HEADS, FashionDataset, decoding_workers, in_real_folders, rows_digest, skip_undecodable,
                     train_transform, val_transform)
from evaluate import autocast_for, default_channels_last, default_precision, validate
from memory_data import InMemoryLoader, memory_format
from model import MultiOutputModel, cached_imagenet_weights
from train_step import (GraphedTrainStep, TrainStep, load_optimizer_state, make_optimizer, optimizer_state,
                        scheduler_state, set_lr)
from plots import plot_curves, pyplot
from resuming import (RESUMED_SETTINGS, SPLIT_FILES, flags_to_repeat, given, labels_of_the_run, resumed_args,
                      trained_on)
from runs import (check_log_folder, check_run_folder, left_unwritten, log_epoch, metric_text, put_back_settings,
                  refuse_a_run_that_saved_no_epoch, release_run_folder, remove_unsaved_log, run_folder, saved_args,
                  start_in_folder, tensorboard_installed)
from saver import BackgroundSaver, detached_copy
from split_data import split_digests, split_paths
from stopwatch import Stopwatch


def build_parser():
    # allow_abbrev=False: a flag cut short or misspelled (--log run.log, --checkpoint) is refused,
    # not taken for the one it begins (--logs, --checkpoints).
    parser = argparse.ArgumentParser(description='Train the multi-output fashion classifier', allow_abbrev=False)
    parser.add_argument('--attributes_file', type=path_name, default='./fashion-product-images/styles.csv',
                        help='styles.csv that defines the label vocabularies '
                             '(default: ./fashion-product-images/styles.csv)')
    parser.add_argument('--train-csv', type=path_name, default='./train.csv', help='training split (default: ./train.csv)')
    parser.add_argument('--val-csv', type=path_name, default='./val.csv', help='validation split (default: ./val.csv)')
    parser.add_argument('--device', type=device_name, default='auto',
                        help='cuda, cuda:N, mps or cpu (default: auto, the first of CUDA, MPS, CPU)')
    parser.add_argument('--epochs', type=positive_int, default=50, help='epochs to train (default: 50)')
    parser.add_argument('--batch-size', '--batch_size', type=positive_int, default=16,
                        help='images per step, per process (default: 16)')
    parser.add_argument('--lr', type=positive_float, default=1e-3, help='Adam learning rate (default: 0.001)')
    parser.add_argument('--warmup-epochs', type=non_negative_float, default=0,
                        help='linear learning-rate warm-up, in epochs (default: 0, as the tutorial)')
    parser.add_argument('--schedule', choices=['constant', 'cosine'], default='constant',
                        help='learning rate after the warm-up (default: constant, as the tutorial)')
    parser.add_argument('--seed', type=seed_number, default=42, help='seed for everything random (default: 42)')
    parser.add_argument('--data', choices=['memory', 'loader'], default='memory',
                        help="memory: decode every image once and augment whole batches on the "
                             "device (fast); loader: the tutorial's per-image DataLoader (default: memory)")
    parser.add_argument('--workers', type=non_negative_int, default=decoding_workers(),
                        help='worker processes that decode the images: once at the start, or every '
                             'epoch with --data loader (default: %(default)s)')
    parser.add_argument('--precision', choices=PRECISIONS, default='auto',
                        help='bf16 autocast or plain fp32 (default: auto, bf16 on CUDA where it pays: for '
                             'batches over 16, and at any batch with --compile; fp32 otherwise)')
    parser.add_argument('--channels-last', choices=['auto', 'on', 'off'], default='auto',
                        help='channels_last memory format, the same numbers up to float rounding; on 2 CPU '
                             'cores 1.1 to 1.35x faster for MobileNetV2, on an H200 2.5 to 2.9x at batch 256; at '
                             'batch 16 there NCHW ran the step as fast and a short run started 10 s sooner; '
                             'benchmarks/step_variants.py times both (default: auto, on except on CUDA at '
                             'batches of 16 or fewer)')
    parser.add_argument('--compile', nargs='?', const='default', default=None,
                        choices=['default', 'reduce-overhead'],
                        help='torch.compile the model, and the loss with it, fusing their small kernels; '
                             '"reduce-overhead" also replays the compiled model\'s passes as CUDA graphs '
                             '(default: off; --compile alone: mode "default")')
    parser.add_argument('--cuda-graphs', choices=['auto', 'on', 'off'], default='auto',
                        help='replay each whole training step as one CUDA graph, a --compile\'d model '
                             'inside it (default: auto, on for a single CUDA process, unless --compile '
                             'reduce-overhead records graphs of its own)')
    parser.add_argument('--cudnn-benchmark', choices=['on', 'off'], default='off',
                        help="on: cuDNN times its candidate kernels for every layer at the first training "
                             "steps and keeps the fastest; off: it picks by heuristics, as validation always "
                             "does (CUDA only; on an H200 the search took 12 to 21 s of the first epoch and "
                             "made no later one faster, see the README's start-up section) (default: off)")
    parser.add_argument('--pretrained', action='store_true',
                        help="start the trunk from torchvision's ImageNet weights, downloaded once "
                             "(default: off, from scratch as in the tutorial)")
    parser.add_argument('--val-every', type=positive_int, default=5,
                        help='validate every N epochs, and after the last (default: 5)')
    parser.add_argument('--save-every', type=positive_int, default=25,
                        help='keep a numbered checkpoint every N epochs, and after the last (default: 25)')
    parser.add_argument('--checkpoints', type=path_name, default='./checkpoints',
                        help='folder for run folders with checkpoints, metrics.csv, curves.png '
                             '(default: ./checkpoints)')
    parser.add_argument('--logs', type=path_name, default='./logs',
                        help='TensorBoard log folder, used when tensorboard is installed (default: ./logs)')
    parser.add_argument('--run-name', type=folder_name, default=None,
                        help='name of the run folder in --checkpoints (default: the start time, e.g. '
                             '2026-01-31_12-00-00; with _2, _3 ... after it where a run started in the same second '
                             'has it)')
    parser.add_argument('--resume', type=path_name, default=None, metavar='CHECKPOINT',
                        help='continue the run saved in this checkpoint, e.g. checkpoints/RUN/last.pth, '
                             'with its settings; --epochs may be raised, or lowered to stop sooner '
                             '(default: start a new run)')
    add_debug_flag(parser)
    return parser


def parse_args(argv=None, saved=None):
    """The settings of the command line; with `saved` (a resumed run's), those stand in for the
    RESUMED_SETTINGS the command line does not give."""
    parser = build_parser()
    # argparse puts a default only where the namespace holds no value yet.
    namespace = argparse.Namespace(**{k: saved[k] for k in RESUMED_SETTINGS if k in saved}) if saved else None
    args = parser.parse_args(argv, namespace=namespace)
    if args.compile == 'reduce-overhead' and args.cuda_graphs == 'on':
        parser.error('--compile reduce-overhead records its own CUDA graphs; use it with --cuda-graphs auto or off')
    return args


def split_advice(args):
    """How to make the split this run asks for, where it is asked for."""
    split = ['--input', os.path.dirname(args.attributes_file) or '.']
    output = os.path.dirname(args.train_csv) or '.'
    if output != '.':
        split += ['--output', output]
    advice = f'run `{command("split_data.py", *split)}` to make train.csv and val.csv'
    named = split_paths(output)
    if [os.path.normpath(args.train_csv), os.path.normpath(args.val_csv)] != [os.path.normpath(n) for n in named]:
        advice += f', and pass them as --train-csv {quoted_path(named[0])} --val-csv {quoted_path(named[1])}'
    return advice


def check_inputs(args, resume):
    """The two splits, each there: else how to make or find it (the validation split was said of
    only as the reading found it, with neither its flag nor the run)."""
    for place, (key, flag, used) in enumerate([('train_csv', '--train-csv', 'trained'),
                                               ('val_csv', '--val-csv', 'validated')]):
        check_split_given(args, resume, key, flag, used, place)


def check_split_given(args, resume, key, flag, used, place):
    path = getattr(args, key)
    problem = reach_problem(path)
    if problem is None:  # a folder, say: named by the reading, as what it is
        return
    if problem != NO_SUCH_FILE:  # a link to nothing, a loop of links: no split or download would help
        raise UserError(f'{path}: {problem}')
    if trained_on(args, resume, key):
        # The run's own split, moved: a new one would not do unless it held the same rows.
        raise UserError(f'{path}: no such file, and the run in {args.resume} {used} on it. Where it was '
                        'moved, pass --train-csv and --val-csv as they are now (a split made anew in its place is '
                        'refused unless it holds the same rows)')
    folder = os.path.dirname(args.attributes_file) or '.'
    if not os.path.isfile(args.attributes_file):
        raise UserError(f'{path}: no such file, and no dataset at {folder}. '
                        + describe_download(folder) + f' Then {split_advice(args)}.')
    beside = split_paths(os.path.dirname(path) or '.')[place]
    if os.path.isfile(beside):  # a slip of the name: a split made anew there would replace that one
        raise UserError(f'{path}: no such file; {beside} is there: {flag} {quoted_path(beside)}?')
    raise UserError(f'{path}: no such file; {split_advice(args)}')


def note_shared_pictures(train_set, val_set, args):
    """Validating on pictures the run trains on (`--val-csv train.csv`, a slip) flatters its
    figures, which would not show it."""
    trained = set(in_real_folders(train_set.data))
    shared = sum(path in trained for path in in_real_folders(val_set.data))
    if shared:
        print(f'note: {shared:,} of the {len(val_set):,} pictures of {args.val_csv} are in {args.train_csv} too: '
              'validation will say how well the run learns them, not how it does on pictures it has not seen')


def make_train_loader(dataset, args, context, channels_last):
    if args.data == 'memory':
        return InMemoryLoader.from_dataset(dataset, args.batch_size, context.device, True, seed=args.seed,
                                           channels_last=channels_last, rank=context.rank,
                                           world_size=context.world_size, workers=args.workers)
    # The tutorial's way: PIL decode and torchvision transforms per image, in worker processes.
    # One decoding pass first, to skip and count what no longer decodes, as the memory path does
    # (a few seconds): the DataLoader would stop at it in the middle of an epoch, with a traceback.
    skip_undecodable(dataset, args.workers)
    note_more_workers_than_cores(args.workers)
    # Fresh workers each epoch, as in the tutorial: each epoch's seed then restarts their random
    # draws too, as in a resumed run (persistent workers would carry them on from epoch 1).
    sampler = DistributedSampler(dataset, seed=args.seed) if context.distributed else None
    return DataLoader(dataset, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                      num_workers=args.workers, multiprocessing_context=worker_processes(args.workers),
                      generator=torch.Generator().manual_seed(args.seed),
                      pin_memory=context.device.type == 'cuda', worker_init_fn=leave_stops_to_the_main_process)


# PyTorch's own word for it, a UserWarning naming its source line, twice: note_more_workers_than_cores says it once.
warnings.filterwarnings('ignore', message='This DataLoader will create', category=UserWarning)


def note_more_workers_than_cores(workers):
    cores = usable_cores()
    if workers > cores:
        print(f'note: --workers {workers}: more decoding processes than the {counted(cores, "core")} this run may '
              'use; they take turns, and each takes its memory')


def make_val_loader(dataset, args, context, channels_last):
    # Validation always decodes once into memory (8,000 images are about 115 MB) and is split
    # across processes without padding, so every image is scored exactly once.
    # Batches of 256 at least: the same predictions as any batch size in eval mode, just faster.
    return InMemoryLoader.from_dataset(dataset, max(args.batch_size, 256), context.device, False,
                                       channels_last=channels_last, rank=context.rank,
                                       world_size=context.world_size, workers=args.workers)


def kept_rows(loader):
    """(count, digest) of the rows a loader takes its pictures from (dataset.rows_digest)."""
    return rows_digest(loader.samples_kept if isinstance(loader, InMemoryLoader) else loader.dataset.samples)


def check_same_labels(everyone, args):
    """Every process's label names (AttributesDataset.to_dict), in rank order: the same on all. A
    class is a place in its head's sorted list, so a machine with a styles.csv of its own had heads
    of other sizes (DDP's traceback on a weight's size) or other classes under the same numbers
    (blamed on the split)."""
    first = everyone[0]
    odd = next((rank for rank, labels in enumerate(everyone) if labels != first), None)
    if odd is None:
        return
    head = next(head for head in HEADS if everyone[odd][head] != first[head])
    theirs, ours = everyone[odd][head], first[head]
    only = [f'only process {rank} has {first_few(sorted(set(a) - set(b)))}'
            for rank, a, b in ((odd, theirs, ours), (0, ours, theirs)) if set(a) - set(b)]
    raise UserError(f'{args.attributes_file}: process {odd} has other {head} labels than process 0 '
                    f'({counted(len(theirs), "label")} against {len(ours):,}; {"; ".join(only)}): every machine needs '
                    'the same styles.csv')


def check_same_rows(everyone, args):
    """Every process's kept_rows of the training and the validation split, in rank order: the same
    on all. Each process takes its share of an epoch by place in its own list of rows; where one
    machine lacked a picture, or had a split of its own, the shares were not one split's: 58 of 240
    pictures trained on twice an epoch and 59 never, and the validation figures over 30 of its 60."""
    for index, path in enumerate((args.train_csv, args.val_csv)):
        first = everyone[0][index]
        odd = next((rank for rank, rows in enumerate(everyone) if rows[index] != first), None)
        if odd is None:
            continue
        count = everyone[odd][index][0]
        theirs = f'{count:,} of its rows, process 0 {first[0]:,}' if count != first[0] else 'other rows than process 0'
        raise UserError(f'{path}: process {odd} keeps {theirs}: every machine needs the same split and the same '
                        'pictures (each machine says which rows it skipped)')


def set_epoch(loader, epoch, seed, rank):
    # Shuffling and augmentation are seeded per epoch, so a resumed run sees what an unbroken one
    # would have.
    if isinstance(loader, InMemoryLoader):
        loader.set_epoch(epoch)
        return
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)  # the same order on every process, each its own share
    # The order without a DistributedSampler, and the seeds of the worker processes: with the
    # rank in it, the processes of a distributed run draw different augmentations.
    loader.generator.manual_seed(seed * 100003 + epoch + 1_000_003 * rank)


def lr_factor(step, steps_per_epoch, args):
    """Warm-up then constant or cosine, as a multiple of --lr; per optimizer step."""
    warmup = args.warmup_epochs * steps_per_epoch
    if step < warmup:
        return min(1.0, (step + 1) / warmup)  # a warm-up that ends between two steps: not above --lr
    if args.schedule == 'cosine':
        progress = (step - warmup) / max(1, args.epochs * steps_per_epoch - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def note_unfinished_warmup(args, steps_per_epoch):
    """A warm-up longer than the run (--warmup-epochs 5 --epochs 2, a slip): the learning rate never
    reaches --lr, which nothing else would show."""
    if args.warmup_epochs > args.epochs:
        peak = args.lr * lr_factor(args.epochs * steps_per_epoch - 1, steps_per_epoch, args)
        print(f'note: --warmup-epochs {args.warmup_epochs:g} is longer than the run\'s {counted(args.epochs, "epoch")}: '
              f'the learning rate rises to {peak:.3g} at most, not --lr {args.lr:g}')


def note_batch_over_the_pictures(args, loader, context, cuda_graphs):
    """--batch-size over the training pictures (a slip, or a small catalog): each epoch is then one
    smaller step, and a CUDA graph recorded for full batches never runs, which nothing would show."""
    # This process's share: DistributedSampler's, or the whole set
    pictures = loader.samples() if isinstance(loader, InMemoryLoader) else len(loader.sampler)
    if args.batch_size <= pictures:
        return
    each = ' in each of the processes' if context.distributed else ''
    graphs = '; the CUDA graph, made for full batches, is not used' if cuda_graphs else ''
    print(f'note: --batch-size {args.batch_size} is more than the {counted(pictures, "training picture")}{each}: '
          f'each epoch is one step, on a batch of {pictures}{graphs}')


def load_training_state(optimizer, scheduler, resume, path):
    """The optimizer's moments and the schedule's place, from the resumed checkpoint: one that
    another program saved under the same keys (an SGD's state, say) is named in one line."""
    try:
        load_optimizer_state(optimizer, resume['optimizer'])
        scheduler.load_state_dict(resume['scheduler'])
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError, AttributeError) as error:
        said = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise UserError(f'{path}: not a checkpoint written by train.py (its optimizer or schedule is not the '
                        f"state of this model's Adam and schedule: {said}); cannot resume from it") from error


def go_on_by_epochs(scheduler, optimizer, epochs_done, steps_per_epoch, args, context, trained_in=None):
    """The schedule counts optimizer steps. A run resumed on another number of processes takes
    another number of them an epoch: it goes on from where its epochs put it, in this run's steps.
    trained_in: the number of processes the run's last epoch took (None in a checkpoint from before
    it was kept)."""
    step = epochs_done * steps_per_epoch
    if scheduler.last_epoch == step:
        return
    if context.is_main:
        # The schedule's count, placed as if each epoch so far had taken the last run's steps (this
        # function, when that run began): not the steps taken, where the run changed its processes.
        before = scheduler.last_epoch / max(epochs_done, 1)
        before = f'{before:,.0f}' if before == int(before) else f'about {before:,.0f}'
        print(f'note: {steps_per_epoch:,} steps an epoch now, {before} before (another number of processes or of '
              f'pictures); the learning-rate schedule goes on from the end of epoch {epochs_done}'
              + other_batch(trained_in, args, context))
    scheduler.last_epoch = step
    set_lr(optimizer, args.lr * lr_factor(step, steps_per_epoch, args))


def other_batch(trained_in, args, context):
    """Where a run goes on in another number of processes: its effective batch, said. --batch-size is
    each process's and a resumed run keeps it, as it keeps --lr: the same rate over a batch of
    another size, which the note said nothing of."""
    if not isinstance(trained_in, int) or trained_in == context.world_size:  # None: a checkpoint from before
        return ''
    return (f'; the effective batch is {context.world_size * args.batch_size:,} ({context.world_size} x '
            f'--batch-size {args.batch_size}), where the run trained at {trained_in * args.batch_size:,} in '
            f'{trained_in}, with the same --lr {args.lr:g}')


def redrawn_cosine(saved_epochs, step, steps_per_epoch, args):
    """For a cosine run whose --epochs was changed, raised or lowered: (the learning rate at
    `step` on the new curve, a note saying so); else None."""
    if args.schedule != 'cosine' or saved_epochs == args.epochs:
        return None
    planned = args.lr * lr_factor(step, steps_per_epoch, argparse.Namespace(**dict(vars(args), epochs=saved_epochs)))
    now = args.lr * lr_factor(step, steps_per_epoch, args)
    return now, (f'note: the cosine schedule is redrawn over {args.epochs} epochs instead of {saved_epochs}; '
                 f'the learning rate goes on from {now:.3g} (the run of {saved_epochs} epochs: {planned:.3g})')


class PicturesFailed(UserError):
    """A picture that went bad during the run, met as an epoch read it."""


class Diverged(Exception):
    """The loss or the weights became inf or NaN: the run cannot go on."""
    advice = 'Start a new run with a lower --lr (a resumed run keeps its own)'


class ReplicasDiffer(Diverged):
    """The processes' weights differ after an epoch: they diverged from each other, as no
    learning rate makes them do; stopped as a divergence is, said once, by process 0."""
    advice = 'Check that every process runs the same code and data'


def first_non_finite(losses):
    """Index of the first loss that is inf or nan, or None."""
    bad = (~torch.isfinite(losses)).nonzero()
    return int(bad[0]) if len(bad) else None


def remove_unsaved_run(run_dir, made):
    """A new run that ended before it saved an epoch (a Ctrl-C, an error in the first epoch) left
    its folder with its args.json alone, one more each time: that goes, and the folders the run
    made, `made` (missing_folders: --checkpoints new/deeper's too), where nothing else is in them
    (one the user made stays, as does anything else in it)."""
    with contextlib.suppress(OSError):
        os.remove(os.path.join(run_dir, 'args.json'))
        for folder in made:  # the deepest first; rmdir: only an empty one
            os.rmdir(folder)


def missing_folders(path):
    """path and the folders above it that are not there, the deepest first: what makedirs makes."""
    missing, path = [], os.path.abspath(path)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def interrupted_message(epoch, saved, where, repeat, epochs, context, words):
    """What a Ctrl-C, a SIGTERM or a SIGHUP (`words`, from cli.how_stopped) in epoch `epoch`
    leaves: `saved` epochs in the checkpoint `where`, to resume with the flags `repeat`."""
    if not saved:
        return f'{words} during the first epoch: nothing to resume from yet'
    if saved == epochs:  # while the last epoch's files were written: they were
        saved_all = 'its one epoch is' if epochs == 1 else f'all {counted(epochs, "epoch")} are'
        return (f'{words} after the last epoch; {saved_all} saved in {where}. '
                f'Evaluate with: {command("test.py", "--checkpoint", where)}')
    when = f'after epoch {epoch}' if epoch == saved else f'in epoch {epoch}'
    return f'{words} {when}; epoch {saved} is saved in {where}. Resume with: {resume_command(where, context, repeat)}'


def note_other_precision(resume, precision, path):
    """A resumed run's precision is this machine's (--precision, or its default), not its
    checkpoint's: one that trained in bf16 went on in fp32 without a word."""
    trained = resume.get('precision') if resume is not None else None
    if trained is not None and trained != precision:
        print(f'note: {path} trained in {trained}; this run goes on in {precision} (--precision {trained} goes on '
              'as it was)')


def kept_after_failure(last_path, args, context):
    """What a run stopped by a failed write (a full disk) keeps, and how to go on: the epoch its
    last.pth holds (the first of an epoch's files written: the failed epoch's own, maybe), or else
    the checkpoint it resumed."""
    where = last_path if os.path.exists(last_path) else args.resume
    if where is None:
        return 'No epoch is saved yet'
    try:
        kept = checkpoint_load(where)
    except (UserError, OSError):  # not to be read now (the disk failing): named only
        return f'Resume with: {resume_command(shown_path(where), context, how_it_ran(args))}'
    repeat = flags_to_repeat(args, kept['args']) + how_it_ran(args)
    go_on = f'Resume with: {resume_command(shown_path(where), context, repeat)}'
    return f'Epoch {kept["epoch"]} is saved in {shown_path(where)}. {go_on}'


@contextlib.contextmanager
def second_stop_held():
    """Around what a stopped run does before it exits, writing the epochs it finished and saying
    how to go on: a second stop waits for it, then is dropped. A Ctrl-C pressed twice, or the
    terminal's passed on once more (`timeout --foreground`), or torchrun's SIGTERM after a process
    ended, cut it short: the last epoch's files left to Python's exit, and no word of them."""
    with contextlib.suppress(KeyboardInterrupt), ctrl_c_held():
        yield


def saved_so_far(saver, start_epoch, last_path, args, resume):
    """The last epoch saved, once the saver is closed, the checkpoint that holds it and the flags to
    resume it with: the checkpoint resumed where none was saved since, with the settings this run
    was given beyond its own (a larger --epochs)."""
    if saver.done or resume is None:
        return saver.done or start_epoch - 1, shown_path(last_path), how_it_ran(args)
    return resumed_so_far(args, resume)


def resumed_so_far(args, resume):
    """The epoch of the checkpoint a run resumed, where it is, and the flags to go on from it with:
    the settings this run was given beyond its own (a larger --epochs), and how it ran here."""
    return resume['epoch'], shown_path(args.resume), flags_to_repeat(args, resume['args']) + how_it_ran(args)


def stopped_setting_up(args, resume, context):
    """What a stop while a resumed run sets up leaves, for run_cli's line: the checkpoint it resumed,
    as it was, and the command to go on from it, as saved_so_far gives them to a stop in an epoch."""
    saved, where, repeat = resumed_so_far(args, resume)
    return (f'{NOTHING_HALF_WRITTEN}, and epoch {saved} is still saved in {where}. '
            f'Resume with: {resume_command(where, context, repeat)}')


# How a run ran on this machine, which a resume takes from its command line as a new run does
# (resuming.RESUMED_SETTINGS): the command printed to go on here repeats those given, or the run
# went on in fp32 where it had trained in bf16, and on the GPU where it was given --device cpu
# (auto finds the same device again, and is left out as the other defaults are).
HOW_IT_RAN = {'device': '--device', 'precision': '--precision', 'channels_last': '--channels-last',
              'compile': '--compile', 'cuda_graphs': '--cuda-graphs', 'cudnn_benchmark': '--cudnn-benchmark'}


def how_it_ran(args):
    parser = build_parser()
    return [part for key, flag in HOW_IT_RAN.items() if getattr(args, key) != parser.get_default(key)
            for part in (flag, getattr(args, key))]


def resume_command(checkpoint, context, repeat=()):
    """The command that goes on from checkpoint with the flags `repeat`, started as this run was."""
    if not context.distributed:
        return command('train.py', '--resume', checkpoint, *repeat)
    machines = int(os.environ.get('GROUP_WORLD_SIZE', '1'))  # torchrun's count of machines (nodes)
    if machines > 1:  # torchrun's options for several machines are the user's own
        go_on = command('train.py', '--resume', checkpoint, *repeat, runner=(this_torchrun(), '...'))
        return (f"{go_on} on each of the {machines} machines, with torchrun's options as before, once {checkpoint} "
                'is there on each (only this machine wrote it; a shared --checkpoints folder has it on all)')
    return command('train.py', '--resume', checkpoint, *repeat,
                   runner=(this_torchrun(), '--standalone', f'--nproc_per_node={context.world_size}'))


def stop_on_divergence(error, good_checkpoint, context):
    kept = f'; the last good checkpoint is {shown_path(good_checkpoint)}' if good_checkpoint else ''
    message = f'stopped: {error}{kept}. {error.advice}'
    if not context.distributed:
        raise UserError(message) from error
    # Every process stops at the same step (the first bad one is shared), and torchrun ends the
    # others as soon as one exits: process 0, which alone reports the epochs, says why, and only
    # then does the barrier let any process go.
    if context.is_main:
        print_error(message)
    distributed.barrier(context)
    distributed.cleanup(context)
    if context.is_main and debugging():
        raise UserError(message) from error  # its traceback, through run_cli
    raise SystemExit(2)


def batches_of(loader, csv_path, epoch):
    """The loader's batches; a picture that went bad during the run (the tutorial's DataLoader
    path reads them every epoch) stops it in one line, not a DataLoader worker's traceback."""
    batches = started(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except OSError as error:  # gone, no permission, truncated; from a worker, its traceback as text
            reason = str(error).strip().splitlines()[-1]
            kind = type(error).__name__
            # as a worker words it, its class named once (a worker's 'PIL.UnidentifiedImageError: ...')
            reason = reason if kind in reason.split(':')[0] else f'{kind}: {reason}'
            reason = re.sub(r"<_io\.\w+ name='([^']*)'>", r'\1', reason)  # Pillow's file object: its path
            raise PicturesFailed(f'{csv_path}: reading its pictures failed in epoch {epoch} ({reason}); a new or '
                                 'resumed run checks them first and skips those it cannot read') from error
        yield batch


def train_one_epoch(model, loader, train_step, epoch, args, context, channels_last):
    model.train()
    device = context.device
    steps = len(loader)
    # One row per step: the batch's loss and correct answers per head (train_step.batch_stats),
    # written on the device with one copy; the CPU only waits for the GPU every 50 steps.
    per_step = torch.zeros(steps, 1 + len(HEADS), device=device)
    sizes, checked = [], 0  # the steps before `checked` are known to have finite losses
    shown, loss_sum, pictures = 0, 0.0, 0  # the bar's: the steps before `shown`, their loss summed and pictures
    # On a terminal the bar is cleared after the epoch; in a log file or pipe it is kept and ends
    # its line, so the summary line that follows gets a line of its own.
    bar = progress_bar(batches_of(loader, args.train_csv, epoch), total=steps, desc=f'epoch {epoch}/{args.epochs}',
                       unit='batch', leave=not sys.stderr.isatty(), disable=not context.is_main)
    for step, batch in enumerate(bar):
        images = batch['img'].to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = {k: v.to(device, non_blocking=True) for k, v in batch['labels'].items()}
        per_step[step] = train_step(images, targets)
        sizes.append(images.shape[0])
        # note: a CPU-GPU sync point, so on a GPU every 50 steps only. A CPU has no GPU to wait
        # for: it looks at every step, and a loss gone NaN stops the run there, not up to 49 steps
        # (minutes at 3 s a step) later, the bar showing loss=nan meanwhile.
        if step % 50 == 0 or step == steps - 1 or device.type == 'cpu':
            bad = first_non_finite(per_step[checked:step + 1, 0])
            bad, checked = (None if bad is None else checked + bad), step + 1
            # Under torchrun the first bad step of any process: DDP's averaged gradients carry a
            # NaN to every process a step later, so each one's own first would mislead.
            first = distributed.earliest(bad, None if bad is None else per_step[bad, 0].item(), context)
            if first is not None:
                bad, loss, rank = first
                where = f' on process {rank}' if context.distributed else ''
                raise Diverged(f'the loss became {loss} at epoch {epoch}, step {bad + 1} of {steps}{where}')
            # The epoch's mean loss so far, by picture as its train loss (under torchrun, process
            # 0's pictures'), shown at the next redraw: one batch's, of the 50th step before, stayed
            # on the bar of a CPU run (3 s a step) for minutes, the same value three times in a log.
            # The steps since the last look added alone: all of them, at every step, was quadratic in the steps.
            new = torch.tensor(sizes[shown:], dtype=per_step.dtype, device=device)
            loss_sum += (per_step[shown:step + 1, 0] * new).sum().item()
            shown, pictures = step + 1, pictures + sum(sizes[shown:])
            bar.set_postfix(loss=f'{loss_sum / pictures:.3f}', refresh=False)
    sizes = torch.tensor(sizes, device=device, dtype=torch.float32)
    totals = torch.cat([(per_step[:, 0] * sizes).sum().view(1), sizes.sum().view(1), per_step[:, 1:].sum(0)])
    totals = distributed.all_reduce_sum(totals, context).tolist()
    row = {'train_loss': totals[0] / totals[1]}
    row.update({f'train_{h}_accuracy': totals[2 + i] / totals[1] for i, h in enumerate(HEADS)})
    return row


METRIC_COLUMNS = (['epoch', 'lr', 'seconds', 'train_loss'] + [f'train_{h}_accuracy' for h in HEADS]
                  + ['val_loss'] + [f'{h}_accuracy' for h in HEADS]
                  + [f'{h}_balanced_accuracy' for h in HEADS])


def write_metrics(history, run_dir):
    # Rewritten whole from the history kept in the checkpoint: a resumed run never duplicates
    # or loses a row, whatever epoch it was killed in.
    with atomic_open(os.path.join(run_dir, 'metrics.csv'), newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, METRIC_COLUMNS, extrasaction='ignore')
        writer.writeheader()
        for row in history:
            writer.writerow({k: metric_text(v) for k, v in row.items()})


def plot_now(row, args):
    # Drawing the curves takes about 0.3 s: on validation epochs and at the end is enough.
    return 'val_loss' in row or row['epoch'] == args.epochs


def save_epoch(run_dir, snapshot, improved, numbered, plot):
    """Writes an epoch's files from its snapshot: last.pth, best.pth if the epoch improved on it, a
    numbered checkpoint, metrics.csv, and the curves if asked."""
    epoch, history = snapshot['epoch'], snapshot['history']
    # last.pth first: where the disk fills up, the file --resume needs is the one written (a
    # resumed run without its best.pth writes it again).
    checkpoint_save(os.path.join(run_dir, 'last.pth'), snapshot)
    if improved:
        checkpoint_save(os.path.join(run_dir, 'best.pth'), snapshot)
    if numbered:
        checkpoint_save(os.path.join(run_dir, f'checkpoint-{epoch:06d}.pth'), snapshot)
    write_metrics(history, run_dir)
    if plot:
        plot_curves(history, os.path.join(run_dir, 'curves.png'))


def complete_resumed_epoch(run_dir, resume, path):
    """The resumed epoch's files that a stop after its last.pth left unwritten or an epoch behind
    (runs.left_unwritten), written as save_epoch would have: else best.pth stayed at an earlier epoch
    for good, the run's record of its best naming this one, and a run stopped in its last epoch kept
    its metrics.csv a row short."""
    left = left_unwritten(run_dir, resume, path)
    # Before they are written below: a folder with none of an epoch's files yet (but best.pth, which
    # keep_best_of_resumed copies in) is most often a branch, a checkpoint copied there
    new_folder = not any(name in ('metrics.csv', 'curves.png') or name.startswith('checkpoint-')
                         for name in os.listdir(run_dir))
    for name in left:
        if name == 'metrics.csv':
            write_metrics(resume['history'], run_dir)
        elif name == 'curves.png':
            plot_curves(resume['history'], os.path.join(run_dir, name))
        else:  # best.pth, the numbered checkpoint
            checkpoint_save(os.path.join(run_dir, name), resume)
    if not left:
        return
    wrote = f'wrote {", ".join(left)} of epoch {resume["epoch"]} from {shown_path(path)}'
    if new_folder:
        stop = ', a stop after its first last.pth' if resume['epoch'] == 1 else ''
        print(f'{wrote}, as its folder held none of its epochs\' files (a checkpoint copied there to branch '
              f'off{stop}, or the run\'s files removed since)')
    else:  # or removed since by hand: the numbered checkpoint is written again all the same, and said
        them, were = ('it', 'it was') if len(left) == 1 else ('them', 'they were')
        print(f'{wrote}: a stop after its last.pth had left {them} unwritten or an epoch behind, or {were} '
              'removed since')


def build_model(attributes, pretrained):
    try:
        return MultiOutputModel.for_attributes(attributes, pretrained=pretrained)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as error:
        if not pretrained:
            raise
        cached = cached_imagenet_weights()
        if isinstance(error, OSError) or not os.path.isfile(cached):  # no internet (URLError), a download cut short
            raise UserError(f'--pretrained: could not get the ImageNet weights ({error}); connect to the internet '
                            f"once, put torchvision's {os.path.basename(cached)} into {os.path.dirname(cached)}/, "
                            'or train from scratch without --pretrained') from error
        raise UserError(f'--pretrained: {cached}: not the ImageNet weights torchvision downloads, or a copy cut short '
                        f'({first_sentence(str(error))}); delete it, so that the next run downloads them again, or '
                        'train from scratch without --pretrained') from error


def choose_precision(args, device):
    """--precision, where auto is bf16 on CUDA except at small batches not compiled (see evaluate.py)."""
    if args.precision == 'bf16' and device.type not in ('cuda', 'cpu'):  # evaluate.autocast_for's
        print(f'note: --precision bf16 runs on CUDA and on the CPU; on {device.type} this run is in fp32')
        return 'fp32'
    if args.precision != 'auto':
        return args.precision
    return default_precision(device, args.batch_size, compiled=bool(args.compile))  # profile_step.py: a bool


def choose_channels_last(args, device):
    """--channels-last, where auto is on except for small batches on CUDA (see evaluate.py)."""
    if args.channels_last == 'auto':
        return default_channels_last(device, args.batch_size)
    return args.channels_last == 'on'


def use_cuda_graphs(args, context):
    """Whether to record the whole training step as one CUDA graph (see train_step.py)."""
    if context.device.type != 'cuda' and args.cuda_graphs == 'on':
        print(f'note: --cuda-graphs on: CUDA graphs need a CUDA GPU; on {context.device.type} each step runs '
              'eagerly')
    if context.device.type != 'cuda' and args.compile == 'reduce-overhead':
        print(f'note: --compile reduce-overhead: its CUDA graphs need a CUDA GPU; on {context.device.type} it '
              'compiles as mode "default"')
    if context.device.type != 'cuda' or args.cuda_graphs == 'off':
        return False
    if context.distributed and args.cuda_graphs == 'on':
        # PyTorch's recipe for capturing DDP (NCCL's async error handling off before the process
        # group starts, DDP built on a side stream, 11 eager steps first) is not what train.py does.
        raise UserError('--cuda-graphs on: not with several processes, whose gradients DDP '
                        'exchanges during the step; use --cuda-graphs auto (eager steps under DDP)')
    # auto: a single process only (DDP's gradient hooks talk to the other processes), and not
    # with --compile reduce-overhead, which replays graphs of its own. A --compile'd model is
    # recorded inside ours: on an H200 at batch 16 that step took 2.05 ms against 2.51 uncompiled
    # in our graph (benchmarks/step_variants.py, README); compiled without our graph is untimed.
    return args.cuda_graphs == 'on' or (not context.distributed and args.compile != 'reduce-overhead')


def check_cpu_compiler(args, device):
    """--compile on a CPU builds C++ kernels: a missing compiler is said before the pictures are
    loaded, not after dynamo has traced the model (20 s on 2 cores). The check is PyTorch's own,
    from a private module; should it move, the failure is still explained where it happens."""
    if not args.compile or device.type != 'cpu':
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.exc import InvalidCxxCompiler
    except ImportError:
        return
    try:
        get_cpp_compiler()
    except InvalidCxxCompiler as error:
        raise UserError(f'--compile: {str(error).splitlines()[0]}. On a CPU torch.compile builds C++ kernels: '
                        'install g++ or clang++ (or set CXX to one), or train without --compile') from None
    # Where a CUDA toolkit is installed, PyTorch's C++ builder warned in the first epoch's progress
    # bar "No CUDA runtime is found, using CUDA_HOME=...": true of any CPU, and no concern of a run on one.
    logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)
    # PyTorch 2.6 printed it instead, as the builder's module was imported: imported here, the line held back.
    with contextlib.redirect_stderr(io.StringIO()) as said:
        importlib.import_module('torch.utils.cpp_extension')
    sys.stderr.write(''.join(line for line in said.getvalue().splitlines(keepends=True)
                             if not line.startswith('No CUDA runtime is found')))


def set_cudnn_search(args, device):
    if device.type == 'cuda':
        # The input size never changes, so a search at the first steps would serve the whole run;
        # but on an H200 it took 12 to 21 s and no later epoch ran faster for it, so it is off
        # unless asked for.
        torch.backends.cudnn.benchmark = args.cudnn_benchmark == 'on'
    elif args.cudnn_benchmark == 'on':  # as --cuda-graphs on says it
        print(f'note: --cudnn-benchmark on: cuDNN is NVIDIA\'s; on {device.type} it has no kernels to search')


def describe_setup(args, context, precision, channels_last, cuda_graphs):
    parts = [precision] + (['channels_last'] if channels_last else []) + (['CUDA graphs'] if cuda_graphs else [])
    if context.device.type == 'cuda' and args.cudnn_benchmark == 'on':
        parts.append("cuDNN's kernel search")
    if args.compile:  # as it runs: reduce-overhead's CUDA graphs need a CUDA GPU (use_cuda_graphs' note)
        parts.append(f'torch.compile {args.compile if context.device.type == "cuda" else "default"}')
    if context.distributed:
        # The learning rate goes with the effective batch (the README's multi-GPU section): said at the start.
        n = context.world_size
        parts.append(f'{n} processes of --batch-size {args.batch_size}: an effective batch of {n * args.batch_size:,}')
    return ', '.join(parts)


def summary_line(epoch, row, elapsed):
    text = f'epoch {epoch:3d}  {elapsed:6.1f}s  train loss {row["train_loss"]:.4f}  '
    text += '  '.join(f'{h} {row[f"train_{h}_accuracy"]:.3f}' for h in HEADS)
    if row.get('val_loss') is not None:
        text += f'  | val loss {row["val_loss"]:.4f}  '
        text += '  '.join(f'{h} {row[f"{h}_accuracy"]:.3f}' for h in HEADS)
    return text


def peak_memory_mib(device):
    """This process's peak memory: (resident, on its GPU or None)."""
    return peak_resident_mib(), torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else None


def peak_memory_line(peaks):
    """peaks: every process's peak_memory_mib. Under torchrun process 0's alone was said, as if the
    run's: a machine sized by it for 8 processes had an eighth of the memory they take."""
    resident, on_gpu = zip(*peaks)
    if len(peaks) == 1:
        return f'peak memory: {resident[0]:,.0f} MiB resident' + (f', {on_gpu[0]:,.0f} MiB on the GPU'
                                                                   if on_gpu[0] is not None else '')
    return (f'peak memory: {max(resident):,.0f} MiB resident in the largest of the {len(peaks)} processes, '
            f'{sum(resident):,.0f} MiB in all' + (f'; {max(on_gpu):,.0f} MiB on the fullest GPU'
                                                 if on_gpu[0] is not None else ''))


def time_line(watch, beside):
    """Where the run's time went after Python's imports, the one-off costs of a GPU apart: starting
    CUDA, the first epoch (cuDNN's kernel search and the graph capture), the first validation.
    `beside`: the seconds spent writing files beside the training, not in its way."""
    def first(name, words):
        return f' ({watch.first[name]:.1f} s {words})' if watch.rounds.get(name, 0) > 1 else ''

    total = watch.elapsed()
    setup = [f'{watch.seconds(name):.1f} s {label}' for name, label in
             (('cuda', 'starting CUDA'), ('pictures', 'loading the pictures')) if name in watch.total]
    covered = sum(watch.seconds(name) for name in ('setup', 'training', 'validation', 'saving'))
    return (f'time: {total:.1f} s after the imports: {watch.seconds("setup"):.1f} s setting up '
            f'({", ".join(setup)}), {watch.seconds("training"):.1f} s training'
            f'{first("training", "of it the first epoch")}, {watch.seconds("validation"):.1f} s validating'
            f'{first("validation", "the first time")}, {watch.seconds("saving"):.1f} s saving '
            f'checkpoints, metrics and curves (and {beside:.1f} s writing them beside the training), '
            f'{total - covered:.1f} s other')


def main(argv=None):
    going_on = []  # while a resumed run sets up: what a stop then leaves (stopped_setting_up)
    try:
        return set_up_and_train(argv, going_on)
    except KeyboardInterrupt as stop:
        # Before a resumed run's first epoch (its pictures decoding: minutes), its checkpoint is as it
        # was: run_cli's line names it and the command to go on, as a stop in an epoch does
        if going_on and not hasattr(stop, 'left'):
            stop.left = going_on[-1]
        raise


def set_up_and_train(argv, going_on):
    watch = Stopwatch()
    # Under torchrun every process reads the command line, the CSVs and the pictures alike, and
    # finds what the others find in them: the first process of each machine says it.
    with distributed.said_once_per_machine():
        args = parse_args(argv)
        if args.resume:
            refuse_a_run_that_saved_no_epoch(args.resume)
        resume = resumable_load(args.resume) if args.resume else None
        if resume is not None:
            args = resumed_args(argv, resume, args.resume, parse_args, build_parser())
        run_dir = run_folder(args, resume)
        context = distributed.setup(args.device)
        if resume is not None and context.is_main:
            going_on.append(stopped_setting_up(args, resume, context))
        device = context.device
        keep_freed_memory(device)  # on a CPU: evaluation batches reuse their memory (allocator.py)
        # Precision and memory format are chosen once, here.
        precision = choose_precision(args, device)
        channels_last = choose_channels_last(args, device)
        cuda_graphs = use_cuda_graphs(args, context)
        torch.manual_seed(args.seed)  # note: exact repeats on the CPU; cuDNN may still vary a little
        set_cudnn_search(args, device)
        if context.is_main:
            print(f'device: {device} ({describe_setup(args, context, precision, channels_last, cuda_graphs)})')
            note_other_precision(resume, precision, args.resume)
        if device.type == 'cuda':
            with watch.phase('cuda'):  # CUDA makes its context at the first tensor there: timed apart
                torch.zeros((), device=device)

        check_inputs(args, resume)
        check_cpu_compiler(args, device)
        if context.is_main:  # before the pictures are loaded, not an epoch later
            check_run_folder(run_dir, args, resume)
            check_log_folder(args, run_dir, resume)
            if given(argv, '--logs') and not tensorboard_installed():  # a flag typed that would do nothing, unsaid
                print(f'note: --logs {args.logs}: tensorboard is not installed, so no log is written there; '
                      '`pip install tensorboard` writes one')
        attributes = labels_of_the_run(args, resume)
        if context.distributed:  # before the pictures load
            check_same_labels(distributed.on_every_process(attributes.to_dict(), context), args)
        with watch.phase('pictures'):
            saved = resume['args'] if resume is not None else {}  # a resumed run's own splits: from its folder
            train_set = FashionDataset(args.train_csv, attributes, train_transform,
                                       pictures_from(saved, 'train_csv', args.train_csv))
            val_set = FashionDataset(args.val_csv, attributes, val_transform,
                                     pictures_from(saved, 'val_csv', args.val_csv))
            if context.is_main:
                note_shared_pictures(train_set, val_set, args)
            train_loader = make_train_loader(train_set, args, context, channels_last)
            val_loader = make_val_loader(val_set, args, context, channels_last)
        digests = {key: split_digests(getattr(args, key)) for key in SPLIT_FILES}  # as the datasets read them
        in_order = {key: ordered for key, (ordered, _) in digests.items()}
        in_any_order = {key: any_order for key, (_, any_order) in digests.items()}
        if context.distributed:
            check_same_rows(distributed.on_every_process((kept_rows(train_loader), kept_rows(val_loader)), context),
                            args)
        if len(train_loader) == 0:  # fewer training pictures than processes: some would take no step
            raise UserError(f'{args.train_csv}: fewer usable pictures than the {context.world_size} processes; '
                            'each process needs at least one')
        # --pretrained: the ImageNet weights downloaded by the first process of each machine, read
        # from its cache by the others; an error, said by that one alone
        with distributed.machines_first_process_first(context):
            model = build_model(attributes, args.pretrained and resume is None)  # resumed: its own weights

    if resume is not None:
        load_weights(model, resume, args.resume)
    model = model.to(device, memory_format=memory_format(channels_last))
    core = model  # the bare model: what is saved, whatever wraps it for training
    if context.distributed:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == 'cuda' else None)
    if args.compile:
        # The first steps compile (about a minute, then cached on disk); the saved weights stay
        # those of `core`, without the compiled wrapper's prefix. The step compiles the loss.
        model = torch.compile(model, mode=args.compile)
    optimizer = make_optimizer(core, args.lr, device, cuda_graphs)
    steps_per_epoch = len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps_per_epoch, args))
    if context.is_main:  # a resumed run too: --epochs may have been lowered
        note_unfinished_warmup(args, steps_per_epoch)
        note_batch_over_the_pictures(args, train_loader, context, cuda_graphs)
    # Autocast's weight-cast cache must be off while a CUDA graph is captured.
    autocast = autocast_for(device, precision)
    train_autocast = lambda: autocast_for(device, precision, cache_enabled=not cuda_graphs)  # noqa: E731
    compiled = bool(args.compile)
    if cuda_graphs:
        train_step = GraphedTrainStep(model, optimizer, scheduler, train_autocast, args.batch_size, compiled)
    else:
        train_step = TrainStep(model, optimizer, scheduler, train_autocast, compiled)

    start_epoch, history, best = 1, [], {'epoch': 0, 'score': -1.0}
    if resume is not None:
        load_training_state(optimizer, scheduler, resume, args.resume)
        start_epoch = resume['epoch'] + 1
        history, best = resume['history'], resume['best']
        print(f'resuming {args.resume} after epoch {resume["epoch"]}') if context.is_main else None
        go_on_by_epochs(scheduler, optimizer, resume['epoch'], steps_per_epoch, args, context, resume.get('processes'))
        redrawn = redrawn_cosine(resume['args'].get('epochs', args.epochs), scheduler.last_epoch, steps_per_epoch,
                                 args)
        if redrawn:
            # The new curve from the next step on: the learning rate loaded is the old curve's.
            lr, note = redrawn
            set_lr(optimizer, lr)
            print(note) if context.is_main else None
    gather = distributed.gather_predictions(context)
    # Once, with the folder the run started in, for args.json and every checkpoint: that folder
    # deleted meanwhile, every epoch's os.getcwd() would stop a run whose paths are all absolute.
    settings = saved_args(args)

    def state(epoch):
        return {'epoch': epoch, 'model': core.state_dict(), 'optimizer': optimizer_state(optimizer),
                'scheduler': scheduler_state(scheduler), 'attributes': attributes.to_dict(), 'precision': precision,
                'args': settings, 'split_digests': in_order, 'split_row_sets': in_any_order,
                'history': history, 'best': best, 'processes': context.world_size}

    writer, claimed, made = None, None, []
    if context.is_main:
        # Imported before the first epoch: a Ctrl-C that lands inside the import of a C extension
        # (pyplot's, at the first plot) comes out as an ImportError, not a KeyboardInterrupt.
        pyplot()
        planned = run_dir
        made = missing_folders(run_dir) if resume is None else []
        run_dir, claimed, writer = start_in_folder(run_dir, args, resume, settings)
        if run_dir != planned:  # the next free name, where another run took the clock's meanwhile
            made = [os.path.abspath(run_dir)] + made[1:]
    last_path = os.path.join(run_dir, 'last.pth')
    watch.mark('setup')
    epoch = start_epoch - 1
    saver = BackgroundSaver()  # writes each epoch's files while the next one trains
    stopped = None
    going_on.clear()  # from here a stop says what is saved itself, below
    try:
        if context.is_main and resume is not None:
            # In here: a Ctrl-C as it writes names the epoch saved and the command to go on, and the
            # run's args.json is put back as its checkpoint holds them (left with --epochs 4, before)
            complete_resumed_epoch(run_dir, resume, args.resume)
        for epoch in range(start_epoch, args.epochs + 1):
            started = time.perf_counter()
            # Seeded per epoch, so a resumed run draws exactly what an unbroken one would.
            torch.manual_seed(args.seed * 1000 + epoch + 1_000_003 * context.rank)
            set_epoch(train_loader, epoch, args.seed, context.rank)
            row = {'epoch': epoch, 'lr': float(optimizer.param_groups[0]['lr'])}  # the epoch's first step's
            with watch.phase('training'):
                row.update(train_one_epoch(model, train_loader, train_step, epoch, args, context, channels_last))
            distributed.sync_buffers(core, context)
            # The losses can stay finite while the weights do not: the last step's update, or
            # BatchNorm's running variances, which only evaluation uses. Checked before the
            # replicas are compared, as NaN equals nothing.
            bad = non_finite_weight(core.state_dict())
            if bad is not None:
                raise Diverged(f'epoch {epoch} ended with {bad[1]} in {bad[0]}, though every loss was finite')
            if not distributed.replicas_identical(core, context):
                raise ReplicasDiffer(f'epoch {epoch}: the processes hold different weights')
            if epoch % args.val_every == 0 or epoch == args.epochs:
                # The bare model: the DDP wrapper would sync buffers, and every process scores
                # only its own shard anyway.
                with watch.phase('validation'):
                    metrics, _, _ = validate(core, val_loader, device, autocast, gather)
                row.update(metrics)
            row['seconds'] = time.perf_counter() - started
            history.append(row)
            if not context.is_main:
                continue
            score = sum(row.get(f'{h}_accuracy', -1) for h in HEADS) / len(HEADS)
            improved = 'val_loss' in row and score > best['score']
            if improved:
                best = {'epoch': epoch, 'score': score}
            with watch.phase('saving'):
                # One copy for all of this epoch's files, taken now: training goes on changing
                # the weights while they are written.
                snapshot = detached_copy(state(epoch))
                numbered = epoch % args.save_every == 0 or epoch == args.epochs
                try:  # raises where an earlier epoch's files failed (a full disk)
                    saver.submit(epoch, save_epoch, run_dir, snapshot, improved, numbered, plot_now(row, args))
                finally:  # once the epoch is queued to be saved: a Ctrl-C after its line keeps it
                    print(summary_line(epoch, row, row['seconds']))
                if writer is not None:
                    log_epoch(writer, row)
        with watch.phase('saving'):
            saver.wait()  # the last epoch's files
            # Every process stays until they are written: a Ctrl-C meanwhile then finds each in
            # here, not one that has ended (a traceback from Python's exit).
            distributed.barrier(context)
    except KeyboardInterrupt as stop:  # a Ctrl-C, or a SIGTERM or SIGHUP (cli.Terminated)
        def say_where_it_stopped(stop):
            words, status = how_stopped(stop)  # status as a shell reports it: 130, 143 or 129
            with second_stop_held():
                saver.close()  # what was queued is written: the epochs finished before the Ctrl-C
                if context.is_main:  # a terminal a SIGHUP closed takes no words: none then
                    message = interrupted_message(epoch, *saved_so_far(saver, start_epoch, last_path, args, resume),
                                                  args.epochs, context, words)
                    print_if_possible('\n' + message, sys.stdout)
            return status
        try:
            status = say_where_it_stopped(stop)
        except KeyboardInterrupt:
            # A second stop before the first was held (the terminal's Ctrl-C passed on once more by
            # gpu_check.sh's `timeout --foreground`, within microseconds): it ended the run with
            # run_cli's line, without the epochs saved and the resume command. Said now.
            status = say_where_it_stopped(stop)
        distributed.cleanup(context)
        raise SystemExit(status)
    except torch._dynamo.exc.BackendCompilerFailed as error:  # a RuntimeError: before the one below
        raise UserError(f'--compile: torch.compile could not build the model ({str(error).splitlines()[0]}). '
                        'It needs a working C++ compiler for the CPU, Triton for a GPU; '
                        'or train without --compile') from error
    except (RuntimeError, PicturesFailed) as error:
        # One of this process's DataLoader workers killed, or a picture gone bad; another process's:
        # run_cli's line
        ended = str(error) if isinstance(error, PicturesFailed) else worker_ended(error, '--workers')
        if ended and context.is_main:
            with second_stop_held():
                saver.close()  # the epochs finished are kept, and named
                print_error(f'{ended}. ' + interrupted_message(
                    epoch, *saved_so_far(saver, start_epoch, last_path, args, resume), args.epochs, context,
                    'The run stopped'))
            distributed.cleanup(context)
            raise SystemExit(2 if isinstance(error, PicturesFailed) else 1)
        if peer_ended(error):
            # The group is broken: left now, every process, so that it and gloo's threads go as soon as
            # DDP lets go of it (as this exception's frames are freed; with PyTorch 2.6 and 2.7, at
            # Python's exit, before it finalizes: cli.keep_until_exit), while Python still runs. Left to
            # Python's exit, a gloo thread still releasing this step's failed exchanges (which takes
            # the GIL) as the interpreter finalized was ended there, inside a C++ destructor: the
            # process aborted after its line ("terminate called without an active exception").
            distributed.cleanup(context)
        if peer_ended(error) and not context.is_main and (os.path.exists(last_path) or args.resume):
            # Process 0 killed (out of memory, say) said nothing: this line alone was left, which
            # named no epoch saved and no command to go on. Held: torchrun's SIGTERM follows within
            # a tenth of a second, as the checkpoint is read, and took its place with "stopped by SIGTERM".
            with second_stop_held():
                kept = kept_after_failure(last_path, args, context)
                print_error(f'process {context.rank} stopped: another process of the run ended (its own lines say '
                            f'why; where process 0 said nothing, killed: {kept})')
            raise SystemExit(1)
        if not (context.is_main and peer_ended(error)):
            raise  # another process whose peer ended: run_cli's line says so
        # A process killed alone (out of memory, say): process 0 meets its absence at the next
        # exchange, and torchrun's SIGTERM to the processes left follows at once.
        with second_stop_held():
            saver.close()
            kept = saved_so_far(saver, start_epoch, last_path, args, resume)
            print_error(interrupted_message(epoch, *kept, args.epochs, context,
                                            'process 0 stopped: another process of the run ended'))
        raise SystemExit(1)
    except Diverged as error:
        stopped = error  # said below, once the files are written and the folder released
    except (UserError, OSError) as error:
        if not saver.failed:
            raise
        with second_stop_held():
            saver.close()
        # An epoch's files that could not be written (a full disk): what is kept, and how to go on.
        failure = str(error) if isinstance(error, UserError) else f'{error.filename}: {error.strerror or error}'
        raise UserError(f'{failure}. {kept_after_failure(last_path, args, context)}') from error
    finally:
        saver.close()  # after any error too: an epoch that finished is never lost
        if writer is not None:
            writer.close()
        if context.is_main and resume is not None and not saver.done:
            put_back_settings(run_dir, resume, settings)  # the folder still locked: no other run writes there meanwhile
        release_run_folder(claimed)
        if context.is_main and resume is None and not os.path.exists(last_path):
            remove_unsaved_run(run_dir, made)
            remove_unsaved_log(writer)
    if stopped is not None:  # the run's last.pth, or where none is saved yet, the one it resumed
        stop_on_divergence(stopped, last_path if os.path.exists(last_path) else args.resume, context)
    peaks = distributed.on_every_process(peak_memory_mib(device), context)
    if context.is_main:
        if context.distributed:
            print(f'weights identical on all {context.world_size} processes after every epoch')
        print(f'done: {counted(args.epochs, "epoch")}. Checkpoints, metrics.csv and curves.png are in '
              f'{shown_path(run_dir)}')
        print(peak_memory_line(peaks))
        print(time_line(watch, saver.seconds))
        print(f'evaluate with: {command("test.py", "--checkpoint", shown_path(last_path))}')
    distributed.cleanup(context)
    return run_dir


if __name__ == '__main__':
    run_cli(main, workers_flag='--workers')
