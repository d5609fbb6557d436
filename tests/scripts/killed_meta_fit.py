"""Meta-fit with checkpoints and SIGKILL this process at a given meta-batch draw
(tests/test_long_runs.py): a crash with no chance to clean up.

Usage: python killed_meta_fit.py CHECKPOINT KILL_AT_DRAW ESTIMATOR
"""

import os
import signal
import sys

import sklmeta
from sklmeta.tasks import SinusoidTasks


class KilledAt:
    """A task distribution whose process dies at its ``kill_at``-th draw."""

    def __init__(self, tasks, kill_at):
        self.tasks, self.kill_at, self.draws = tasks, kill_at, 0

    def sample(self, n_tasks, random_state=None):
        self.draws += 1
        if self.draws == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.tasks.sample(n_tasks, random_state=random_state)


def make(name, **kwargs):
    extra = {"meta_step_size_final": 0.0} if name.startswith("Reptile") else {}
    return getattr(sklmeta, name)(
        hidden_layer_sizes=(16, 16), max_iter=40, meta_batch_size=4, random_state=0,
        device="cpu", early_stopping=True, validation_every=5, n_iter_no_change=100,
        n_validation_tasks=10, **extra, **kwargs)


if __name__ == "__main__":
    path, kill_at, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tasks = KilledAt(SinusoidTasks(k_support=5, k_query=5), kill_at)
    make(name, checkpoint_path=path, checkpoint_every=10).meta_fit(tasks)
