# Which way of running the training step is fastest on this machine? The bare step (model, loss,
# backward, Adam, on one batch already in memory) in each configuration train.py offers: fp32 or
# bf16 autocast, eager or torch.compile, with or without CUDA graphs, channels_last or not; and the
# default once more on torchvision's own layers, the tutorial's model, for what model.py's layers
# gain, and the first compiled one with its loss and statistics eager, for what compiling them
# gains. The start-up (compiling, cuDNN's kernel search, the graph capture) is printed too: it is
# part of a run's wall-clock.
#   python benchmarks/step_variants.py                  # batch 16, the tutorial's
#   python benchmarks/step_variants.py --batch-size 256 --seconds 2
# The last line gives train.py's flags for the fastest configuration.
import argparse
import os
import sys
import time
import traceback
from typing import NamedTuple, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == '__main__':  # before PyTorch's import (seconds): a Ctrl-C in it is one line too
    import cli
    cli.quiet_ctrl_c_while_starting()
    cli.check_working_folder()

import torch  # noqa: E402

from allocator import keep_freed_memory  # noqa: E402
from bench import add_classes_flag, fixed_batch, machine_name, rate, sync, trainer  # noqa: E402
from cli import (UserError, add_debug_flag, debugging, memory_words, non_negative_float, out_of_memory,  # noqa: E402
                 pick_device, positive_float, positive_int, run_cli)
from evaluate import default_channels_last, default_precision  # noqa: E402

WARMUP_STEPS = 6  # covers compiling, the graph capture after 3 steps, and inductor's graph recording


def parse_args():
    parser = argparse.ArgumentParser(description='Training-step rate in each configuration of train.py',
                                     allow_abbrev=False)
    parser.add_argument('--device', default='auto', help='cuda, mps or cpu (default: auto)')
    parser.add_argument('--batch-size', type=positive_int, default=16, help='images per step (default: 16)')
    parser.add_argument('--seconds', type=positive_float, default=6.0,
                        help='time each configuration for about this long in all (default: 6.0)')
    parser.add_argument('--rounds', type=positive_int, default=3,
                        help='interleaved rounds per configuration, the best counts (default: 3)')
    add_classes_flag(parser)
    parser.add_argument('--skip-compile', action='store_true',
                        help='leave out the torch.compile configurations (default: off)')
    parser.add_argument('--budget', type=non_negative_float, default=None,
                        help='seconds of start-ups after which no further configuration starts (the '
                             'first two always do); those ready are timed (default: no limit)')
    add_debug_flag(parser)
    return parser.parse_args()


class Config(NamedTuple):
    precision: str  # 'fp32' or 'bf16'
    compile_mode: Optional[str]  # None, 'default' or 'reduce-overhead'
    graphs: bool  # train.py's own whole-step CUDA graph
    channels_last: bool
    cudnn_search: bool = False  # train.py's --cudnn-benchmark on


def variants(device, batch_size, skip_compile):
    """The configurations train.py can run at this batch size, as a list of Config.

    train.py's default comes first (the others are compared with it). A start-up takes seconds on
    a CPU but took 20 to 30 s on an H200 with cuDNN's search, so --budget cuts the list from its
    end, and the likeliest winners come early. On CUDA: the default in the other memory format
    second (train.py's is NCHW at batch 16 and channels_last above: in channels_last PyTorch hands
    the 17 depthwise convolutions to cuDNN, whose kernels for them may be built at run time, where
    in NCHW it runs its own); then train.py's --compile, inside our graph (in bf16 at any batch:
    at batch 16 a GPU step is bound by its number of kernels, compiling fuses them, and the casts
    of bf16 with them), and the same with cuDNN's search (kernels picked by timing them: that may
    pay over the tutorial's 100,000 steps, but it runs at every start, where inductor's kernels
    are cached on disk); then the other precision, eager without the graph (what the graph buys)
    and the other compiled ways. On a CPU the quick ones come before those that compile.
    """
    p, pc = default_precision(device, batch_size), default_precision(device, batch_size, compiled=True)
    q, qc = ('bf16' if p == 'fp32' else 'fp32'), ('bf16' if pc == 'fp32' else 'fp32')
    c = default_channels_last(device, batch_size)  # train.py's layout, c, and the other one
    if device.type == 'cuda':  # (precision, compile mode, our CUDA graph, channels_last[, cuDNN's search])
        ways = [(p, None, True, c), (p, None, True, not c), (pc, 'default', True, c), (pc, 'default', True, c, True),
                (q, None, True, c),
                (q, None, True, not c), (pc, 'default', True, not c), (qc, 'default', True, c),
                (p, None, False, c), (q, None, False, c),
                (p, 'reduce-overhead', False, c), (q, 'reduce-overhead', False, c),
                (p, 'default', False, c), (q, 'default', False, c)]
    else:  # no graphs, and reduce-overhead is the same as default there
        ways = [(p, None, False, c), (q, None, False, c), (p, None, False, not c), (q, None, False, not c),
                (p, 'default', False, c), (q, 'default', False, c)]
    return [Config(*way) for way in ways if not (skip_compile and way[1])]


def train_flags(device, config, batch_size):
    flags = [f'--precision {config.precision}']
    if config.channels_last != default_channels_last(device, batch_size):
        flags.append(f'--channels-last {"on" if config.channels_last else "off"}')
    if config.compile_mode:
        flags.append('--compile' if config.compile_mode == 'default' else f'--compile {config.compile_mode}')
    if device.type == 'cuda':
        flags.append(f'--cuda-graphs {"on" if config.graphs else "off"}')
    if config.cudnn_search:
        flags.append('--cudnn-benchmark on')
    return ' '.join(flags)


# The default once more, on the trunk's layers exactly as torchvision builds them (in-place ReLU6,
# batch norms that each count their batches), as the tutorial's model had them: what model.py's
# own layers gain, in the same run. Started second whatever --budget says: its convolutions are
# the default's, so cuDNN's search does not run again.
TORCHVISION_LAYERS = "the default on torchvision's own layers (the tutorial's model)"
# The first compiled configuration once more with only the model compiled, as train.py compiled
# it until 2026-12-04: what compiling the loss and the batch's statistics with it gains.
LOSS_EAGER = ', the loss and statistics not compiled'


def start(attributes, device, args, config, **variant):
    """A ready-to-time step and its start-up seconds: compiling, kernel search, graph capture.
    variant: trainer's torchvision_layers or compile_loss, for the rows that compare our ways."""
    torch.backends.cudnn.benchmark = config.cudnn_search  # as train.py sets it; read as each layer first runs
    step = trainer(attributes, device, config.precision, config.channels_last, args.batch_size,
                   config.graphs, config.compile_mode, **variant)
    batches = fixed_batch(attributes, args.batch_size, device)
    started = time.perf_counter()
    for _ in range(WARMUP_STEPS):
        step(next(batches))
    sync(device)
    return step, batches, time.perf_counter() - started


def main():
    args = parse_args()
    device = pick_device(args.device)
    keep_freed_memory(device)  # as train.py does
    attributes = args.classes  # the class counts of each head
    print(f'device {device} ({machine_name(device)}), torch {torch.__version__}, batch {args.batch_size}')
    ready, failed, short_of_memory, began = {}, [], False, time.perf_counter()
    configs = [(train_flags(device, config, args.batch_size), config, {})
               for config in variants(device, args.batch_size, args.skip_compile)]
    configs.insert(1, (TORCHVISION_LAYERS, configs[0][1], {'torchvision_layers': True}))
    compiled = next((i for i, (_, config, _) in enumerate(configs) if config.compile_mode), None)
    if compiled is not None:
        flags, config, _ = configs[compiled]
        configs.insert(compiled + 1, (flags + LOSS_EAGER, config, {'compile_loss': False}))
    for flags, config, variant in configs:
        if (ready and 'torchvision_layers' not in variant and args.budget is not None
                and time.perf_counter() - began > args.budget):
            print(f'not started (over --budget {args.budget:g} s): {flags}')
            continue
        try:
            ready[flags] = start(attributes, device, args, config, **variant)
            print(f'ready after {ready[flags][2]:.1f} s: {flags}', flush=True)
        except BrokenPipeError:  # its reader stopped (`| head -1`): run_cli stops quietly, as the others do
            raise
        except Exception as error:  # one configuration failing must not hide the others' figures
            failed.append(flags)
            if out_of_memory(error):  # a batch too large for the machine: its words are enough
                short_of_memory = True
                print(f'failed: {flags}: out of memory: {memory_words(error)}', flush=True)
                continue
            traceback.print_exc(limit=None if debugging() else -3)
            print(f'failed: {flags}: {(str(error).splitlines() or [type(error).__name__])[0][:200]}', flush=True)
    if not ready:
        raise UserError(f'no configuration could be timed: all {len(failed)} failed (above)'
                        + ('; a smaller --batch-size needs less memory' if short_of_memory else ''))
    # Interleaved rounds, best of each: a busy neighbour then slows every configuration alike.
    best = dict.fromkeys(ready, 0.0)
    search = {flags: config.cudnn_search for flags, config, _ in configs}
    for _ in range(args.rounds):
        for flags, (step, batches, _) in ready.items():
            torch.backends.cudnn.benchmark = search[flags]  # for an eager step; a graph has its kernels
            best[flags] = max(best[flags], rate(batches, step, device, args.seconds / args.rounds, warmup=0))
    print(f'{"images/s":>9} {"ms/step":>8} {"start-up s":>11}   train.py flags')
    for flags, images_per_second in best.items():
        print(f'{images_per_second:9.0f} {1000 * args.batch_size / images_per_second:8.2f} '
              f'{ready[flags][2]:11.1f}   {flags}')
    first = configs[0][0]
    if first in best and TORCHVISION_LAYERS in best:
        print(f"model.py's layers: {best[first] / best[TORCHVISION_LAYERS]:.2f}x the rate of torchvision's own, "
              'the same numbers')
    with_loss = configs[compiled][0] if compiled is not None else None
    if with_loss in best and with_loss + LOSS_EAGER in best:
        print(f'the loss and statistics compiled with the model: {best[with_loss] / best[with_loss + LOSS_EAGER]:.2f}x '
              'the rate of the model compiled alone')
    ours = {flags for flags, _, variant in configs if variant}  # rows that compare our ways, not train.py's
    flags = [f for f in best if f not in ours]
    if flags:  # against the default, or where the default is the fastest, against the next
        fastest = max(flags, key=best.get)
        others = [f for f in flags if f != fastest]
        against = flags[0] if fastest != flags[0] else max(others, key=best.get, default=None)
        ratio = f', {best[fastest] / best[against]:.2f}x {against}' if against else ''
        print(f'fastest: {fastest}  ({best[fastest]:.0f} images/s{ratio})')
    if failed:  # the table holds the others; a script reading the status (gpu_check.sh) is told
        raise UserError(f'{len(failed)} of {len(configs)} configurations failed (above): {"; ".join(failed)}')


if __name__ == '__main__':
    run_cli(main, memory_flag='--batch-size')
