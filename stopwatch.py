# Where a run's time goes. On a GPU most of a short run can be one-off costs (starting CUDA,
# cuDNN's kernel search and the CUDA graph capture in the first epoch, the first validation's
# kernels), so each phase's first round is kept apart from its total.
import time
from contextlib import contextmanager


class Stopwatch:
    """Wall-clock seconds per named phase, counted from the moment it is made."""

    def __init__(self):
        self.began = time.perf_counter()
        self.total, self.first, self.rounds = {}, {}, {}

    @contextmanager
    def phase(self, name):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name, seconds):
        self.first.setdefault(name, seconds)
        self.total[name] = self.total.get(name, 0.0) + seconds
        self.rounds[name] = self.rounds.get(name, 0) + 1

    def mark(self, name):
        """The seconds from the start until now, as the phase `name` (a run's set-up)."""
        self.add(name, self.elapsed())

    def elapsed(self):
        return time.perf_counter() - self.began

    def seconds(self, name):
        return self.total.get(name, 0.0)
