"""Pipelines whose last step is a meta-learner: preprocessing fitted on tasks, then frozen.

A scikit-learn ``Pipeline`` fits its transformers on what ``fit`` receives. For a
meta-learner that is wrong twice: ``fit(task_batch)`` hands the transformers tasks, not
rows (a ``TypeError``), and ``fit(X_support, y_support)`` would refit them on a handful
of support points, so that the initialisation sees inputs scaled unlike those it was
meta-trained on. :class:`TaskPipeline` fits the transformers once, on the pooled inputs
of the meta-training tasks, applies them to every task's support and query sets, and
keeps them fixed afterwards: ``fit(X, y)`` then adapts the meta-learner only.
"""

import copy

import numpy as np
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.metaestimators import available_if

from ._validation import _is_task_collection, _is_task_distribution
from .tasks import TaskBatch

__all__ = ["TaskPipeline", "make_task_pipeline"]


def _final_step_has(method):
    """For ``available_if``: a regressor's pipeline has no ``predict_proba``."""
    return lambda pipeline: hasattr(pipeline._final_estimator, method)


class TaskPipeline(Pipeline):
    """A :class:`sklearn.pipeline.Pipeline` ending in a meta-learner.

    - ``meta_fit(tasks)`` (or ``fit(tasks)``) fits the transformers on the pooled
      support and query inputs of the tasks (a finite collection's, or ``n_fit_tasks``
      drawn once from a distribution), meta-fits the last step on the transformed tasks,
      and freezes the transformers.
    - After that, ``fit(X, y)`` (= ``adapt``) transforms ``X`` with the frozen
      transformers and adapts the meta-learner; ``predict``, ``predict_proba``,
      ``decision_function`` and ``score`` transform, then predict, as a ``Pipeline``
      does; ``score(tasks)`` scores the transformed tasks the few-shot way.
    - A clone of a meta-fitted pipeline keeps the fitted transformers and the
      meta-learned initialisation (as the estimators' clones do), so ``GridSearchCV``
      over ``<step>__inner_lr`` on a support set tunes the adaptation only.
    - Before any ``meta_fit``, ``fit(X, y)`` behaves as a plain ``Pipeline``.

    Transformers see each example as a row: inputs of several dimensions (images)
    are flattened first.

    Parameters
    ----------
    steps : list of (str, estimator)
        As for :class:`~sklearn.pipeline.Pipeline`; the last is a sklmeta estimator.
    n_fit_tasks : int, default=100
        Tasks drawn from a task distribution to fit the transformers on.
    memory, verbose, transform_input
        As for :class:`~sklearn.pipeline.Pipeline`.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklmeta import MAMLRegressor
    >>> from sklmeta.pipeline import make_task_pipeline
    >>> from sklmeta.tasks import SinusoidTasks
    >>> tasks = SinusoidTasks().sample(20, random_state=0)
    >>> pipe = make_task_pipeline(StandardScaler(), MAMLRegressor(max_iter=5, device="cpu"))
    >>> pipe.fit(tasks).fit(tasks[0].X_support, tasks[0].y_support).predict(
    ...     tasks[0].X_query).shape
    (10,)
    """

    def __init__(self, steps, *, n_fit_tasks=100, transform_input=None, memory=None,
                 verbose=False):
        super().__init__(steps, transform_input=transform_input, memory=memory,
                         verbose=verbose)
        self.n_fit_tasks = n_fit_tasks

    # ------------------------------------------------------------ meta-training
    def meta_fit(self, tasks, validation_tasks=None):
        """Fit the transformers on the tasks' pooled inputs, then meta-fit the last step
        on the transformed tasks; the transformers stay fixed afterwards."""
        if not _is_task_collection(tasks):
            raise TypeError(
                "meta_fit takes a task collection (TaskBatch, list of Task or task "
                f"distribution); got {type(tasks).__name__}."
            )
        pooled = self._pooled_inputs(tasks)
        self._frozen = False
        for _, transformer in self._transformers():
            pooled = transformer.fit_transform(pooled)
        self._frozen = True
        final = self._final_estimator
        transformed_validation = (None if validation_tasks is None
                                  else self._transform_tasks(validation_tasks))
        if transformed_validation is None:
            final.meta_fit(self._transform_tasks(tasks))
        else:
            final.meta_fit(self._transform_tasks(tasks), validation_tasks=transformed_validation)
        return self

    def fit(self, X, y=None, **params):
        """``meta_fit`` on a task collection; on arrays, adapt (after ``meta_fit``) or,
        before it, fit as a plain ``Pipeline``."""
        if _is_task_collection(X):
            if y is not None:
                raise ValueError("y must be None when X is a collection of tasks.")
            return self.meta_fit(X)
        if getattr(self, "_frozen", False):
            self._final_estimator.fit(self._transform_rows(X), y,
                                      **self._final_step_fit_params(params))
            return self
        return super().fit(X, y, **params)

    def _final_step_fit_params(self, params):
        """``<final step>__<name>`` fit parameters (as ``Pipeline`` names them) by
        ``<name>``: after ``meta_fit`` only the meta-learner is fitted (adapted)."""
        final = self.steps[-1][0]
        routed = {}
        for key, value in params.items():
            step, separator, name = key.partition("__")
            if not separator or step not in self.named_steps:
                raise ValueError(
                    f"fit parameters are named <step>__<parameter>, as in a Pipeline "
                    f"(e.g. {final}__sample_weight); got {key!r}."
                )
            if step != final:
                raise ValueError(
                    f"{key!r}: the transformers were fitted at meta_fit and stay frozen; "
                    f"fit on a support set takes only {final}__ parameters."
                )
            routed[name] = value
        return routed

    def predict(self, X, **params):
        return self._final_estimator.predict(self._transform_rows(X), **params)

    @available_if(_final_step_has("predict_proba"))
    def predict_proba(self, X, **params):
        return self._final_estimator.predict_proba(self._transform_rows(X), **params)

    @available_if(_final_step_has("decision_function"))
    def decision_function(self, X, **params):
        return self._final_estimator.decision_function(self._transform_rows(X), **params)

    def score(self, X, y=None, sample_weight=None, **params):
        """The final step's ``score`` of the transformed inputs, or of the transformed
        tasks for a task collection."""
        if _is_task_collection(X):
            return self._final_estimator.score(self._transform_tasks(X))
        return self._final_estimator.score(self._transform_rows(X), y,
                                           sample_weight=sample_weight)

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        if getattr(self, "_frozen", False):
            # the fitted transformers go with the meta-learned initialisation
            new.steps = [(name, copy.deepcopy(step)) for name, step in self.steps[:-1]] + [
                new.steps[-1]]
            new._frozen = True
        return new

    # ------------------------------------------------------------ helpers
    def _transformers(self):
        return [(n, t) for n, t in self.steps[:-1] if t is not None and t != "passthrough"]

    def _transform_rows(self, X):
        X = np.asarray(X)
        rows = X.reshape(X.shape[0], -1)
        for _, transformer in self._transformers():
            rows = transformer.transform(rows)
        return np.asarray(rows)

    def _transform_batch(self, batch):
        def transform(X):
            X = np.asarray(X)
            n_tasks, n = X.shape[:2]
            return self._transform_rows(X.reshape(n_tasks * n, -1)).reshape(n_tasks, n, -1)

        return TaskBatch(transform(batch.X_support), batch.y_support,
                         transform(batch.X_query), batch.y_query, groups=batch.groups,
                         classes=batch.classes)

    def _transform_tasks(self, tasks):
        if _is_task_distribution(tasks) and not isinstance(tasks, TaskBatch):
            return _TransformedTasks(tasks, self)
        return self._transform_batch(tasks if isinstance(tasks, TaskBatch)
                                     else TaskBatch.stack(list(tasks)))

    def _pooled_inputs(self, tasks):
        if _is_task_distribution(tasks) and not isinstance(tasks, TaskBatch):
            tasks = tasks.sample(self.n_fit_tasks, random_state=0)
        batch = tasks if isinstance(tasks, TaskBatch) else TaskBatch.stack(list(tasks))
        rows = [np.asarray(X).reshape(-1, int(np.prod(np.shape(X)[2:])))
                for X in (batch.X_support, batch.X_query)]
        return np.concatenate(rows)


class _TransformedTasks:
    """A task distribution whose tasks' inputs go through a pipeline's transformers."""

    def __init__(self, tasks, pipeline):
        self.tasks, self.pipeline = tasks, pipeline
        if hasattr(tasks, "n_way"):
            self.n_way = tasks.n_way

    def sample(self, n_tasks, random_state=None):
        return self.pipeline._transform_batch(self.tasks.sample(n_tasks, random_state))


def make_task_pipeline(*steps, n_fit_tasks=100, memory=None, verbose=False):
    """A :class:`TaskPipeline` from transformers and a meta-learner, named automatically
    as :func:`sklearn.pipeline.make_pipeline` names them.

    Parameters
    ----------
    *steps : estimators
        Transformers, then a sklmeta estimator.
    n_fit_tasks, memory, verbose
        See :class:`TaskPipeline`.

    Returns
    -------
    TaskPipeline
    """
    named = make_pipeline(*steps).steps
    return TaskPipeline(named, n_fit_tasks=n_fit_tasks, memory=memory, verbose=verbose)
