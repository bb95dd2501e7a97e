# What keeping freed memory (allocator.py) gains on a CPU: train.py's training step at batch 16
# and 128 and test.py's evaluation at batch 256, each timed in a fresh process with glibc's
# default malloc and with train.py's setting, the two alternated. A process cannot go back to
# malloc's defaults once it has changed them, hence a process for each.
#   python benchmarks/freed_memory.py             # about 4 minutes on 2 CPU cores
import argparse
import ctypes
import os
import resource
import signal
import subprocess
import sys


def end_with_parent(parent):
    """The measurement ends when the script that started it ends, however it ends (`kill`,
    `timeout`, a SIGTERM while the measurement was being started), rather than run on alone."""
    if sys.platform.startswith('linux'):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the kernel kills it then
    if os.getppid() != parent:  # it ended before that
        os._exit(1)


# First, before PyTorch's import (2 to 14 s): a script stopped while it started this process (its
# subprocess.run not yet returned, so it kills nothing) left it to import on alone.
if __name__ == '__main__' and 'FREED_MEMORY_PARENT' in os.environ:  # started by run_child, not by hand
    end_with_parent(int(os.environ['FREED_MEMORY_PARENT']))

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == '__main__':  # before PyTorch's import (seconds): a Ctrl-C in it is one line too
    import cli
    cli.quiet_ctrl_c_while_starting()
    cli.check_working_folder()

import torch  # noqa: E402

from allocator import keep_freed_memory  # noqa: E402
from bench import add_classes_flag, evaluation_rates, fixed_batch, make_model, rate, trainer  # noqa: E402
from cli import add_debug_flag, counted, positive_float, positive_int, run_cli, usable_cores  # noqa: E402
from dataset import HEADS  # noqa: E402
from evaluate import predict_all  # noqa: E402
from memory_data import InMemoryLoader  # noqa: E402

SETTINGS = {'default': "glibc's default", 'kept': 'freed memory kept'}
MEASURES = {'train-16': 'training step, batch 16', 'train-128': 'training step, batch 128',
            'evaluate-256': 'evaluation, batch 256'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Training and evaluation on a CPU, with and without keeping "
                                                 "freed memory (allocator.py)", allow_abbrev=False)
    parser.add_argument('--seconds', type=positive_float, default=4.0,
                        help='time each training measurement for about this long in each round (default: 4.0)')
    parser.add_argument('--eval-images', type=positive_int, default=2048,
                        help='time each evaluation measurement on one pass over this many pictures, after one '
                             'to warm up (default: 2048)')
    parser.add_argument('--rounds', type=positive_int, default=2,
                        help='alternated rounds of both settings, the best counts (default: 2)')
    parser.add_argument('--child', nargs=2, metavar=('SETTING', 'MEASURE'), default=None,
                        help=f'take one measurement in this process and print it: SETTING {" or ".join(SETTINGS)}, '
                             f'MEASURE {", ".join(MEASURES)} (default: none, run all of them, each in a new process)')
    add_classes_flag(parser)
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.child and (args.child[0] not in SETTINGS or args.child[1] not in MEASURES):
        parser.error(f'--child {" ".join(args.child)}: not a setting and a measure named in --help')
    return args


def page_faults(work):
    """The page faults of this process while work() runs: each one a fresh page from the kernel."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    work()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def measure(setting, what, attributes, seconds, eval_images):
    """Images per second of one measurement in this process, with malloc as the setting says, and
    the page faults an image once warmed up."""
    device = torch.device('cpu')
    if setting == 'kept' and not keep_freed_memory(device):
        raise SystemExit('this system does not take the setting (not Linux with glibc)')
    kind, batch_size = what.split('-')
    batch_size = int(batch_size)
    if kind == 'train':
        step = trainer(attributes, device, 'fp32', True, batch_size, graphs=False)
        batches = fixed_batch(attributes, batch_size, device)
        images_a_second = rate(batches, step, device, seconds)
        return images_a_second, page_faults(lambda: [step(next(batches)) for _ in range(4)]) / (4 * batch_size)
    images = torch.randint(0, 256, (eval_images, 3, 80, 60), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    labels = {head: torch.zeros(len(images), dtype=torch.long) for head in HEADS}
    loader = InMemoryLoader(images, labels, batch_size, device, False, channels_last=True)
    model = make_model(attributes, device, True)
    images_a_second = max(evaluation_rates({'model': model}, loader, device, 'fp32', 1)['model'])
    return images_a_second, page_faults(lambda: predict_all(model, loader, device)) / len(images)


def run_child(setting, what, args):
    """The measurement in a new Python process, whose malloc starts from its defaults."""
    classes = args.classes
    command = [sys.executable, os.path.abspath(__file__), '--child', setting, what, '--seconds', str(args.seconds),
               '--eval-images', str(args.eval_images),
               '--classes', f'{classes.num_genders},{classes.num_articles},{classes.num_colors}']
    parent = dict(os.environ, FREED_MEMORY_PARENT=str(os.getpid()))
    done = subprocess.run(command, capture_output=True, text=True, env=parent)
    if done.returncode != 0:
        raise SystemExit(f'{what} with {SETTINGS[setting]} failed:\n{done.stderr.strip()}')
    images_a_second, faults = done.stdout.split()[-2:]
    return float(images_a_second), float(faults)


def main():
    args = parse_args()
    if args.child:
        print(*measure(*args.child, args.classes, args.seconds, args.eval_images))
        return
    best = {}  # (setting, what): (images/s, page faults an image), the fastest round's
    for _ in range(args.rounds):
        for what in MEASURES:
            for setting in SETTINGS:
                best[setting, what] = max(best.get((setting, what), (0.0, 0.0)), run_child(setting, what, args))
    print(f'device cpu ({usable_cores()} cores), torch {torch.__version__}, fp32, channels_last, '
          f'best of {counted(args.rounds, "round")}, each measurement in a new process')
    print(f"default: {SETTINGS['default']}; kept: {SETTINGS['kept']} (allocator.py)")
    print(f'{"":24}{"images/s: default":>18}{"kept":>8}{"ratio":>7}{"page faults an image: default":>32}{"kept":>8}')
    for what, name in MEASURES.items():
        (default, default_faults), (kept, kept_faults) = best['default', what], best['kept', what]
        if what.startswith('evaluate') and args.eval_images < int(what.split('-')[1]):
            name = f'evaluation, batch {args.eval_images}'  # all of them in one, fewer than it names
        print(f'{name:24}{default:18.0f}{kept:8.0f}{kept / default:7.2f}{default_faults:32.1f}{kept_faults:8.1f}')


if __name__ == '__main__':
    run_cli(main)
