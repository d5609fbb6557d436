"""Cross-validation over tasks that keeps groups and classes on one side of each split.

Tasks sampled from the same group (a patient, a store) or drawing the same classes
(episodes) are not independent: a plain ``KFold`` over them scores a meta-learner on
groups or classes it was meta-trained on, and over-estimates how it does on new ones
(``docs/sklearn.md``, "Tasks of the same group leak between folds" and
"Episodes share classes between folds").
"""

import numbers

import numpy as np
from sklearn.model_selection import BaseCrossValidator

from .tasks import TaskBatch
from .tasks._base import as_rng

__all__ = ["DisjointTaskKFold"]


class DisjointTaskKFold(BaseCrossValidator):
    """K-fold over the tasks of a ``TaskBatch``, no group or class on both sides.

    The units that must not cross a split are read from the batch: its ``groups``
    (one per task: :class:`~sklmeta.tasks.GroupedTasks`, or the batches of
    :meth:`TaskBatch.concatenate <sklmeta.tasks.TaskBatch.concatenate>`), else its
    ``classes`` (``n_way`` per episode: :class:`~sklmeta.tasks.EpisodicTasks`,
    :class:`~sklmeta.tasks.ImageTasks`). The units are dealt into ``n_splits`` folds
    of nearly equal numbers of tasks (largest units first, as ``GroupKFold``);
    split ``f`` tests on the tasks whose units all lie in fold ``f`` and trains on
    the tasks with none there. With groups every task is used once as a test task,
    as in ``GroupKFold``.

    An episode draws ``n_way`` classes, and lies inside one fold only with
    probability about ``n_splits ** (1 - n_way)`` (1 in 81 for 5-way episodes and
    3 folds): most episodes of a batch are then in no test fold and in fewer
    training folds. Draw episodes per fold of classes instead, and cross-validate
    by those groups (second example).

    Parameters
    ----------
    n_splits : int, default=3
        Number of folds, at least 2.
    shuffle : bool, default=False
        Break ties between units of equal task counts at random (otherwise as
        ``GroupKFold`` without shuffling, whose folds this splitter then reproduces for
        groups).
    random_state : int, Generator or None, default=None
        The order of ties with ``shuffle=True``.

    Examples
    --------
    Tasks of groups, as ``GroupKFold`` with ``groups=batch.groups``, without
    passing the groups:

    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklmeta import MAMLRegressor
    >>> from sklmeta.model_selection import DisjointTaskKFold
    >>> from sklmeta.tasks import GroupedTasks
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3)); groups = np.repeat(np.arange(10), 30)
    >>> y = X @ rng.normal(size=3) + 0.1 * groups
    >>> batch = GroupedTasks(X, y, groups, k_support=5, k_query=5).sample(30, random_state=0)
    >>> cv = DisjointTaskKFold(3)
    >>> [len(set(batch.groups[tr]) & set(batch.groups[te])) for tr, te in cv.split(batch)]
    [0, 0, 0]
    >>> maml = MAMLRegressor(max_iter=5, device="cpu", random_state=0)
    >>> cross_val_score(maml, batch, cv=cv).shape
    (3,)

    Episodes drawn per fold of classes, so that every episode is used:

    >>> from sklearn.datasets import load_digits
    >>> from sklmeta.tasks import EpisodicTasks, TaskBatch
    >>> Xd, yd = load_digits(return_X_y=True)
    >>> episodes = EpisodicTasks(Xd / 16, yd, n_way=2, k_shot=1, k_query=5)
    >>> rest, first = episodes.split([0, 1, 2])        # (train, test): classes 3-9, 0-2
    >>> third, second = rest.split([3, 4, 5])          # classes 6-9, 3-5
    >>> batch = TaskBatch.concatenate(
    ...     [part.sample(20, random_state=i) for i, part in enumerate((first, second, third))],
    ...     groups=[0, 1, 2])
    >>> [(len(tr), len(te)) for tr, te in DisjointTaskKFold(3).split(batch)]
    [(40, 20), (40, 20), (40, 20)]
    """

    def __init__(self, n_splits=3, *, shuffle=False, random_state=None):
        if not isinstance(n_splits, numbers.Integral) or isinstance(n_splits, bool) \
                or n_splits < 2:
            raise ValueError(f"n_splits must be an int >= 2, got {n_splits!r}.")
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}.")
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """The number of splits, ``n_splits``."""
        return self.n_splits

    def split(self, X, y=None, groups=None):
        """Indices of the training and test tasks of each split.

        Parameters
        ----------
        X : TaskBatch
            With ``groups`` or ``classes``.
        y : None
            Ignored; tasks carry their targets.
        groups : array-like of shape (n_tasks,), default=None
            One group per task, in place of ``X.groups``.

        Yields
        ------
        train, test : ndarray of int
            Positions of the tasks in ``X``.
        """
        units = self._task_units(X, groups)  # (n_tasks, units per task)
        names, index = np.unique(units, return_inverse=True)
        index = index.reshape(units.shape)
        if len(names) < self.n_splits:
            raise ValueError(
                f"n_splits={self.n_splits} folds need at least {self.n_splits} distinct "
                f"groups or classes; the tasks have {len(names)}."
            )
        fold_of_unit = self._deal(np.bincount(index.ravel(), minlength=len(names)))
        fold_of_unit_per_task = fold_of_unit[index]
        for fold in range(self.n_splits):
            inside = fold_of_unit_per_task == fold
            test = np.flatnonzero(inside.all(axis=1))
            train = np.flatnonzero(~inside.any(axis=1))
            if test.size == 0 or train.size == 0:
                raise ValueError(
                    f"Fold {fold} of {self.n_splits} has {test.size} test and {train.size} "
                    "training tasks: too few tasks lie inside one fold of classes. Draw "
                    "episodes per fold of classes (EpisodicTasks.split or "
                    "ImageTasks.split, then TaskBatch.concatenate(..., groups=...)) and "
                    "cross-validate by those groups; see the DisjointTaskKFold docstring."
                )
            yield train, test

    def _task_units(self, X, groups):
        if not isinstance(X, TaskBatch):
            raise TypeError(
                f"DisjointTaskKFold splits a TaskBatch, got {type(X).__name__}: sample the "
                "tasks with GroupedTasks, EpisodicTasks or ImageTasks, which record their "
                "groups or classes."
            )
        if groups is None:
            groups = X.groups
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (len(X),):
                raise ValueError(
                    f"groups must hold one group per task, shape ({len(X)},); got "
                    f"{groups.shape}."
                )
            return groups[:, None]
        if X.classes is None:
            raise ValueError(
                "The TaskBatch records neither groups nor classes, so there is nothing to "
                "keep apart: GroupedTasks, EpisodicTasks and ImageTasks record them; for "
                "other tasks pass groups= (one per task), or use KFold."
            )
        return X.classes

    def _deal(self, counts):
        """Fold of each unit, for folds of nearly equal numbers of tasks: the units with
        the most tasks first, each to the fold with the fewest so far (as ``GroupKFold``
        does). ``counts[u]`` is the number of tasks unit ``u`` appears in."""
        n_units = len(counts)
        order = np.arange(n_units)
        if self.shuffle:  # the order among units of equal counts
            order = as_rng(self.random_state).permutation(n_units)
        # GroupKFold's order: by count, ties in reverse (without shuffle, the same folds)
        order = order[np.argsort(counts[order], kind="stable")[::-1]]
        load = np.zeros(self.n_splits)
        fold_of_unit = np.empty(n_units, dtype=np.int64)
        for unit in order:
            fold = int(np.argmin(load))
            fold_of_unit[unit] = fold
            load[fold] += counts[unit]
        return fold_of_unit
