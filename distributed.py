# Multi-GPU and multi-node training with PyTorch's own engine: torchrun starts one process per
# device and sets RANK/WORLD_SIZE/LOCAL_RANK; plain `python train.py` runs with none of this.
import contextlib
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from cli import (STOPPING, UserError, counted, debugging, how_stopped, leave_the_process_group, pick_device,
                 print_if_possible)


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device('cpu')

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def launched_by_torchrun():
    return int(os.environ.get('WORLD_SIZE', '1')) > 1


# What torchrun sets for each process beside WORLD_SIZE, and the process group needs.
TORCHRUN_VARIABLES = ('RANK', 'MASTER_ADDR', 'MASTER_PORT')


def setup(device_name):
    """The process's rank, the number of processes and its device; joins the process group."""
    if not launched_by_torchrun():
        return Context(device=pick_device(device_name))
    missing = [name for name in TORCHRUN_VARIABLES if not os.environ.get(name)]
    if missing:  # a WORLD_SIZE left in the shell, or a launcher of one's own: KeyError: 'RANK', else
        raise UserError(f'WORLD_SIZE={os.environ["WORLD_SIZE"]} is set, but not {", ".join(missing)}: start '
                        'the processes with torchrun, which sets them all, or unset WORLD_SIZE to train in one')
    rank, world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    if (device_name or '').startswith('cuda:'):
        # Taken, it was set as the current device (a CUDA context on it) in every process, then
        # left for each process's own GPU below: ignored, without a word.
        raise UserError(f'--device {device_name}: under torchrun each process takes the GPU of its place on the '
                        'machine (LOCAL_RANK); give --device cuda, and pick the GPUs with CUDA_VISIBLE_DEVICES')
    device = pick_device(device_name)
    if device.type == 'cuda':
        # Every process of the machine checks them all, so that each finds what the first says.
        processes = int(os.environ.get('LOCAL_WORLD_SIZE', local_rank() + 1))
        if torch.cuda.device_count() < processes:
            raise UserError(f'{processes} process{"" if processes == 1 else "es"} on this machine and '
                            f'{counted(torch.cuda.device_count(), "GPU")}: lower --nproc_per_node to the number of GPUs')
        device = torch.device('cuda', local_rank())
        torch.cuda.set_device(device)
    # NCCL runs the all-reduce on the GPUs themselves; gloo is the CPU backend.
    join_the_group('nccl' if device.type == 'cuda' else 'gloo', world_size)
    return Context(rank=rank, world_size=world_size, device=device)


WAIT_BEFORE_A_NOTE = 10  # seconds: the processes of a run started together join within a second or two


def join_the_group(backend, world_size):
    """dist.init_process_group, which returns once every process of the run has joined. Where one
    never does (it ended on another machine, or a launcher of one's own started this one alone),
    this one waited 30 minutes without a word, deaf to Ctrl-C and SIGTERM: a Python handler cannot
    run while PyTorch's C++ waits. Now it says so after a while, and a stop ends it at once."""
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    note = threading.Timer(WAIT_BEFORE_A_NOTE, print_if_possible, (
        f'note: waiting at {where} for the other processes of the run ({world_size} in all) to join; one that '
        'ended, or was never started, keeps this one waiting until PyTorch gives up (30 minutes): Ctrl-C stops '
        'it', sys.stdout))
    note.daemon = True
    handlers = {number: signal.signal(number, signal.SIG_DFL) for number in (signal.SIGINT, *STOPPING)}
    try:
        note.start()
        dist.init_process_group(backend)
    finally:
        note.cancel()
        for number, handler in handlers.items():
            signal.signal(number, handler)


def local_rank():
    """The process's number on its machine: 0 for the first one, and without torchrun."""
    return int(os.environ.get('LOCAL_RANK', '0')) if launched_by_torchrun() else 0


# How long a process other than a machine's first waits, on an error it met where every process
# meets the same (below), for torchrun to stop it: the first one, a little behind it (starting
# CUDA, say), meets and says it, and its end makes torchrun stop the others.
FIRST_PROCESS_WAIT = 10  # seconds


@contextlib.contextmanager
def said_once_per_machine():
    """For what every process of a machine does alike, reading the command line, the CSVs and
    the pictures: what it notes (stdout) and the error it stops on are said by the machine's first
    process alone, not once by each (torchrun shows a machine's processes on its terminal). Another
    that meets an error first waits for torchrun's SIGTERM, which follows the first one's end, and
    stops quietly; where none comes (an error of its own, a file it alone cannot read) it says it
    too. A Ctrl-C, which reaches every process, stops the others quietly. --debug shows every
    process's traceback."""
    if local_rank() == 0 or debugging():
        yield
        return
    try:
        # Into a sink, not None: argparse's usage line goes to sys.stderr, which Python 3.10's
        # argparse writes to without a check (3.11's leaves out a None).
        with open(os.devnull, 'w') as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    except (UserError, OSError) as error:
        if isinstance(error, OSError) and error.filename is None:  # none run_cli names: a bug, its traceback
            raise
        wait_for_the_first_process()
        raise  # said by run_cli
    except SystemExit as error:
        # argparse's on a flag it refuses, its words in the sink: ended at once, this process made
        # torchrun stop the first one, at times before that one had said it.
        if error.code not in (0, None):
            wait_for_the_first_process()
        raise
    except KeyboardInterrupt as stop:  # a Ctrl-C, a SIGTERM or a SIGHUP
        raise SystemExit(how_stopped(stop)[1]) from None


@contextlib.contextmanager
def machines_first_process_first(context):
    """The block run by the first process of each machine, then by its others: what it fetches
    (a download into a cache the machine's processes share) is fetched once, not by each at once.
    Where a first process fails in it (a UserError), every process stops with its words, said by
    each machine's first process alone (said_once_per_machine): the others, left waiting for it,
    had failed first in gloo's words, "another process ended", and torchrun blamed them."""
    if not context.distributed:
        yield
        return
    if local_rank() != 0:
        check_none_failed(on_every_process(None, context))  # until every machine's first is through
        yield
        return
    try:
        yield
    except UserError as error:
        on_every_process(str(error), context)
        raise
    check_none_failed(on_every_process(None, context))


def check_none_failed(said):
    """said: what each process met in machines_first_process_first (None where nothing)."""
    failed = next((words for words in said if words is not None), None)
    if failed is not None:
        raise UserError(failed)


def wait_for_the_first_process():
    """Until torchrun's SIGTERM, which follows the first process's end, or FIRST_PROCESS_WAIT."""
    try:
        time.sleep(FIRST_PROCESS_WAIT)
    except KeyboardInterrupt as stop:  # torchrun's SIGTERM: the first process stopped, and said why
        raise SystemExit(how_stopped(stop)[1]) from None


def cleanup(context):
    if context.distributed:
        leave_the_process_group()


def on_every_process(value, context):
    """Every process's value (a few small Python objects), in rank order."""
    if not context.distributed:
        return [value]
    everyone = [None] * context.world_size
    dist.all_gather_object(everyone, value)
    return everyone


def all_reduce_sum(tensor, context):
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_predictions(context):
    """Merges every process's validation shard, so metrics equal a one-process evaluation."""
    def gather(predicted, truth, loss_sum):
        if not context.distributed:
            return predicted, truth, loss_sum
        return merge_shards(on_every_process((predicted, truth, loss_sum), context))
    return gather


def merge_shards(shards):
    """One (predicted, truth, loss sum) from each process's own, in rank order."""
    heads = shards[0][0].keys()
    predicted = {h: np.concatenate([s[0][h] for s in shards]) for h in heads}
    truth = {h: np.concatenate([s[1][h] for s in shards]) for h in heads}
    return predicted, truth, sum(s[2] for s in shards)


def sync_buffers(model, context):
    # Each process updates BatchNorm's running statistics on its own shard. Validation and the
    # checkpoint use rank 0's, so every process scores with exactly the weights that are saved.
    if context.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def replicas_identical(model, context):
    """True when every process holds exactly rank 0's parameters (DDP's whole promise)."""
    if not context.distributed:
        return True
    mine = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])
    reference = mine.clone()
    dist.broadcast(reference, src=0)
    return not broadcast_flag(not torch.equal(mine, reference), context)


def earliest(step, value, context):
    """(step, value, rank) of the process that gave the lowest step, the lowest rank on a tie; None
    when no process gave one (step None). E.g. the first step whose loss is NaN, over all processes."""
    if not context.distributed:
        return None if step is None else (step, value, context.rank)
    mine = torch.tensor([math.inf if step is None else step, context.rank, 0.0 if step is None else value],
                        dtype=torch.float64, device=context.device)
    everyone = [torch.empty_like(mine) for _ in range(context.world_size)]
    dist.all_gather(everyone, mine)
    step, rank, value = min(torch.stack(everyone).tolist())  # ranks differ: a NaN value is never compared
    return None if math.isinf(step) else (int(step), value, int(rank))


def barrier(context):
    """Returns when every process has reached it."""
    if context.distributed:
        dist.barrier(device_ids=[context.device.index] if context.device.type == 'cuda' else None)


def broadcast_flag(flag, context):
    """True on every process if it is True on any (e.g. one process's weights differ)."""
    if not context.distributed:
        return flag
    tensor = torch.tensor([int(flag)], device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())
