# One optimizer step: forward, summed loss, backward, Adam, learning-rate schedule.
# At batch 16 a MobileNetV2 step on a GPU is a few hundred tiny kernels, so the time goes to
# launching them from Python. GraphedTrainStep records the whole step once as a CUDA graph and
# replays it: same kernels, same numbers, one launch (see PyTorch's "whole network capture").
# The step also counts what the batch scored, so that bookkeeping is recorded in the graph too.
import torch

from dataset import HEADS
from model import get_loss


def batch_stats(loss, output, targets):
    """[loss, correct gender, correct article, correct colour] of one batch, on its device."""
    correct = torch.stack([(output[head].argmax(1) == targets[f'{head}_labels']).sum() for head in HEADS])
    return torch.cat([loss.detach().float().view(1), correct.float()])  # one cast for the three counts


def loss_and_stats(output, targets):
    """The summed loss of a batch and its batch_stats."""
    loss, _ = get_loss(output, targets)
    return loss, batch_stats(loss, output, targets)


def uncompiled(model):
    """The module torch.compile wrapped (a model that is not compiled, as it is)."""
    return getattr(model, '_orig_mod', model)


def make_optimizer(model, lr, device, cuda_graphs):
    # fused: the whole update in one pass, where plain Adam runs about ten operations for each of
    # the 162 parameters: on a GPU 2 multi-tensor kernels instead of 17 (capturable foreach Adam),
    # on 2 CPU cores 2.8 ms a step instead of 10.7 (8% of a step at batch 16). The same maths, up
    # to float rounding.
    if cuda_graphs:
        # A tensor learning rate stays on the device, so the schedule can change it between
        # replays; capturable keeps Adam's step counter there too.
        return torch.optim.Adam(model.parameters(), lr=torch.tensor(lr, device=device),
                                capturable=True, fused=True)
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ('cuda', 'cpu'))


def optimizer_state(optimizer):
    """The optimizer's state with plain-number learning rates, loadable on any device."""
    state = optimizer.state_dict()
    for group in state['param_groups']:
        if torch.is_tensor(group['lr']):
            group['lr'] = group['lr'].item()
    return state


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        if torch.is_tensor(group['lr']):
            group['lr'].fill_(lr)  # in place: a recorded CUDA graph reads this tensor
        else:
            group['lr'] = lr


def scheduler_state(scheduler):
    state = scheduler.state_dict()
    for key in ('base_lrs', '_last_lr'):
        if key in state:
            state[key] = [float(v) for v in state[key]]
    return state


# How an optimizer runs, not what it has learnt: load_state_dict would take these from the file,
# but they belong to this run. A checkpoint from the CPU, from several GPUs or from --cuda-graphs
# off has capturable off, which the capture of a CUDA graph refuses.
HOW_IT_RUNS = ('capturable', 'fused', 'foreach', 'differentiable')


def load_optimizer_state(optimizer, state):
    """Loads what a saved optimizer has learnt (its moments, step counts and learning rate) into
    this run's optimizer, which keeps its own way of running, made by make_optimizer."""
    kept = [{key: group[key] for key in HOW_IT_RUNS if key in group} for group in optimizer.param_groups]
    lr_devices = [g['lr'].device if torch.is_tensor(g['lr']) else None for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for param, saved in optimizer.state.items():
        # Each moment as its parameter lies in memory: a run resumed with the other --channels-last
        # has the first convolution's weight in the other layout, and fused Adam pairs the two
        # tensors by memory order, not by index (a step off by the size of the learning rate).
        for key, value in saved.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                saved[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
    for group, flags, lr_device in zip(optimizer.param_groups, kept, lr_devices):
        group.update(flags)
        if lr_device is not None and not torch.is_tensor(group['lr']):
            group['lr'] = torch.tensor(float(group['lr']), device=lr_device)
        if group.get('capturable') or group.get('fused'):
            # These keep Adam's step count as a float32 tensor beside each parameter; a state
            # saved by another kind of Adam may hold it elsewhere (load_state_dict places it by
            # the saved flags).
            for param in group['params']:
                step = optimizer.state.get(param, {}).get('step')
                if torch.is_tensor(step):
                    optimizer.state[param]['step'] = step.to(param.device, torch.float32)


class TrainStep:
    """One optimizer step per call; returns the batch's batch_stats."""

    def __init__(self, model, optimizer, scheduler, autocast, compiled=False, compile_loss=True):
        self.model, self.optimizer, self.scheduler, self.autocast = model, optimizer, scheduler, autocast
        self.compiled = compiled  # the model is torch.compile'd
        self.compiled_size = None  # the batch size it was compiled for: its first batch's
        self.loss_and_stats = loss_and_stats
        if compiled and compile_loss:
            # Compiled too: eagerly the loss and the batch's statistics are 27 small operations
            # forward and backward (three cross-entropies and their sum; argmax, compare and
            # count for each head), which inductor fuses (into one each way on a CPU). At batch
            # 16 a GPU step's time goes with its number of kernels. In mode default whatever the
            # model's: a few kernels need no CUDA graphs of their own (reduce-overhead's).
            self.loss_and_stats = torch.compile(loss_and_stats, mode='default')

    def eager(self, images, targets):
        model, loss_and_stats_of = self.model, self.loss_and_stats
        if self.compiled:
            self.compiled_size = self.compiled_size or images.shape[0]
            if images.shape[0] != self.compiled_size:
                # An epoch's last, smaller batch: compiled, it would build the step once more,
                # for any batch size (56 s more of a first epoch on 2 CPU cores, about as long as
                # the first build). One step of the same maths on the same weights, uncompiled,
                # costs nothing like that.
                model, loss_and_stats_of = uncompiled(self.model), loss_and_stats
        with self.autocast():
            output = model(images)
            loss, stats = loss_and_stats_of(output, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return stats

    def __call__(self, images, targets):
        # Tells torch.compile's own CUDA graphs (mode reduce-overhead) that a new step begins, so
        # they may reuse the last step's buffers. Only for a compiled model: for any other it does
        # nothing but its first call imports the compiler, 2.2 s of every run's start on 2 cores.
        if self.compiled:
            torch.compiler.cudagraph_mark_step_begin()
        result = self.eager(images, targets)
        self.scheduler.step()
        return result


class GraphedTrainStep(TrainStep):
    """Replays a captured step for full batches; a smaller last batch runs eagerly."""

    WARMUP_STEPS = 3  # real steps before capture, on a side stream, as capture requires

    def __init__(self, model, optimizer, scheduler, autocast, batch_size, compiled=False, compile_loss=True):
        super().__init__(model, optimizer, scheduler, autocast, compiled, compile_loss)
        self.batch_size, self.calls, self.graph = batch_size, 0, None

    def capture(self, images, targets):
        self.static_images = images.clone()
        self.static_targets = {k: v.clone() for k, v in targets.items()}
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: only this thread is barred from unsafe CUDA calls while recording. In the
        # default 'global' mode a DataLoader's pin-memory thread that allocates pinned memory at
        # that moment (train.py --data loader, the tutorial's path in bench.py) breaks the capture.
        with torch.cuda.graph(self.graph, capture_error_mode='thread_local'):
            self.static_stats = self.eager(self.static_images, self.static_targets)

    def __call__(self, images, targets):
        self.calls += 1
        if images.shape[0] != self.batch_size:
            return super().__call__(images, targets)
        if self.graph is None and self.calls <= self.WARMUP_STEPS:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                result = super().__call__(images, targets)
            torch.cuda.current_stream().wait_stream(stream)
            return result
        if self.graph is None:
            self.capture(images, targets)  # records the kernels without running them
        self.static_images.copy_(images)
        for key, value in targets.items():
            self.static_targets[key].copy_(value)
        self.graph.replay()
        self.scheduler.step()
        return self.static_stats.clone()  # clone: the next replay overwrites the static one
