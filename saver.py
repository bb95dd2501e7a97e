# Writing an epoch's files (checkpoints, metrics.csv, the curves) while the next epoch trains.
# Written in line they stop the training: on 2 CPU cores 0.07 s an epoch for last.pth (28 MiB,
# flushed to disk) and 0.3 s more on validation epochs; in the tutorial's 50 epochs on a GPU,
# several seconds of the 4 minutes aimed at, with the GPU idle. Here the training thread only
# copies the state (a few ms); a thread beside it writes, atomically as ever (atomic.py).
import copy
import time
from concurrent.futures import ThreadPoolExecutor

import torch


def detached_copy(state):
    """A copy of a nested state (dicts, lists, tensors) on the CPU, which later training steps
    cannot change: the tensors of a state_dict are the live weights and Adam's moments."""
    if torch.is_tensor(state):
        return state.detach().to('cpu', copy=True)
    if isinstance(state, dict):
        copied = copy.copy(state)  # keeps the class and its attributes (a state_dict's _metadata)
        for key, value in copied.items():
            copied[key] = detached_copy(value)
        return copied
    if isinstance(state, (list, tuple)):
        return type(state)(detached_copy(value) for value in state)
    return state


class BackgroundSaver:
    """Runs saving jobs one at a time, in the order given, on one thread beside training. A job
    that fails (a full disk) has its error raised in the training thread at the next submit or
    wait. The thread is not a daemon: Python lets a job that has begun finish before it exits."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='saver')
        self.pending = []
        self.seconds = 0.0  # the jobs' own time, spent beside training
        self.done = None  # the tag of the last job that finished without error
        self.failed = False  # whether a job's error has been raised

    def submit(self, tag, job, *args):
        """Queues job(*args) behind the jobs before it, and returns at once."""
        self.raise_failures()
        self.pending.append(self.pool.submit(self.run, tag, job, *args))

    def run(self, tag, job, *args):
        started = time.perf_counter()
        job(*args)
        self.seconds += time.perf_counter() - started
        self.done = tag

    def raise_failures(self, wait=False):
        """Raises the error of the first job that failed; with wait, once all have ended."""
        ended = [future for future in self.pending if wait or future.done()]
        self.pending = [future for future in self.pending if future not in ended]
        for future in ended:
            self.failed = self.failed or future.exception() is not None
            future.result()  # the job's own exception, if it raised one

    def wait(self):
        """Returns when every job submitted so far has ended; raises the first failure."""
        self.raise_failures(wait=True)

    def close(self):
        """Waits for the jobs still queued, without raising their errors (see wait)."""
        self.pool.shutdown(wait=True)
