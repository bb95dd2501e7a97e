# Multi-GPU and multi-node training with PyTorch's own engine: torchrun starts one process per
# device and sets RANK/WORLD_SIZE/LOCAL_RANK; plain `python train.py` runs with none of this.
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from cli import UserError, pick_device


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


def setup(device_name):
    """The process's rank, the number of processes and its device; joins the process group."""
    if not launched_by_torchrun():
        return Context(device=pick_device(device_name))
    rank, world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = pick_device(device_name)
    if device.type == 'cuda':
        if torch.cuda.device_count() <= local_rank:
            raise UserError(f'local rank {local_rank} has no GPU: this node has '
                            f'{torch.cuda.device_count()}; lower --nproc_per_node')
        device = torch.device('cuda', local_rank)
        torch.cuda.set_device(device)
    # NCCL runs the all-reduce on the GPUs themselves; gloo is the CPU backend.
    dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return Context(rank=rank, world_size=world_size, device=device)


def cleanup(context):
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor, context):
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_predictions(context):
    """Merges every process's validation shard, so metrics equal a one-process evaluation."""
    def gather(predicted, truth, loss_sum):
        if not context.distributed:
            return predicted, truth, loss_sum
        shards = [None] * context.world_size
        dist.all_gather_object(shards, (predicted, truth, loss_sum))
        return merge_shards(shards)
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
