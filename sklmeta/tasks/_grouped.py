"""Regression or classification tasks defined by a grouping of rows (one task per group)."""

import numbers
import warnings

import numpy as np

from ._base import Task, TaskBatch, as_rng, held_out_units

__all__ = ["GroupedTasks"]


class GroupedTasks:
    """Each group of rows (a patient, sensor, store, plant...) is a task.

    A sampled task is a group drawn at random, with ``k_support`` of its rows as the
    support set and ``k_query`` other rows as the query set. Groups with fewer than
    ``k_support + k_query`` rows are left out (with a warning): tasks of a meta-batch
    have equal sizes, so for ragged panels (patients, stores) choose ``k_support +
    k_query`` no larger than the smaller groups you want to keep; :meth:`task` gives a
    group's whole data (all its rows beyond ``k_support`` as the query set).

    Integer targets are kept as integers (class labels ``0..K-1`` for the classifiers,
    which then have ``n_way = K`` output units), other targets become float32.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
    groups : array-like of shape (n_samples,)
        Group label of each row.
    k_support : int, default=10
    k_query : int, default=10

    Attributes
    ----------
    groups_ : ndarray
        The groups tasks are drawn from.

    Examples
    --------
    >>> import numpy as np
    >>> from sklmeta.tasks import GroupedTasks
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3)); groups = np.repeat(np.arange(10), 30)
    >>> y = X @ rng.normal(size=3) + groups
    >>> GroupedTasks(X, y, groups, k_support=5, k_query=5).sample(4, random_state=0).X_support.shape
    (4, 5, 3)
    """

    def __init__(self, X, y, groups, k_support=10, k_query=10):
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        # integer targets stay integers (class labels for the classifiers); the rest is
        # float32, the networks' precision
        if y.dtype.kind not in "biu":
            y = y.astype(np.float32)
        groups = np.asarray(groups)
        if X.ndim < 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}.")
        if not (X.shape[0] == y.shape[0] == groups.shape[0]):
            raise ValueError(
                "X, y and groups must have the same number of rows; got "
                f"{X.shape[0]}, {y.shape[0]} and {groups.shape[0]}."
            )
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise ValueError("X or y contains NaN or infinity.")
        for name, value in (("k_support", k_support), ("k_query", k_query)):
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        labels, index, counts = np.unique(groups, return_inverse=True, return_counts=True)
        needed = k_support + k_query
        eligible = counts >= needed
        if not eligible.any():
            raise ValueError(
                f"No group has k_support + k_query = {needed} rows; the largest has "
                f"{counts.max()}. Lower k_support or k_query."
            )
        if not eligible.all():
            warnings.warn(
                f"{int((~eligible).sum())} of {len(labels)} groups have fewer than "
                f"k_support + k_query = {needed} rows and are left out (smallest group: "
                f"{counts.min()} rows): the tasks of a meta-batch have equal sizes. Lower "
                "k_support or k_query to keep them.",
                UserWarning,
            )
        self.X = X
        self.y = y
        self.k_support = k_support
        self.k_query = k_query
        self.groups_ = labels[eligible]
        self.n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if y.dtype.kind in "biu" and y.ndim == 1 and y.min() >= 0:
            # class labels 0..n_way-1: the classifiers' number of output units, whatever
            # labels the first meta-batch happens to contain
            self.n_way = int(y.max()) + 1
        order = np.argsort(index, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._rows = [order[starts[g] : starts[g] + counts[g]] for g in np.flatnonzero(eligible)]

    def __repr__(self):
        return (
            f"GroupedTasks(n_groups={len(self.groups_)}, k_support={self.k_support}, "
            f"k_query={self.k_query})"
        )

    def sample(self, n_tasks, random_state=None):
        """Draw ``n_tasks`` tasks; groups repeat only when ``n_tasks`` exceeds their number."""
        rng = as_rng(random_state)
        n_groups = len(self._rows)
        chosen = rng.choice(n_groups, size=n_tasks, replace=n_tasks > n_groups)
        needed = self.k_support + self.k_query
        index = np.stack(
            [rng.choice(self._rows[g], size=needed, replace=False) for g in chosen]
        )
        k = self.k_support
        X, y = self.X[index], self.y[index]
        return TaskBatch(X[:, :k], y[:, :k], X[:, k:], y[:, k:], groups=self.groups_[chosen])

    def split(self, test_size=0.25, *, random_state=None):
        """Split the groups into a meta-training and a meta-test distribution.

        Tasks of one group (a patient, a store) then never sit on both sides, which a
        split of sampled tasks cannot promise: tasks drawn from the same groups leak
        between training and test (see ``docs/sklearn.md``).

        Parameters
        ----------
        test_size : float, int or array-like, default=0.25
            A float in (0, 1): the fraction of groups held out (rounded, at least one);
            an int: their number; an array-like: the groups themselves.
        random_state : int, Generator or None, default=None
            Which groups are held out (for a float or int ``test_size``).

        Returns
        -------
        train, test : GroupedTasks
            Same ``k_support``, ``k_query`` (and ``n_way``); together they hold every
            eligible group exactly once.
        """
        test = held_out_units(self.groups_, test_size, random_state, "group")
        return self._subset(~test), self._subset(test)

    def _subset(self, keep):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.groups_ = self.groups_[keep]
        new._rows = [rows for rows, k in zip(self._rows, keep) if k]
        return new

    def task(self, group, random_state=None):
        """The task of one ``group``: a random split of its rows into support and query."""
        matches = np.flatnonzero(self.groups_ == group)
        if matches.size == 0:
            raise ValueError(f"group={group!r} is not one of the eligible groups.")
        rows = self._rows[matches[0]]
        rng = as_rng(random_state)
        rows = rng.permutation(rows)
        k = self.k_support
        return Task(self.X[rows[:k]], self.y[rows[:k]], self.X[rows[k:]], self.y[rows[k:]])
