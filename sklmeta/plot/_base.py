"""What the displays share: the lazy matplotlib import and access to the meta-learner
inside an estimator or a pipeline."""

import inspect

from sklearn.base import clone

from .._validation import _as_finite_tasks, _is_task_collection


def check_matplotlib_support(caller_name):
    """Import matplotlib, or raise an ImportError that says how to install it.

    Called by each ``plot`` and ``from_estimator`` (before any computation), never at
    import: ``import sklmeta.plot`` must not import matplotlib.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{caller_name} requires matplotlib: pip install 'sklmeta[plot]' (or "
            "pip install matplotlib)."
        ) from exc


def new_axes(ax):
    """``(ax, figure)``: the given axes, or those of a new figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax, ax.figure


def meta_learner(estimator):
    """The meta-learner: the estimator itself, or the last step of a pipeline."""
    return estimator[-1] if hasattr(estimator, "steps") else estimator


def _param_name(estimator, name):
    # a pipeline routes a parameter of its last step as "<step>__<name>"
    return f"{estimator.steps[-1][0]}__{name}" if hasattr(estimator, "steps") else name


def adapt_steps_of(estimator):
    """The gradient steps ``adapt`` takes: ``adapt_steps``, or ``inner_steps`` if None."""
    params = meta_learner(estimator).get_params(deep=False)
    steps = params.get("adapt_steps")
    return params.get("inner_steps") if steps is None else steps


def copy_for_adaptation(estimator, adapt_steps=None):
    """A copy of the estimator to adapt, with ``adapt_steps`` if given; the estimator
    is left as it was.

    ``clone`` keeps a meta-fitted sklmeta estimator's (or task pipeline's) meta-learned
    initialisation and drops its adaptation, so the copy adapts from where the
    estimator's own ``adapt`` would.
    """
    worker = clone(estimator)
    if adapt_steps is not None:
        worker.set_params(**{_param_name(worker, "adapt_steps"): int(adapt_steps)})
    return worker


def adapt(worker, X, y):
    """``worker.adapt(X, y)``; a TaskPipeline, which has no ``adapt``, adapts in ``fit``."""
    return getattr(worker, "adapt", worker.fit)(X, y)


def adapted_copies(worker, tasks):
    """``(task, adapted)`` for each task: the tasks adapted together where the
    estimator can (sklmeta estimators), else ``worker`` adapted to one after another."""
    if hasattr(worker, "_adapted_copies"):
        return worker._adapted_copies(tasks)
    return ((task, adapt(worker, task.X_support, task.y_support)) for task in tasks)


def accepts_return_std(estimator):
    """Whether ``estimator.predict`` takes ``return_std`` (a predictive distribution)."""
    try:
        return "return_std" in inspect.signature(estimator.predict).parameters
    except (TypeError, ValueError):  # builtins and some wrappers have no signature
        return False


def finite_tasks(tasks, caller):
    """A TaskBatch or list of Task, or a TypeError that says how to get one."""
    if not _is_task_collection(tasks):
        raise TypeError(
            f"{caller} takes a collection of tasks (a TaskBatch or a list of Task); got "
            f"{type(tasks).__name__}."
        )
    try:
        tasks = _as_finite_tasks(tasks)
    except TypeError:
        raise TypeError(
            f"{caller} needs a finite collection of tasks (a TaskBatch or a list of "
            f"Task); got the task distribution {tasks!r}. Draw tasks from it with "
            "tasks.sample(n_tasks, random_state)."
        ) from None
    if len(tasks) == 0:
        raise ValueError(f"{caller} needs at least one task.")
    return tasks
