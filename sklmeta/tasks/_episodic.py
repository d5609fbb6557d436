"""N-way K-shot classification episodes from any labelled array."""

import numbers
import warnings

import numpy as np

from ._base import TaskBatch, as_rng, held_out_units

__all__ = ["EpisodicTasks"]


def _check_positive_int(name, value, minimum=1):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")


class EpisodicTasks:
    """N-way K-shot episodes drawn from a labelled dataset.

    Each episode picks ``n_way`` classes at random, relabels them ``0..n_way-1`` in a
    random order, and draws ``k_shot`` support and ``k_query`` query examples per
    class without overlap. Classes with fewer than ``k_shot + k_query`` examples are
    left out (with a warning).

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        Inputs: feature vectors or images.
    y : array-like of shape (n_samples,)
        Class labels (any hashable values).
    n_way : int, default=5
    k_shot : int, default=1
    k_query : int, default=15
        Query examples per class.

    Attributes
    ----------
    classes_ : ndarray
        The classes episodes are drawn from.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklmeta.tasks import EpisodicTasks
    >>> X, y = load_digits(return_X_y=True)
    >>> tasks = EpisodicTasks(X / 16, y, n_way=3, k_shot=2, k_query=4)
    >>> batch = tasks.sample(8, random_state=0)
    >>> batch.X_support.shape, batch.y_query.shape
    ((8, 6, 64), (8, 12))
    """

    def __init__(self, X, y, n_way=5, k_shot=1, k_query=15):
        X = np.asarray(X)
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D class labels, got shape {y.shape}.")
        if X.shape[0] != y.shape[0]:
            raise ValueError(
                f"X and y must have the same number of samples; got {X.shape[0]} and "
                f"{y.shape[0]}."
            )
        _check_positive_int("n_way", n_way, minimum=2)
        _check_positive_int("k_shot", k_shot)
        _check_positive_int("k_query", k_query)
        if np.issubdtype(X.dtype, np.number) and not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinity.")
        classes, y_index, counts = np.unique(y, return_inverse=True, return_counts=True)
        needed = k_shot + k_query
        eligible = counts >= needed
        if eligible.sum() < n_way:
            raise ValueError(
                f"n_way={n_way} episodes with k_shot + k_query = {needed} examples per "
                f"class need {n_way} classes with at least {needed} examples each; only "
                f"{int(eligible.sum())} of {len(classes)} classes have that many."
            )
        if not eligible.all():
            warnings.warn(
                f"{int((~eligible).sum())} classes have fewer than k_shot + k_query = "
                f"{needed} examples and are left out of the episodes.",
                UserWarning,
            )
        self.X = X.astype(np.float32, copy=False)
        self.n_way = n_way
        self.k_shot = k_shot
        self.k_query = k_query
        self.classes_ = classes[eligible]
        # index table [n_classes, max_count] padded with -1, so that sampling a whole
        # batch of episodes is a handful of vectorised numpy calls
        order = np.argsort(y_index, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        max_count = counts[eligible].max()
        table = np.full((eligible.sum(), max_count), -1, dtype=np.int64)
        for row, c in enumerate(np.flatnonzero(eligible)):
            table[row, : counts[c]] = order[starts[c] : starts[c] + counts[c]]
        self._table = table
        self._counts = counts[eligible]

    def __repr__(self):
        return (
            f"EpisodicTasks(n_classes={len(self.classes_)}, n_way={self.n_way}, "
            f"k_shot={self.k_shot}, k_query={self.k_query})"
        )

    def sample(self, n_tasks, random_state=None):
        """Draw ``n_tasks`` episodes as a :class:`~sklmeta.tasks.TaskBatch`.

        Support sets are ordered class by class (``k_shot`` of class 0, then class 1,
        ...); gradient-based learners are insensitive to the order.
        """
        rng = as_rng(random_state)
        n_classes, max_count = self._table.shape
        # n_way distinct classes per episode: the n_way smallest of random keys
        classes = np.argsort(rng.random((n_tasks, n_classes)), axis=1)[:, : self.n_way]
        # k_shot + k_query distinct examples per chosen class; padding sorts last
        keys = rng.random((n_tasks, self.n_way, max_count))
        keys[np.arange(max_count) >= self._counts[classes][..., None]] = np.inf
        needed = self.k_shot + self.k_query
        pick = np.argsort(keys, axis=2)[..., :needed]
        index = self._table[classes[..., None], pick]  # [n_tasks, n_way, needed]
        labels = np.broadcast_to(np.arange(self.n_way)[None, :, None], index.shape)
        k = self.k_shot

        def take(part):
            idx = index[..., part].reshape(n_tasks, -1)
            lab = labels[..., part].reshape(n_tasks, -1)
            return self.X[idx], np.ascontiguousarray(lab, dtype=np.int64)

        Xs, ys = take(slice(0, k))
        Xq, yq = take(slice(k, needed))
        return TaskBatch(Xs, ys, Xq, yq, classes=self.classes_[classes])

    def split(self, test_size=0.25, *, random_state=None):
        """Split the classes into a meta-training and a meta-test distribution.

        Episodes of the two distributions then share no class, which a split of
        sampled episodes cannot promise: an episode draws ``n_way`` classes, so
        episodes of the same classes would sit on both sides.

        Parameters
        ----------
        test_size : float, int or array-like, default=0.25
            A float in (0, 1): the fraction of classes held out (rounded, at least
            one); an int: their number; an array-like: the classes themselves.
        random_state : int, Generator or None, default=None
            Which classes are held out (for a float or int ``test_size``).

        Returns
        -------
        train, test : EpisodicTasks
            Same ``n_way``, ``k_shot`` and ``k_query``; together they hold every
            eligible class exactly once. Each side needs at least ``n_way`` classes.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from sklmeta.tasks import EpisodicTasks
        >>> X, y = load_digits(return_X_y=True)
        >>> train, test = EpisodicTasks(X / 16, y, n_way=3).split([7, 8, 9])
        >>> train.classes_.tolist(), test.classes_.tolist()
        ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
        """
        test = held_out_units(self.classes_, test_size, random_state, "class")
        for side, keep in (("training", ~test), ("test", test)):
            if keep.sum() < self.n_way:
                raise ValueError(
                    f"The {side} side of this split would have {int(keep.sum())} classes, "
                    f"fewer than n_way={self.n_way}: hold out "
                    + ("fewer" if side == "training" else "more") + " classes."
                )
        return self._subset(~test), self._subset(test)

    def _subset(self, keep):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.classes_ = self.classes_[keep]
        new._table = self._table[keep]
        new._counts = self._counts[keep]
        return new
