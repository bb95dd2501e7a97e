# How fast does train.py feed the model, against the tutorial's way and against no data at all?
#   python benchmarks/bench.py                      # the sample catalog (drawn if needed)
#   FASHION_DATA=fashion-product-images python benchmarks/bench.py
# Prints images per second for: (1) the bare training step on tensors already in memory,
# (2) the tutorial's way: its data path (PIL + torchvision per image through a DataLoader) feeding
# its step (fp32, NCHW, no CUDA graphs), (2b) that data path feeding train.py's step, (3) train.py's
# own path with its defaults, (4) evaluation (with the batch norms folded into the convolutions, as
# test.py runs it, and without); and the ratios 3/1, 3/2 (ours against the tutorial's way) and 3/2b
# (against its data path alone), at batch 16 and a larger batch. All numbers of one run come from
# one machine and one dataset.
import argparse
import contextlib
import gc
import glob
import itertools
import multiprocessing
import multiprocessing.util
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ in ('__main__', '__mp_main__'):  # before PyTorch's import (seconds): a Ctrl-C in it is one line too
    import cli
    cli.quiet_ctrl_c_while_starting(__name__)
    cli.check_working_folder()

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import split_data  # noqa: E402
from allocator import keep_freed_memory, peak_resident_mib  # noqa: E402
from cli import (NOTHING_HALF_WRITTEN, STOPPING, UserError, add_debug_flag, left_if_stopped_now,  # noqa: E402
                 non_negative_int, pick_device, positive_float, positive_int, remove_folder_made_by_importing_pytorch,
                 run_cli, stopped_words, usable_cores)
from dataset import (AttributesDataset, FashionDataset, decoding_workers, load_into_memory,  # noqa: E402
                     train_transform, val_transform)
from evaluate import (autocast_for, default_channels_last, default_precision, one_pass_channels_last,  # noqa: E402
                      predict_all)
from memory_data import InMemoryLoader, memory_format  # noqa: E402
from model import MultiOutputModel  # noqa: E402
from sample_catalog import image_count, is_sample_catalog, make_catalog  # noqa: E402
from train_step import GraphedTrainStep, TrainStep, make_optimizer  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Training and evaluation throughput: on the real catalog where '
                                                 'the environment variable FASHION_DATA names its folder, else on '
                                                 'a sample catalog drawn for the run', allow_abbrev=False)
    parser.add_argument('--device', default='auto', help='cuda, mps or cpu (default: auto)')
    parser.add_argument('--batch-sizes', type=batch_sizes, default='16,128',
                        help='comma-separated (default: 16,128)')
    parser.add_argument('--images', type=training_images, default=8000,
                        help='training images to load, 4 to 1,000,000 (default: 8000; the training rates do not '
                             'depend on it where it is not below the batch size; the evaluation rate does below '
                             'about 2,000: each pass, over a fourth as many validation images, also folds the batch '
                             'norms, as test.py does once)')
    parser.add_argument('--seconds', type=positive_float, default=9.0,
                        help='time each training measurement for about this long in all; the evaluation rows '
                             'time one pass over the validation images a round (default: 9.0)')
    parser.add_argument('--rounds', type=positive_int, default=3,
                        help='interleaved rounds per measurement, the best counts (default: 3)')
    parser.add_argument('--workers', type=non_negative_int, default=decoding_workers(),
                        help='worker processes: the tutorial path\'s DataLoader, and decoding the cache as '
                             'train.py does (default: %(default)s)')
    parser.add_argument('--work', type=work_folder, default=None,
                        help='folder for the split and, without FASHION_DATA, the sample catalog (a catalog '
                             'already in its fashion-product-images/ is used as it is); a split of other pictures '
                             'there is not replaced (default: a temporary folder)')
    add_debug_flag(parser)
    return parser.parse_args()


def training_images(text):
    """--images: at least 4, which split_data.py's 80/20 split leaves one validation picture of
    (0 and below too: they were told 'must be at least 1', and 1 then this)."""
    with contextlib.suppress(ValueError):
        if int(text) < 4:
            raise argparse.ArgumentTypeError(f'{int(text)} is too few: the split needs 4 training pictures for one '
                                             'to validate on')
    return image_count(text)


def work_folder(text):
    if not text:  # `--work "$DIR"` with DIR unset: refused, not taken for no --work
        raise argparse.ArgumentTypeError('no folder named; leave --work out for a temporary folder')
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f'{text}: a file, not a folder')
    return text


def batch_sizes(text):
    """'16,128' -> [16, 128], refused here rather than by the DataLoader after the catalog is drawn."""
    try:
        return [positive_int(n) for n in text.split(',')]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f'{text!r}: {error}; give whole numbers above 0, comma-separated')


def add_classes_flag(parser):
    """--classes for the scripts that time the model on random batches, without a catalog."""
    parser.add_argument('--classes', type=class_counts, default='5,143,46',
                        help='gender, article and colour classes (default: 5,143,46, the real catalog)')


def class_counts(text):
    """'5,143,46' -> the class counts MultiOutputModel.for_attributes reads."""
    try:
        genders, articles, colors = (positive_int(n) for n in text.split(','))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f'{text!r}: three whole numbers above 0, for gender,article,colour')
    return SimpleNamespace(num_genders=genders, num_articles=articles, num_colors=colors)


def machine_name(device):
    return torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{usable_cores()} cores'


def prepare_split(args, work):
    data = os.environ.get('FASHION_DATA')
    if data and not os.path.isdir(data):  # split_data.py would name it as its --input
        raise UserError(f'FASHION_DATA={data}: ' + ('a file' if os.path.exists(data) else 'no such folder')
                        + '; it names the folder of styles.csv and images/, or is left unset for the sample catalog')
    drawn = False
    if not data:
        data = os.path.join(work, 'fashion-product-images')
        if not os.path.isfile(os.path.join(data, 'styles.csv')):
            try:
                make_catalog(data, n_images=max(1000, split_for(args.images)), seed=0)
            except ValueError as error:  # files of the user's in --work
                raise UserError(f'--work {work}: {error}') from error
            drawn = True
    try:  # --no-replace: a split of the user's in --work (`--work .`, say) is never written over
        split_data.main(['--input', data, '--output', work, '--max-images', str(split_for(args.images)),
                         '--no-replace'])
    except (UserError, OSError) as error:
        if drawn:  # for nothing: not left behind in the user's folder
            shutil.rmtree(data, ignore_errors=True)
        if isinstance(error, split_data.OtherSplitThere):
            # Of another --images, or of the other catalog: the advice named --images alone, which
            # the user, who had changed FASHION_DATA, had kept.
            catalog = 'the sample catalog (FASHION_DATA unset)' if drawn or not os.environ.get('FASHION_DATA') \
                else f'FASHION_DATA={data}'
            raise UserError(f'--work {work}: {" and ".join(error.paths)} hold another split than the benchmark\'s '
                            f'of --images {args.images:,} on {catalog}, which it would replace; give an empty '
                            'folder, or that of an earlier run with the same --images and catalog') from error
        if isinstance(error, UserError):  # split_data.py's --output is the --work given here
            raise UserError(str(error).replace('--output', '--work')) from error
        raise
    return data


# The table's columns, as a note names them.
COLUMNS = {'bare': '1 bare step', 'tutorial': '2 tutorial', 'tutorial data': '2b its data', 'ours': '3 train.py'}
# A measurement whose slowest round ran more than this below its best was disturbed: a busy
# neighbour, which may have slowed the best rounds of the other paths too.
UNSTEADY = 0.2


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def rate(batches, step, device, seconds, warmup=GraphedTrainStep.WARMUP_STEPS + 1):
    """Images per second of step() over batches, after warm-up, for about `seconds`. The warm-up
    by default holds a CUDA graph's start-up: GraphedTrainStep's eager steps and the one after
    them, which records the graph (it was the first step timed in each path's first round)."""
    for _ in range(warmup):
        step(next(batches))
    sync(device)
    # On a GPU the clock is read every 10 steps, each read waiting for the GPU; a CPU has nothing
    # to wait for, and a step at batch 128 there takes most of a second.
    steps_per_read = 10 if device.type == 'cuda' else 1
    images, started = 0, time.perf_counter()
    while True:
        for _ in range(steps_per_read):
            images += step(next(batches))
        sync(device)  # note: the clock only reads what the GPU has finished
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return images / elapsed


def forever(loader):
    for epoch in itertools.count():
        if hasattr(loader, 'set_epoch'):
            loader.set_epoch(epoch)
        yield from loader


def make_model(attributes, device, channels_last, torchvision_layers=False, model_class=MultiOutputModel):
    model = model_class.for_attributes(attributes, torchvision_layers=torchvision_layers)
    return model.to(device, memory_format=memory_format(channels_last)).train()


def trainer(attributes, device, precision, channels_last, batch_size, graphs, compile_mode=None,
            torchvision_layers=False, compile_loss=True, plain_adam=False):
    core = make_model(attributes, device, channels_last, torchvision_layers)
    model = torch.compile(core, mode=compile_mode) if compile_mode else core
    # plain_adam: the tutorial's torch.optim.Adam as it comes, not fused as train.py's
    optimizer = (torch.optim.Adam(core.parameters(), lr=1e-3) if plain_adam
                 else make_optimizer(core, 1e-3, device, graphs))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    autocast = lambda: autocast_for(device, precision, cache_enabled=not graphs)  # noqa: E731
    compiled = bool(compile_mode)
    step = (GraphedTrainStep(model, optimizer, scheduler, autocast, batch_size, compiled, compile_loss) if graphs
            else TrainStep(model, optimizer, scheduler, autocast, compiled, compile_loss))
    fmt = memory_format(channels_last)

    def run(batch):
        images = batch['img'].to(device, non_blocking=True).contiguous(memory_format=fmt)
        targets = {k: v.to(device, non_blocking=True) for k, v in batch['labels'].items()}
        step(images, targets)
        return images.shape[0]
    return run


class WithBatchNorms(MultiOutputModel):
    """Evaluates with its batch norms as they are, as before they were folded (model.folded)."""

    def folded(self):
        return self.eval()


def evaluation_rates(models, loader, device, precision, rounds):
    """Images per second of evaluate.predict_all, test.py's passes over the validation set, for
    each model in each of interleaved rounds, after one to warm up."""
    rates = {name: [] for name in models}
    for timed in [False] + [True] * rounds:
        for name, model in models.items():
            started = time.perf_counter()
            predict_all(model, loader, device, autocast_for(device, precision))
            sync(device)
            if timed:
                rates[name].append(loader.images.shape[0] / (time.perf_counter() - started))
    return rates


def split_for(training):
    """The pictures to split for that many to train on, in split_data.py's 80/20 split: --images 7
    asked for 8 (7 * 5 // 4), of which 6 went to training."""
    share = 1 - split_data.parse_args([]).val_fraction  # parsed once, not for each total tried
    return next(total for total in itertools.count(training) if round(total * share) >= training)


def busy_machine_note(rounds, limit=UNSTEADY):
    """A line naming the measurements whose rounds differed by more than `limit` of their best,
    or None. The best round counts, but on a machine that busy the other paths' best rounds may
    have been slowed too, and a ratio can be off by as much."""
    unsteady = {name: rates for name, rates in rounds.items() if min(rates) < (1 - limit) * max(rates)}
    if not unsteady:
        return None
    name, rates = min(unsteady.items(), key=lambda item: min(item[1]) / max(item[1]))
    return (f'note: in {len(unsteady)} of {len(rounds)} measurements the rounds differed by more than {limit:.0%}, '
            f'most in {name} ({min(rates):.0f} to {max(rates):.0f} images/s): the machine was busy, and the '
            'ratios above may be off by as much; run it again when it is quieter')


def above_the_bare_step_note(ratios, rounds):
    """A line where a path into train.py's step (2b or 3) ran faster than the bare step, which bounds
    both (a ratio to it above 1 by more than noise), or None: the machine was busy as the bare step was
    timed. With one round, busy_machine_note cannot tell, having no rounds to compare; 3.55 was
    printed without a word. ratios: {'3/1 at batch 16': 1.14, '2b/1 at batch 16': 0.3, ...}."""
    above = {label: ratio for label, ratio in ratios.items() if ratio > 1 + UNSTEADY / 2}
    if not above:
        return None
    return ('note: a path into train.py\'s step ran faster than the bare step, which bounds it ('
            + ', '.join(f'{label.replace(" at ", f" {ratio:.2f} at ", 1)}' for label, ratio in above.items())
            + '): the machine was busy as the bare step was timed, and the ratios above are off; run it again '
            + ('with 2 or more --rounds, which show such a spread' if rounds == 1 else 'when it is quieter'))


def fixed_batch(attributes, batch_size, device):
    # The same batch again and again: the rate of the model alone, with no data work at all.
    g = torch.Generator().manual_seed(0)
    labels = {'gender_labels': attributes.num_genders, 'article_labels': attributes.num_articles,
              'color_labels': attributes.num_colors}
    batch = {'img': torch.randn(batch_size, 3, 80, 60, generator=g).to(device),
             'labels': {k: torch.randint(0, n, (batch_size,), generator=g).to(device) for k, n in labels.items()}}
    return itertools.repeat(batch)  # an iterator, like forever()


def main():
    args = parse_args()
    # Before the catalog is drawn and split: --images is the most training pictures there will be
    # (measure() checks the split itself, of the real catalog's usable pictures, say).
    too_big = [size for size in args.batch_sizes if size > args.images]
    if too_big:
        raise UserError(f'--batch-sizes {",".join(map(str, too_big))}: more than the {args.images:,} training pictures '
                        'of --images; raise --images or give smaller batches')
    if args.work:  # the split (and the sample catalog, without FASHION_DATA) stays there
        with ended_at_once_by_a_stop():
            measure(args, args.work)
        return
    # Or else a new folder under TMPDIR, which goes when the run ends, however it ends.
    folder = os.path.join(tempfile.gettempdir(), f'fashion-bench-{secrets.token_hex(6)}')
    with ended_at_once_by_a_stop(removing=folder):  # before the folder is made: no stop leaves it
        os.mkdir(folder, 0o700)
        try:
            measure(args, folder)
        except KeyboardInterrupt as stop:  # a catalog cut short while drawn there goes with the folder
            stop.left = NOTHING_HALF_WRITTEN
            raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def ended_at_once_by_a_stop(removing=None):
    """A SIGTERM (`timeout`, `kill`) or a SIGHUP (its terminal closed) ends the run at once with
    status 143 or 129, as a shell reports it, and the line every script stops on: the lines
    printed so far flushed, the processes it started ended and the folder `removing` removed.
    Python itself would end without doing any of it. A SIGHUP ignored (`nohup`) stays ignored."""
    if threading.current_thread() is not threading.main_thread():  # main() called from a thread
        yield  # signal handlers are the main thread's alone
        return
    parent = os.getpid()
    # multiprocessing's folder for temporary files (pymp-*, in TMPDIR), made now for the processes
    # forked from here to share: a DataLoader worker makes its own as it sends the pictures, and
    # killed, it leaves it behind. The folder goes when this process ends, also by a signal.
    shared = multiprocessing.util.get_temp_dir()

    def end(signum, frame):
        if os.getpid() != parent:  # a process forked from here (split_data.py's pool) just dies
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        # All done here, not by raising SystemExit to unwind to the `finally` blocks: numpy clears
        # exceptions in places (numpy/numpy#20596), and one raised so while the catalog was drawn
        # was lost in 1 run of the test in 7 to 25, the run going on to the end. The children go
        # first: split_data.py's pool, checking the pictures, would wait for work for ever, and a
        # DataLoader's workers for up to 5 s (PyTorch's watchdog). They have ended before their
        # temporary files go. Nothing in the folder `removing` is the user's. A DataLoader's
        # handler of SIGCHLD would take its killed workers for a failure, and raise from inside
        # this function.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        children = multiprocessing.active_children()
        others = children_now() - {child.pid for child in children}  # one forked a moment ago
        for child in children:
            child.kill()
        for pid in others:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for child in children:
            child.join(5)
        for pid in others:
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
        for folder in filter(None, (removing, shared)):
            shutil.rmtree(folder, ignore_errors=True)
        remove_folder_made_by_importing_pytorch()
        # The line every script ends on, written past Python's buffers: the signal may have come
        # in the middle of a write to them (a progress bar's), which print would raise on.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                stream.flush()
        # A catalog being drawn into --work is left unfinished; one in the folder `removing` is gone.
        left = NOTHING_HALF_WRITTEN if removing else left_if_stopped_now()
        with contextlib.suppress(OSError):
            os.write(2, f'\n{stopped_words(signum)}; {left}\n'.encode())
        os._exit(128 + signum)

    earlier = {number: signal.getsignal(number) for number in STOPPING}
    taken = {number: handler for number, handler in earlier.items() if handler is not signal.SIG_IGN}
    for number in taken:
        signal.signal(number, end)
    try:
        yield
    finally:
        for number, handler in taken.items():
            signal.signal(number, handler)


def children_now():
    """The processes this one has forked and not yet waited for, as Linux lists them (none
    elsewhere). multiprocessing lists a process only once its start() returns, so a DataLoader
    worker forked as the signal came would be missed, and left to PyTorch's watchdog (5 s)."""
    me, pids = os.getpid(), set()
    for stat in glob.glob('/proc/[0-9]*/stat'):
        with contextlib.suppress(OSError, IndexError, ValueError), open(stat) as f:
            if int(f.read().rsplit(')', 1)[1].split()[1]) == me:  # the parent's pid, after the name
                pids.add(int(stat.split('/')[2]))
    return pids


def measure(args, work):
    device = pick_device(args.device)
    keep_freed_memory(device)  # as train.py does
    torch.backends.cudnn.benchmark = False  # train.py's default (the tutorial's code never set it)
    channels_last = one_pass_channels_last(device)  # test.py's; training takes train.py's at each batch size
    graphs = device.type == 'cuda'
    data = prepare_split(args, work)
    attributes = AttributesDataset(os.path.join(data, 'styles.csv'))
    train_set = FashionDataset(os.path.join(work, 'train.csv'), attributes, train_transform)
    too_big = [size for size in args.batch_sizes if size > len(train_set)]
    if too_big:  # its paths 2 and 3 would time smaller batches than the bare step's, and compare them
        raise UserError(f'--batch-sizes {",".join(map(str, too_big))}: more than the {len(train_set):,} training '
                        'pictures; raise --images or give smaller batches')
    val_set = FashionDataset(os.path.join(work, 'val.csv'), attributes, val_transform)
    val_images = len(val_set)  # the evaluation's batch, where there are fewer than 256
    val_memory = InMemoryLoader.from_dataset(val_set, 256, device, train=False, channels_last=channels_last,
                                             workers=args.workers)
    started = time.perf_counter()
    images, labels, _ = load_into_memory(train_set, args.workers)
    cache_seconds = time.perf_counter() - started
    layouts = ('training NCHW at batches of 16 or fewer, channels_last above, evaluation NCHW'
               if device.type == 'cuda' else 'channels_last')
    print(f'\ndevice {device} ({machine_name(device)}), torch {torch.__version__}, {layouts}'
          f'{", CUDA graphs" if graphs else ""}, {len(train_set):,} training images from '
          f'{"the sample catalog" if is_sample_catalog(data) else "the real catalog"}')
    print(f'{"batch":>5} {"precision":>9} {"1 bare step":>12} {"2 tutorial":>11} {"2b its data":>12} '
          f'{"3 train.py":>11} {"3/1":>6} {"3/2":>6} {"3/2b":>6}   (images/s)')
    spreads, ratios = {}, {}  # each measurement's rate in each round; 3/1 and 2b/1 at each batch size
    for batch_size in args.batch_sizes:
        precision = default_precision(device, batch_size)  # train.py's, at this batch size
        layout = default_channels_last(device, batch_size)  # the same
        # One for each path: a loader with persistent workers has one iterator at a time.
        tutorial_loaders = [DataLoader(train_set, batch_size=batch_size, shuffle=True, num_workers=args.workers,
                                       pin_memory=device.type == 'cuda', persistent_workers=args.workers > 0)
                            for _ in range(2)]
        paths = {
            'bare': (fixed_batch(attributes, batch_size, device),
                     trainer(attributes, device, precision, layout, batch_size, graphs)),
            # The original: fp32, contiguous tensors, no graphs, per-image PIL work in workers; its
            # model's layers as torchvision builds them, and plain Adam.
            'tutorial': (forever(tutorial_loaders[0]), trainer(attributes, device, 'fp32', False, batch_size, False,
                                                               torchvision_layers=True, plain_adam=True)),
            # Its data path into train.py's step: 3/2b is what the data path alone gains, where 3/2
            # also holds the step's layout (channels_last: 1.1 to 1.35x on a CPU), graphs, fused
            # Adam and model.py's layers.
            'tutorial data': (forever(tutorial_loaders[1]),
                              trainer(attributes, device, precision, layout, batch_size, graphs)),
            'ours': (forever(InMemoryLoader(images, labels, batch_size, device, True, channels_last=layout)),
                     trainer(attributes, device, precision, layout, batch_size, graphs)),
        }
        # Interleaved rounds, best of each: a busy neighbour then slows all four paths more alike.
        rounds = {name: [] for name in paths}
        for round_ in range(args.rounds):
            for name, (batches, step) in paths.items():
                # A graph's start-up in the first round only: the later ones go on where it left off,
                # and their warm-up steps (at batch 128 on 2 CPU cores, 0.4 to 0.7 s each) stretched a
                # busy machine's run past 3 minutes
                warmup = {} if round_ == 0 else {'warmup': 1}
                rounds[name].append(rate(batches, step, device, args.seconds / args.rounds, **warmup))
        bare, tutorial, its_data, ours = (max(rounds[name]) for name in ('bare', 'tutorial', 'tutorial data', 'ours'))
        ratios.update({f'3/1 at batch {batch_size}': ours / bare, f'2b/1 at batch {batch_size}': its_data / bare})
        spreads.update({f'{COLUMNS[name]} at batch {batch_size}': rates for name, rates in rounds.items()})
        # This batch size's loader workers, pin-memory thread and CUDA graphs go now, not in the
        # middle of the next one's measurements.
        del paths, tutorial_loaders, batches, step
        gc.collect()
        print(f'{batch_size:5d} {precision:>9} {bare:12.0f} {tutorial:11.0f} {its_data:12.0f} {ours:11.0f} '
              f'{ours / bare:6.2f} {ours / tutorial:6.2f} {ours / its_data:6.2f}')

    # test.py's for a run validated in bf16 (on CUDA, a batch over 16 or compiled); fp32 on a CPU
    precision = default_precision(device)
    models = {'folded': make_model(attributes, device, channels_last),
              'unfolded': make_model(attributes, device, channels_last, model_class=WithBatchNorms)}
    evaluation = evaluation_rates(models, val_memory, device, precision, args.rounds)
    folded, unfolded = max(evaluation['folded']), max(evaluation['unfolded'])
    print(f'4 evaluation (batch {min(256, val_images)}, {precision}): {folded:.0f} images/s; with the batch norms not '
          f'folded {unfolded:.0f} ({folded / unfolded:.2f}x)')
    spreads.update({f'evaluation {name}': rates for name, rates in evaluation.items()})
    # What the data costs the step in (3): the cache, the batched augmentation, the batches.
    alone = min(16, len(train_set))  # a batch of all of them where there are fewer
    batches = forever(InMemoryLoader(images, labels, alone, device, True,
                                     channels_last=default_channels_last(device, alone)))
    # In rounds, the best counting and a busy machine's spread said, as for the others
    rates = [rate(batches, lambda batch: batch['img'].shape[0], device, args.seconds / 6 / args.rounds)
             for _ in range(args.rounds)]
    spreads["train.py's data path alone"] = rates
    print(f"train.py's data path alone, no model (batch {alone}): {max(rates):.0f} images/s")
    print(f'in-memory cache: {len(train_set):,} images decoded in {cache_seconds:.1f}s, '
          f'{images.numel() / 2**20:.0f} MiB ({images.numel() / len(train_set) / 1024:.1f} KiB an image)')
    gpu_peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else None
    print(f'peak resident memory of this process: {peak_resident_mib():.0f} MiB'
          + (f'; peak GPU memory: {gpu_peak:.0f} MiB' if gpu_peak is not None else ''))
    # Both where both hold: the spread of the rounds says nothing of the bare step's being the slower
    for note in (busy_machine_note(spreads), above_the_bare_step_note(ratios, args.rounds)):
        if note:
            print(note)


if __name__ == '__main__':
    run_cli(main, workers_flag='--workers')
