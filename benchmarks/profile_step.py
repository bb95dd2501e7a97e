# Where does one training step's time go? step_variants.py says how fast each configuration is;
# this says why, operation by operation, with PyTorch's profiler: on a GPU, how many kernels a
# step launches, how long they run in all against the step's time replayed as a CUDA graph (the
# rest is the GPU waiting between kernels), and which operations and kernels take the time; on a
# CPU, each operation's own CPU time.
#   python benchmarks/profile_step.py                          # train.py's default at batch 16
#   python benchmarks/profile_step.py --channels-last on --compile
import argparse
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == '__main__':  # before PyTorch's import (seconds): a Ctrl-C in it is one line too
    import cli
    cli.quiet_ctrl_c_while_starting()
    cli.check_working_folder()

import torch  # noqa: E402
from torch.autograd import DeviceType  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from allocator import keep_freed_memory  # noqa: E402
from bench import add_classes_flag, fixed_batch, machine_name, rate, sync, trainer  # noqa: E402
from cli import UserError, add_debug_flag, pick_device, positive_int, run_cli  # noqa: E402
from train import choose_channels_last, choose_precision  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Profile one training step of train.py's model", allow_abbrev=False)
    parser.add_argument('--device', default='auto', help='cuda, mps or cpu (default: auto)')
    parser.add_argument('--batch-size', type=positive_int, default=16, help='images per step (default: 16)')
    parser.add_argument('--precision', choices=['auto', 'fp32', 'bf16'], default='auto',
                        help="as train.py's (default: auto, train.py's choice at this batch size)")
    parser.add_argument('--channels-last', choices=['auto', 'on', 'off'], default='auto',
                        help="as train.py's (default: auto, train.py's choice at this batch size)")
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model, mode "default", as train.py --compile (default: off)')
    parser.add_argument('--steps', type=positive_int, default=20,
                        help='steps profiled; the figures are per step (default: 20)')
    parser.add_argument('--top', type=positive_int, default=12,
                        help='rows in each table (default: 12)')
    add_classes_flag(parser)
    add_debug_flag(parser)
    return parser.parse_args(argv)


def profiled_step(step, batches, device, steps):
    """The profiler's events of `steps` training steps, after a warm-up (compiling, cuDNN's search)."""
    for _ in range(3):
        step(next(batches))
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    if device.type != 'cuda':
        # PyTorch's profiler library (Kineto) logs straight to stderr as it starts and stops, and
        # where there is no GPU also an ERROR line, that it found none: 3 lines of noise above the
        # tables. On a GPU its lines stay, as one of them may say why the GPU's table is empty.
        # Read as the profiler starts; one the user set is kept.
        os.environ.setdefault('KINETO_LOG_LEVEL', '6')
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step(next(batches))
        sync(device)
    return prof.events()


def device_work(events):
    """The GPU's kernels, copies and fills, as profiler events: some, or the profiler's side on the
    GPU (CUPTI) recorded none, which would leave every figure a division by zero."""
    work = [e for e in events if e.device_type == DeviceType.CUDA]
    if not work:
        raise UserError('the profiler recorded no GPU work in the steps it watched, as where a container has '
                        'no rights to the GPU\'s counters or another profiler runs; its lines above say why')
    return work


def by_operation(events, on_gpu):
    """{operation: [calls, kernels, microseconds]} on a GPU, the time of the kernels each operation
    launched itself; {operation: [calls, microseconds]} on a CPU, each operation's own time, without
    the operations it called."""
    table = defaultdict(lambda: [0, 0, 0.0] if on_gpu else [0, 0.0])
    for event in events:
        if event.device_type != DeviceType.CPU or event.is_async:
            continue
        row = table[event.name]
        row[0] += 1
        if on_gpu:
            row[1] += len(event.kernels)
            row[2] += sum(kernel.duration for kernel in event.kernels)
        else:
            row[1] += event.self_cpu_time_total
    return {name: row for name, row in table.items() if row[-1] > 0}


def by_kernel(work):
    """{kernel name: [launches, microseconds]}."""
    table = defaultdict(lambda: [0, 0.0])
    for event in work:
        table[event.name][0] += 1
        table[event.name][1] += event.time_range.elapsed_us()
    return table


def print_table(title, table, steps, total_us, top, count_columns):
    """The `top` rows by time, per step, with each one's share of total_us."""
    print(f'\n{title}')
    print(f'{"ms/step":>8} {"share":>6} ' + ' '.join(f'{c:>7}' for c in count_columns))
    rows = sorted(table.items(), key=lambda item: -item[1][-1])
    for name, row in rows[:top]:
        counts = ' '.join(f'{n / steps:7.1f}' for n in row[:-1])
        print(f'{row[-1] / steps / 1000:8.3f} {row[-1] / total_us:6.1%} {counts}   {name[:100]}')
    if len(rows) > top:
        rest = sum(row[-1] for _, row in rows[top:])
        print(f'{rest / steps / 1000:8.3f} {rest / total_us:6.1%} {"":>{8 * len(count_columns) - 1}}   '
              f'the other {len(rows) - top}')


def main(argv=None):
    args = parse_args(argv)
    device = pick_device(args.device)
    keep_freed_memory(device)  # as train.py does
    torch.backends.cudnn.benchmark = False  # as train.py's default: the kernels a run would use
    attributes = args.classes  # the class counts of each head
    precision = choose_precision(args, device)
    channels_last = choose_channels_last(args, device)
    compile_mode = 'default' if args.compile else None
    on_gpu = device.type == 'cuda'
    print(f'device {device} ({machine_name(device)}), torch {torch.__version__}, batch {args.batch_size}, {precision}, '
          f'{"channels_last" if channels_last else "NCHW"}{", compiled" if compile_mode else ""}')

    # Profiled eagerly: a CUDA graph replays exactly the kernels its one eager step launched, but
    # the profiler sees a replay as one launch.
    batches = fixed_batch(attributes, args.batch_size, device)
    eager = trainer(attributes, device, precision, channels_last, args.batch_size, False, compile_mode)
    events = profiled_step(eager, batches, device, args.steps)
    step_ms = {'eager': 1000 * args.batch_size / rate(batches, eager, device, 2.0)}
    if on_gpu:
        graphed = trainer(attributes, device, precision, channels_last, args.batch_size, True, compile_mode)
        step_ms['replayed as one CUDA graph'] = 1000 * args.batch_size / rate(batches, graphed, device, 2.0, warmup=6)
    print('a step: ' + ', '.join(f'{ms:.2f} ms {how}' for how, ms in step_ms.items()))

    operations = by_operation(events, on_gpu)
    if on_gpu:
        work = device_work(events)
        kernels, busy_us = len(work) / args.steps, sum(e.time_range.elapsed_us() for e in work) / args.steps
        graph_ms = step_ms['replayed as one CUDA graph']
        # The difference is the GPU between kernels: launching the next one, even inside a graph.
        print(f'its GPU work: {kernels:.0f} kernels, copies and fills, {busy_us / 1000:.2f} ms in all: '
              f'{busy_us / 1000 / graph_ms:.0%} of a replayed step, on average '
              f'{(graph_ms * 1000 - busy_us) / kernels:.1f} us between two kernels')
        print_table('GPU time by the operation that launched it, per step', operations, args.steps,
                    busy_us * args.steps, args.top, ['calls', 'kernels'])
        print_table('GPU time by kernel, per step', by_kernel(work), args.steps, busy_us * args.steps,
                    args.top, ['kernels'])
    else:
        total_us = sum(row[-1] for row in operations.values())
        # The profiler's own cost included: the total is more than an unprofiled step's time.
        print(f'its operations: {sum(row[0] for row in operations.values()) / args.steps:.0f} calls, '
              f'{total_us / args.steps / 1000:.1f} ms of CPU time in all while profiled')
        print_table('CPU time by operation (its own, without the operations it called), per step',
                    operations, args.steps, total_us, args.top, ['calls'])


if __name__ == '__main__':
    run_cli(main, memory_flag='--batch-size')
