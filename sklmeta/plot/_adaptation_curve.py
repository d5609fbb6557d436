"""The adaptation curve: query error against the number of adaptation steps."""

import numbers

import numpy as np
from scipy import stats
from sklearn.base import is_classifier
from sklearn.metrics import accuracy_score, mean_squared_error

from ._base import (
    adapted_copies,
    check_matplotlib_support,
    copy_for_adaptation,
    finite_tasks,
    new_axes,
)

__all__ = ["AdaptationCurveDisplay"]


def error_rate(y_true, y_pred):
    """1 - accuracy: an error, lower is better, as the MSE of regressors."""
    return 1.0 - accuracy_score(y_true, y_pred)


def mean_interval(errors, confidence_level):
    """Mean over tasks (axis 1) and the Student-t confidence interval of that mean.

    The interval is NaN with a single task: one task says nothing of the spread.
    """
    n_tasks = errors.shape[1]
    mean = errors.mean(axis=1)
    if n_tasks < 2:
        return mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    half = (stats.t.ppf((1 + confidence_level) / 2, n_tasks - 1)
            * errors.std(axis=1, ddof=1) / np.sqrt(n_tasks))
    return mean, mean - half, mean + half


class AdaptationCurveDisplay:
    """Adaptation curve: query error after k gradient steps on the support set, over
    tasks.

    For each number of steps k and each task, a copy of the estimator adapts to the
    task's support set with ``adapt_steps=k``, from the meta-learned initialisation,
    and its error on the task's query set is recorded. The curve is the mean over
    tasks, with a confidence interval of that mean as a band (Student's t over tasks).
    At k = 0 the error is that of the initialisation itself.

    It is recommended to use :meth:`from_estimator`. All parameters are stored as
    attributes. To compare estimators on one axis, pass the ``ax_`` of a first display
    as ``ax`` of the next (each gets its own colour and legend entry).

    Parameters
    ----------
    steps : ndarray of shape (n_steps,)
        The numbers of adaptation steps, increasing.
    errors : ndarray of shape (n_steps, n_tasks)
        The query error of each task after each number of steps.
    metric_name : str, default="query error"
        The error's name, the y-axis label.
    name : str, default=None
        The estimator's name, in the legend.

    Attributes
    ----------
    mean_errors_ : ndarray of shape (n_steps,)
        The mean error over tasks that is drawn.
    interval_ : ndarray of shape (2, n_steps)
        The band's lower and upper bounds (NaN with a single task).
    line_ : matplotlib Line2D
        The mean error.
    fill_between_ : matplotlib PolyCollection
        The confidence band.
    ax_ : matplotlib Axes
        The axes.
    figure_ : matplotlib Figure
        The figure.

    See Also
    --------
    MetaLearningCurveDisplay : The meta-learning curve of a meta-fitted estimator.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklmeta import MAMLRegressor
    >>> from sklmeta.plot import AdaptationCurveDisplay
    >>> from sklmeta.tasks import SinusoidTasks
    >>> tasks = SinusoidTasks()
    >>> maml = MAMLRegressor(max_iter=20, device="cpu", random_state=0).meta_fit(tasks)
    >>> test_tasks = tasks.sample(10, random_state=1)
    >>> display = AdaptationCurveDisplay.from_estimator(maml, test_tasks, steps=(0, 1, 5))
    >>> display.errors.shape
    (3, 10)
    >>> untrained = MAMLRegressor(device="cpu", random_state=0)
    >>> _ = AdaptationCurveDisplay.from_estimator(
    ...     untrained, test_tasks, steps=(0, 1, 5), name="no meta-training", ax=display.ax_)
    >>> [t.get_text() for t in display.ax_.get_legend().get_texts()]
    ['MAMLRegressor', 'no meta-training']
    >>> plt.close(display.figure_)
    """

    def __init__(self, *, steps, errors, metric_name="query error", name=None):
        self.steps = steps
        self.errors = errors
        self.metric_name = metric_name
        self.name = name

    def plot(self, ax=None, *, name=None, confidence_level=0.95, line_kw=None,
             fill_between_kw=None):
        """Plot the adaptation curve.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw (the ``ax_`` of another display, to compare); None: a new
            figure.
        name : str, default=None
            The legend entry; None: ``self.name``.
        confidence_level : float, default=0.95
            The band's confidence level, for the mean over tasks.
        line_kw : dict, default=None
            Passed to ``ax.plot`` for the mean.
        fill_between_kw : dict, default=None
            Passed to ``ax.fill_between`` for the band.

        Returns
        -------
        display : AdaptationCurveDisplay
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        if not 0 < confidence_level < 1:
            raise ValueError(f"confidence_level must be in (0, 1); got {confidence_level!r}.")
        ax, figure = new_axes(ax)
        name = self.name if name is None else name
        steps = np.asarray(self.steps)
        errors = np.asarray(self.errors, dtype=np.float64)
        self.mean_errors_, low, high = mean_interval(errors, confidence_level)
        self.interval_ = np.stack([low, high])

        (self.line_,) = ax.plot(steps, self.mean_errors_,
                                **{"marker": "o", "label": name, **(line_kw or {})})
        # the band in the line's colour, so that each estimator reads as one
        self.fill_between_ = ax.fill_between(
            steps, low, high,
            **{"alpha": 0.15, "color": self.line_.get_color(), "linewidth": 0,
               **(fill_between_kw or {})})

        # ticks at the steps measured, by this display and those drawn before on ax
        measured = np.union1d(steps, ax.get_xticks() if len(ax.lines) > 1 else [])
        if len(measured) <= 12:
            ax.set_xticks(measured)
        else:
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("adaptation steps (gradient steps on the support set)")
        ax.set_ylabel(self.metric_name)
        n_tasks = errors.shape[1]
        ax.set_title(f"Error after adaptation: mean over {n_tasks} tasks, "
                     f"{confidence_level:.0%} interval")
        if name is not None:
            ax.legend()
        self.ax_, self.figure_ = ax, figure
        return self

    @classmethod
    def from_estimator(cls, estimator, tasks, *, steps=(0, 1, 2, 5, 10), metric=None,
                       metric_name=None, response_method="predict", confidence_level=0.95,
                       ax=None, name=None):
        """Measure and plot the query error after each number of adaptation steps.

        The estimator is left as it was: copies adapt (``sklearn.base.clone``, which
        keeps a meta-fitted estimator's initialisation).

        Parameters
        ----------
        estimator : sklmeta estimator or TaskPipeline
            Usually meta-fitted (an estimator that was not adapts from its random
            initialisation: a baseline).
        tasks : TaskBatch or list of Task
            The tasks to adapt to (support sets) and measure on (query sets); held-out
            tasks, not those meta-trained on.
        steps : sequence of int, default=(0, 1, 2, 5, 10)
            Numbers of adaptation steps (``adapt_steps``), each >= 0.
        metric : callable, default=None
            ``metric(y_query, output) -> float``, an error (lower is better), on the
            output of ``response_method``. None: the mean squared error for
            regressors, the error rate (1 - accuracy) for classifiers.
        metric_name : str, default=None
            The y-axis label; None: the metric's name.
        response_method : {"predict", "predict_proba", "decision_function"}, \
default="predict"
            The output ``metric`` takes (``"predict_proba"`` for ``log_loss``).
        confidence_level : float, default=0.95
            The band's confidence level.
        ax : matplotlib Axes, default=None
            Where to draw; None: a new figure.
        name : str, default=None
            The legend entry; None: the estimator's class name.

        Returns
        -------
        display : AdaptationCurveDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        tasks = finite_tasks(tasks, f"{cls.__name__}.from_estimator")
        steps = np.asarray(steps)
        if (steps.ndim != 1 or steps.size == 0
                or not all(isinstance(k, numbers.Integral) and k >= 0 for k in steps.tolist())):
            raise ValueError(
                "steps must be a non-empty sequence of non-negative ints (numbers of "
                f"adaptation steps); got {steps.tolist()!r}.")
        steps = np.unique(steps)  # increasing, for a line
        if metric is None:
            if response_method != "predict":
                raise ValueError("response_method goes with a metric of that output; "
                                 "the default metrics take predict's.")
            classifier = is_classifier(estimator)
            metric = error_rate if classifier else mean_squared_error
            default_name = ("query error rate (1 - accuracy)" if classifier
                            else "query MSE")
        elif callable(metric):
            default_name = f"query {getattr(metric, '__name__', 'error')}"
        else:
            raise TypeError(f"metric must be a callable metric(y_true, y_pred) or None; "
                            f"got {type(metric).__name__}.")

        errors = np.empty((len(steps), len(tasks)))
        for i, k in enumerate(steps):
            worker = copy_for_adaptation(estimator, adapt_steps=k)
            for j, (task, adapted) in enumerate(adapted_copies(worker, tasks)):
                output = getattr(adapted, response_method)(task.X_query)
                errors[i, j] = metric(np.asarray(task.y_query), output)
        return cls(
            steps=steps, errors=errors,
            metric_name=default_name if metric_name is None else metric_name,
            name=type(estimator).__name__ if name is None else name,
        ).plot(ax=ax, confidence_level=confidence_level)
