"""Scoring a meta-learner on a collection of tasks with any scikit-learn metric.

A task is scored the few-shot way: a copy of the estimator adapts to the task's
support set and predicts its query set. :func:`make_task_scorer` turns a metric (or a
scikit-learn scorer name) into a scorer that does this for every task, then pools the
query points of all tasks or averages per-task scores. It is accepted wherever
scikit-learn takes ``scoring=``: ``GridSearchCV``, ``RandomizedSearchCV``,
``cross_val_score`` and ``cross_validate`` on task collections.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier
from sklearn.metrics import get_scorer, make_scorer

from ._validation import _as_finite_tasks, _is_task_collection

__all__ = ["make_task_scorer"]


def make_task_scorer(metric, *, pooled=True, greater_is_better=True, response_method="predict",
                     **kwargs):
    """Make a scorer that scores an estimator on a collection of tasks.

    For each task, a copy of the estimator adapts to the support set
    (``adapt(X_support, y_support)``) and predicts the query set; the estimator itself
    is left as it was.

    Parameters
    ----------
    metric : str or callable
        A scikit-learn scorer name (``"neg_mean_squared_error"``, ``"accuracy"``,
        ``"neg_log_loss"``, ...: see :func:`sklearn.metrics.get_scorer_names`), which
        brings its own sign and response method, or a metric
        ``metric(y_true, y_pred, **kwargs)``.
    pooled : bool, default=True
        Score all tasks' query points together (one metric value), or average the
        metric over tasks (every task counts the same, whatever its size).
    greater_is_better : bool, default=True
        For a callable ``metric``: False negates it (scikit-learn's ``neg_`` convention,
        so that searches maximise).
    response_method : {"predict", "predict_proba", "decision_function"}, default="predict"
        For a callable ``metric``: which output it takes.
    **kwargs
        Passed to ``metric``.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, tasks, y=None) -> float``.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklmeta import MAMLRegressor
    >>> from sklmeta.metrics import make_task_scorer
    >>> from sklmeta.tasks import SinusoidTasks
    >>> tasks = SinusoidTasks().sample(30, random_state=0)
    >>> est = MAMLRegressor(max_iter=10, device="cpu", random_state=0)
    >>> scores = cross_val_score(est, tasks, cv=3,
    ...                          scoring=make_task_scorer("neg_mean_squared_error"))
    >>> scores.shape
    (3,)
    """
    if isinstance(metric, str):
        scorer = get_scorer(metric)
        if kwargs:
            raise TypeError("kwargs go with a callable metric; a scorer name has its own.")
    elif callable(metric):
        scorer = make_scorer(metric, greater_is_better=greater_is_better,
                             response_method=response_method, **kwargs)
    else:
        raise TypeError(f"metric must be a scorer name or a callable; got {type(metric).__name__}.")
    return _TaskScorer(scorer, pooled, metric if isinstance(metric, str) else metric.__name__)


class _TaskScorer:
    """``scorer(estimator, tasks)``: a scikit-learn scorer applied the few-shot way."""

    def __init__(self, scorer, pooled, name):
        self.scorer, self.pooled, self.name = scorer, pooled, name

    def __repr__(self):
        return f"make_task_scorer({self.name!r}, pooled={self.pooled})"

    def __call__(self, estimator, X, y=None, **kwargs):
        if not _is_task_collection(X):
            raise TypeError(
                f"{self!r} scores task collections (a TaskBatch or a list of Task); got "
                f"{type(X).__name__}. For arrays, use a scikit-learn scorer."
            )
        if y is not None:
            raise ValueError("y must be None: each task carries its query targets.")
        # adapted copies: the estimator's own state is left as it was
        adapted = _adapted_copies(estimator, _as_finite_tasks(X))
        if not self.pooled:
            return float(np.mean([self.scorer(worker, t.X_query, t.y_query)
                                  for t, worker in adapted]))
        outputs, y_true, classes = {}, [], None
        for task, worker in adapted:
            for method in ("predict", "predict_proba", "decision_function"):
                if hasattr(worker, method):
                    outputs.setdefault(method, []).append(getattr(worker, method)(task.X_query))
            y_true.append(np.asarray(task.y_query))
            if is_classifier(worker):
                if classes is not None and not np.array_equal(classes, worker.classes_):
                    # probabilities of different label sets cannot be pooled
                    outputs.pop("predict_proba", None)
                    outputs.pop("decision_function", None)
                classes = worker.classes_ if classes is None else classes
        pooled = _pooled_predictor(estimator)(
            {k: np.concatenate(v) for k, v in outputs.items()}, classes)
        try:
            return float(self.scorer(pooled, np.zeros((len(np.concatenate(y_true)), 1)),
                                     np.concatenate(y_true)))
        except _MissingOutput as exc:
            raise ValueError(
                f"{self!r}: the tasks' support sets have different label sets, so their "
                f"{exc} outputs cannot be pooled; use pooled=False."
            ) from None


def _adapted_copies(estimator, tasks):
    """``(task, adapted copy)`` pairs: batched by sklmeta estimators, one at a time for
    anything else with ``adapt`` (a TaskPipeline)."""
    if hasattr(estimator, "_adapted_copies"):
        return estimator._adapted_copies(tasks)
    # clone, not copy: a pipeline's copy would share (and adapt) the estimator's steps;
    # a task pipeline's clone keeps its fitted transformers and meta-learned step
    worker = clone(estimator)
    adapt = getattr(worker, "adapt", worker.fit)
    return ((task, adapt(task.X_support, task.y_support)) for task in tasks)


class _MissingOutput(AttributeError):
    pass


def _pooled_predictor(estimator):
    """A stand-in estimator whose outputs are the pooled query outputs of all tasks:
    what a scikit-learn scorer is called on for a pooled score."""
    kind = ClassifierMixin if is_classifier(estimator) else RegressorMixin

    class PooledQueryOutputs(kind, BaseEstimator):
        def __init__(self, outputs=None, classes=None):
            self.outputs = outputs
            self.classes = classes
            if classes is not None:
                self.classes_ = classes

        def _output(self, method):
            if method not in self.outputs:
                raise _MissingOutput(method)
            return self.outputs[method]

        def predict(self, X):
            return self._output("predict")

        def predict_proba(self, X):
            return self._output("predict_proba")

        def decision_function(self, X):
            return self._output("decision_function")

    return PooledQueryOutputs
