"""Tasks, task batches, and turning what a user passes to ``meta_fit`` into batches."""

import numbers
from typing import Optional
from dataclasses import dataclass

import numpy as np

__all__ = ["Task", "TaskBatch", "as_rng", "TaskSequence"]


def as_rng(random_state):
    """Return a :class:`numpy.random.Generator` from None, an int, a Generator or a RandomState."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    raise TypeError(
        "random_state must be None, an int, a numpy Generator or a RandomState; "
        f"got {type(random_state).__name__}."
    )


@dataclass
class Task:
    """One learning problem: a support set to adapt on and a query set to score on.

    Attributes
    ----------
    X_support : ndarray of shape (n_support, *input_shape)
    y_support : ndarray of shape (n_support,) or (n_support, n_outputs)
    X_query : ndarray of shape (n_query, *input_shape)
    y_query : ndarray of shape (n_query,) or (n_query, n_outputs)
    """

    X_support: np.ndarray
    y_support: np.ndarray
    X_query: np.ndarray
    y_query: np.ndarray


@dataclass
class TaskBatch:
    """Tasks of identical shapes stacked along a leading ``n_tasks`` axis.

    A ``TaskBatch`` is also a sequence of :class:`Task`: ``len(batch)``,
    ``batch[i]`` and ``for task in batch`` work; ``batch[i:j]`` and ``batch[[i, j]]``
    give a smaller ``TaskBatch``.

    Attributes
    ----------
    X_support : ndarray of shape (n_tasks, n_support, *input_shape)
    y_support : ndarray of shape (n_tasks, n_support, ...)
    X_query : ndarray of shape (n_tasks, n_query, *input_shape)
    y_query : ndarray of shape (n_tasks, n_query, ...)
    groups : ndarray of shape (n_tasks,) or None
        Where each task came from (the group of :class:`GroupedTasks`), when known:
        the ``groups`` of a group-aware cross-validation over tasks
        (``GroupKFold``), so that tasks of one group never sit on both sides of a
        split.

    Examples
    --------
    >>> from sklmeta.tasks import SinusoidTasks
    >>> batch = SinusoidTasks(k_support=5, k_query=10).sample(3, random_state=0)
    >>> len(batch), batch.X_support.shape, batch[0].X_query.shape
    (3, (3, 5, 1), (10, 1))
    """

    X_support: np.ndarray
    y_support: np.ndarray
    X_query: np.ndarray
    y_query: np.ndarray
    groups: Optional[np.ndarray] = None

    def __post_init__(self):
        n = {a.shape[0] for a in self.arrays()}
        if len(n) != 1:
            raise ValueError(
                "X_support, y_support, X_query and y_query must have the same number "
                f"of tasks along axis 0; got {[a.shape[0] for a in self.arrays()]}."
            )
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if self.groups.shape != (len(self),):
                raise ValueError(
                    f"groups must hold one group per task, shape ({len(self)},); got "
                    f"{self.groups.shape}."
                )

    def arrays(self):
        """The four stacked arrays, in the order the engine takes them."""
        return (self.X_support, self.y_support, self.X_query, self.y_query)

    def __len__(self):
        return self.X_support.shape[0]

    def __getitem__(self, index):
        if isinstance(index, numbers.Integral):
            return Task(*(a[index] for a in self.arrays()))
        groups = None if self.groups is None else self.groups[index]
        return TaskBatch(*(a[index] for a in self.arrays()), groups=groups)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    @classmethod
    def stack(cls, tasks):
        """Stack a sequence of :class:`Task` of identical shapes into a batch."""
        tasks = list(tasks)
        if not tasks:
            raise ValueError("tasks must not be empty.")
        fields = ("X_support", "y_support", "X_query", "y_query")
        arrays = []
        for name in fields:
            parts = [np.asarray(getattr(t, name)) for t in tasks]
            shapes = {p.shape for p in parts}
            if len(shapes) != 1:
                raise ValueError(
                    f"All tasks must have the same {name} shape to be stacked into a "
                    f"batch; got shapes {sorted(shapes)}. Sample tasks with a fixed "
                    "number of support and query examples."
                )
            arrays.append(np.stack(parts))
        return cls(*arrays)


class TaskSequence:
    """Meta-batches drawn from a finite collection of tasks.

    What ``meta_fit`` uses when it is given a list of tasks (or a ``TaskBatch``)
    instead of a distribution: each call to :meth:`sample` draws ``n_tasks`` distinct
    tasks (all of them, shuffled, when fewer are available).
    """

    def __init__(self, tasks):
        self.tasks = tasks if isinstance(tasks, TaskBatch) else TaskBatch.stack(tasks)

    def sample(self, n_tasks, random_state=None):
        rng = as_rng(random_state)
        n_available = len(self.tasks)
        idx = rng.choice(n_available, size=min(n_tasks, n_available), replace=False)
        return self.tasks[idx]
