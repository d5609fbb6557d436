"""Tasks and task distributions.

A *task distribution* is any object with ``sample(n_tasks, random_state=None)``
returning a :class:`TaskBatch`; ``meta_fit`` also accepts a finite sequence of
:class:`Task`.
"""

from ._base import Task, TaskBatch, TaskSequence
from ._episodic import EpisodicTasks
from ._grouped import GroupedTasks
from ._images import ImageTasks
from ._sinusoid import SinusoidTasks

__all__ = [
    "Task",
    "TaskBatch",
    "TaskSequence",
    "SinusoidTasks",
    "EpisodicTasks",
    "GroupedTasks",
    "ImageTasks",
]
