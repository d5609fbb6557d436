"""Tasks, task batches, and turning what a user passes to ``meta_fit`` into batches."""

import numbers
from typing import Optional
from dataclasses import dataclass

import numpy as np

__all__ = ["Task", "TaskBatch", "as_rng", "TaskSequence", "held_out_units"]


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
    X_support : ndarray of shape ``(n_support, *input_shape)``
    y_support : ndarray of shape (n_support,) or (n_support, n_outputs)
    X_query : ndarray of shape ``(n_query, *input_shape)``
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
    X_support : ndarray of shape ``(n_tasks, n_support, *input_shape)``
    y_support : ndarray of shape (n_tasks, n_support, ...)
    X_query : ndarray of shape ``(n_tasks, n_query, *input_shape)``
    y_query : ndarray of shape (n_tasks, n_query, ...)
    groups : ndarray of shape (n_tasks,) or None
        Where each task came from (the group of :class:`GroupedTasks`), when known:
        the ``groups`` of a group-aware cross-validation over tasks
        (``GroupKFold``), so that tasks of one group never sit on both sides of a
        split.
    classes : ndarray of shape (n_tasks, n_way) or None
        For classification episodes (:class:`EpisodicTasks`, :class:`ImageTasks`):
        the original class behind each episode label, ``classes[t, i]`` for label
        ``i`` of task ``t`` (for :class:`ImageTasks`, before rotation: a rotated copy
        comes from the same class). :class:`sklmeta.model_selection.DisjointTaskKFold`
        uses them to keep classes out of both sides of a split.

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
    classes: Optional[np.ndarray] = None

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
        if self.classes is not None:
            self.classes = np.asarray(self.classes)
            if self.classes.ndim != 2 or self.classes.shape[0] != len(self):
                raise ValueError(
                    f"classes must hold one row of classes per task, shape ({len(self)}, "
                    f"n_way); got {self.classes.shape}."
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
        classes = None if self.classes is None else self.classes[index]
        return TaskBatch(*(a[index] for a in self.arrays()), groups=groups, classes=classes)

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

    @classmethod
    def concatenate(cls, batches, groups=None):
        """One batch of the tasks of several batches of identical task shapes.

        Parameters
        ----------
        batches : sequence of TaskBatch
        groups : array-like of shape (len(batches),), default=None
            A group for all the tasks of each batch (e.g. the fold of the class
            partition each batch was drawn from: see
            :class:`sklmeta.model_selection.DisjointTaskKFold`). None keeps the
            batches' own ``groups``, if they all have them.

        Returns
        -------
        batch : TaskBatch
            ``classes`` are kept when every batch has them.

        Examples
        --------
        >>> from sklmeta.tasks import SinusoidTasks, TaskBatch
        >>> tasks = SinusoidTasks()
        >>> batch = TaskBatch.concatenate([tasks.sample(2, random_state=0),
        ...                                tasks.sample(3, random_state=1)], groups=["a", "b"])
        >>> len(batch), batch.groups.tolist()
        (5, ['a', 'a', 'b', 'b', 'b'])
        """
        batches = list(batches)
        if not batches or not all(isinstance(b, TaskBatch) for b in batches):
            raise ValueError("batches must be a non-empty sequence of TaskBatch.")
        fields = ("X_support", "y_support", "X_query", "y_query")
        arrays = []
        for name in fields:
            shapes = {getattr(b, name).shape[1:] for b in batches}
            if len(shapes) != 1:
                raise ValueError(
                    f"All batches must have the same {name} shape per task to be "
                    f"concatenated; got {sorted(shapes)}."
                )
            arrays.append(np.concatenate([getattr(b, name) for b in batches]))
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (len(batches),):
                raise ValueError(
                    f"groups must hold one group per batch, shape ({len(batches)},); got "
                    f"{groups.shape}."
                )
            groups = np.repeat(groups, [len(b) for b in batches])
        elif all(b.groups is not None for b in batches):
            groups = np.concatenate([b.groups for b in batches])
        classes = None
        if all(b.classes is not None for b in batches):
            if len({b.classes.shape[1] for b in batches}) == 1:
                classes = np.concatenate([b.classes for b in batches])
        return cls(*arrays, groups=groups, classes=classes)


def held_out_units(units, test_size, random_state, kind):
    """Boolean mask of the ``units`` (groups or classes) that ``test_size`` holds out.

    A float in (0, 1): that fraction (rounded, at least one); an int: that many; an
    array-like: those units. Either way at least one unit stays on each side.
    """
    n_units = len(units)
    if isinstance(test_size, np.ndarray) and test_size.ndim == 0:
        test_size = test_size.item()  # np.array(3) is the number 3, as np.int64(3) is
    if isinstance(test_size, (bool, np.bool_)):
        raise ValueError(f"test_size must be a float, an int or the {_plural(kind)} to hold "
                         f"out, got {test_size!r}.")
    if isinstance(test_size, numbers.Real) and not isinstance(test_size, numbers.Integral):
        if not 0 < test_size < 1:
            raise ValueError(f"A float test_size must be in (0, 1), got {test_size}.")
        n_test = max(1, round(test_size * n_units))
        if n_test >= n_units:
            raise ValueError(
                f"test_size={test_size} would hold out all {n_units} {_plural(kind)}.")
        held_out = as_rng(random_state).choice(n_units, n_test, replace=False)
    elif isinstance(test_size, numbers.Integral):
        if not 1 <= test_size < n_units:
            raise ValueError(
                f"An int test_size must be in [1, {n_units - 1}] (there are {n_units} "
                f"{_plural(kind)}), got {test_size}.")
        held_out = as_rng(random_state).choice(n_units, test_size, replace=False)
    else:
        wanted = np.asarray(test_size)
        unknown = np.setdiff1d(wanted, units)
        if unknown.size or np.unique(wanted).size in (0, n_units):
            raise ValueError(
                f"test_size must name some but not all of the {_plural(kind)} "
                f"{np.asarray(units).tolist()[:20]}"
                + (f"; unknown: {unknown.tolist()[:10]}" if unknown.size else "") + ".")
        held_out = np.flatnonzero(np.isin(units, wanted))
    test = np.zeros(n_units, dtype=bool)
    test[held_out] = True
    return test


def _plural(kind):
    return kind + ("es" if kind.endswith("s") else "s")


class TaskSequence:
    """Meta-batches drawn from a finite collection of tasks.

    What ``meta_fit`` uses when it is given a list of tasks (or a ``TaskBatch``)
    instead of a distribution: each call to :meth:`sample` draws ``n_tasks`` distinct
    tasks (all of them, shuffled, when fewer are available).
    """

    def __init__(self, tasks):
        self.tasks = tasks if isinstance(tasks, TaskBatch) else TaskBatch.stack(tasks)

    def sample(self, n_tasks, random_state=None):
        """Draw ``n_tasks`` distinct tasks (all of them, shuffled, when fewer exist)."""
        rng = as_rng(random_state)
        n_available = len(self.tasks)
        idx = rng.choice(n_available, size=min(n_tasks, n_available), replace=False)
        return self.tasks[idx]
