# Running a model over a validation set and scoring it: shared by train.py (every few epochs)
# and test.py (the final report). Kept out of test.py so nothing imports a module called `test`,
# which is also the name of Python's own regression-test package.
import sys

if __name__ == '__main__':  # a module: `python evaluate.py --checkpoint ...` did nothing, and exited 0
    # Said before PyTorch is imported, which dies inside MKL in a working folder since deleted; the
    # command as the others print theirs: this Python, and test.py by its path from another folder.
    from cli import command
    sys.exit('evaluate.py is a module of train.py and test.py; score a checkpoint with: '
             + command('test.py', '--checkpoint', 'CHECKPOINT'))

import warnings
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

from cli import ctrl_c_held
from dataset import HEADS


# At the tutorial's batch 16 a GPU step is bound by its number of kernels, not its arithmetic, and
# bf16 adds a cast of every weight: an H200 ran the step 1.15x faster in fp32. Compiled, the casts
# fuse into the kernels around them, and bf16 ran it 1.18x faster than fp32 (1.82 against 2.15 ms,
# 2026-12-04). Larger batches keep bf16 (the faster recipe at batch 256 was measured with it; sizes
# in between were not timed). channels_last too pays at batch 256, not at 16 (default_channels_last).
SMALL_GPU_BATCH = 16


def default_precision(device, batch_size=None, compiled=False):
    """bf16 autocast on CUDA, except for training batches of SMALL_GPU_BATCH or fewer that are
    not compiled; fp32 on a CPU, where bf16 was slower (benchmarks/step_variants.py)."""
    if device.type != 'cuda':
        return 'fp32'
    small = batch_size is not None and batch_size <= SMALL_GPU_BATCH
    return 'fp32' if small and not compiled else 'bf16'


def default_channels_last(device, batch_size):
    """channels_last, except for training batches of SMALL_GPU_BATCH or fewer on CUDA. There NCHW
    ran the step as fast (2.48 against 2.51 ms at batch 16 on an H200) and started sooner: in
    channels_last the 17 depthwise convolutions go to cuDNN, whose kernels for them are made at the
    first epochs and the first validation; 3 epochs on 8,000 pictures took 17 s in NCHW against 27
    (README, start-up section). At batch 256 channels_last ran an epoch 2.5 to 2.9x faster."""
    return not (device.type == 'cuda' and batch_size <= SMALL_GPU_BATCH)


def one_pass_channels_last(device):
    """test.py's layout: channels_last (faster on a CPU), but NCHW on CUDA. A single pass over a
    validation set ends before channels_last can pay there: cuDNN makes its kernels for the 17
    depthwise convolutions at the first pass, and train.py's first validation took 1.5 to 4.8 s in
    channels_last against 0.1 to 0.2 s in NCHW on an H200 (README, start-up section)."""
    return device.type != 'cuda'


def validation_precision(state, device):
    """The precision train.py validated a run in, so that test.py scores it as train.py did: as
    its checkpoint says (a run of the CPU's fp32 scored on a GPU stays fp32), or for a checkpoint
    from before it said, from the arguments saved in it: its --precision, or for auto the choice at
    its batch size (the tutorial's 16 for the original's bare state_dict, which saved none), as it
    was then: fp32 at 16, compiled or not (every checkpoint since 2026-12-02 says its own)."""
    if state.get('precision') is not None:
        return state['precision']
    saved_args = state.get('args') or {}
    precision = saved_args.get('precision', 'auto')
    if precision != 'auto':
        return precision
    return default_precision(device, saved_args.get('batch_size', SMALL_GPU_BATCH))


def autocast_for(device, precision, cache_enabled=True):
    # bf16 autocasts on CUDA and on the CPU alike, and needs no GradScaler; fp32 (or bf16 on another
    # device, which falls back to it) runs in the plain context, in exact numbers.
    if precision == 'bf16' and device.type in ('cuda', 'cpu'):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache_enabled)
    return nullcontext()


@contextmanager
def cudnn_heuristics():
    """cuDNN picks its kernels by heuristics here, without timing candidates (train.py searches
    while training only with --cudnn-benchmark on): an evaluation runs a fraction of a second at a
    time on a GPU, less than a search for its new batch shapes, which would come on top of the
    training's."""
    searched = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = searched


def predict_all(model, dataloader, device, autocast=None):
    """Predicted and true class ids for every sample, per head, and the summed validation loss."""
    model = model.folded()  # in eval mode, batch norms folded into the convolutions: faster
    predicted = {head: [] for head in HEADS}
    truth = {head: [] for head in HEADS}
    loss_sum = torch.zeros((), device=device)
    with torch.inference_mode(), (autocast or nullcontext()), cudnn_heuristics():
        for batch in dataloader:
            images = batch['img'].to(device, non_blocking=True)
            targets = {k: v.to(device, non_blocking=True) for k, v in batch['labels'].items()}
            output = model(images)
            loss, _ = model.get_loss(output, targets)
            loss_sum += loss.float() * images.shape[0]
            for head in HEADS:
                predicted[head].append(output[head].argmax(1))
                truth[head].append(targets[f'{head}_labels'])
    # One transfer at the end instead of a CPU-GPU sync per batch.
    predicted = {h: class_ids(v) for h, v in predicted.items()}
    truth = {h: class_ids(v) for h, v in truth.items()}
    return predicted, truth, loss_sum.item()


def class_ids(batches):
    # No batch at all: a process of a distributed run whose shard of the validation set is empty
    # (fewer pictures than processes) still hands its share, nothing, to the others.
    return torch.cat(batches).cpu().numpy() if batches else np.empty(0, dtype=np.int64)


def scoring():
    """sklearn.metrics, imported at the first scoring, not with this module: with scipy it takes
    1.4 s on 2 cores, which a --help or a refused input of train.py, test.py or demo.py waited
    for. A stop meanwhile is held until the import ends: one landing inside the import of a C
    extension can come out as an ImportError (pyplot's did, train.py), not the KeyboardInterrupt a
    script says in one line."""
    with ctrl_c_held():
        import sklearn.metrics
    return sklearn.metrics


def calculate_metrics(predicted, truth):
    """Accuracy and balanced accuracy of each head over the whole set (not averaged per batch)."""
    metrics, sklearn_metrics = {}, scoring()
    with warnings.catch_warnings():
        # Classes predicted but absent from this set are expected with 143 article types.
        warnings.simplefilter('ignore', UserWarning)
        for head in HEADS:
            metrics[f'{head}_accuracy'] = float(sklearn_metrics.accuracy_score(truth[head], predicted[head]))
            metrics[f'{head}_balanced_accuracy'] = float(
                sklearn_metrics.balanced_accuracy_score(truth[head], predicted[head]))
    return metrics


def validate(model, dataloader, device, autocast=None, gather=None):
    """Loss and metrics over the whole validation set. gather merges the shards of all
    processes in a distributed run, so every sample is counted exactly once. The model is left
    in the mode it was in: the scoring runs on a folded copy, in eval mode."""
    predicted, truth, loss_sum = predict_all(model, dataloader, device, autocast)
    if gather is not None:
        predicted, truth, loss_sum = gather(predicted, truth, loss_sum)
    n = len(truth[HEADS[0]])
    metrics = {'val_loss': loss_sum / n, 'val_samples': n}
    metrics.update(calculate_metrics(predicted, truth))
    return metrics, predicted, truth


def majority_rates(truth):
    return {head: float(np.bincount(truth[head]).max() / len(truth[head])) for head in HEADS}
