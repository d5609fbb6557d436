"""The meta-learning curve: what ``meta_fit`` recorded, iteration by iteration."""

import numbers

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import NotFittedError

from ..pretrain import PretrainedClassifier, PretrainedRegressor
from ._base import check_matplotlib_support, meta_learner

__all__ = ["MetaLearningCurveDisplay"]


def moving_average(values, window):
    """Trailing moving average: entry ``i`` is the mean of ``values[i - window + 1 : i + 1]``
    (of all values up to ``i`` for the first ``window - 1`` entries).

    Trailing, as the running meta-loss of ``verbose=1``: a point never averages
    iterations that came after it.
    """
    values = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    stop = np.arange(1, len(values) + 1)
    start = np.maximum(stop - window, 0)
    return (sums[stop] - sums[start]) / (stop - start)


class MetaLearningCurveDisplay:
    """Meta-learning curve: the meta-loss, validation score and first inner-gradient
    norm of each meta-iteration.

    It is recommended to use :meth:`from_estimator`, which reads a meta-fitted
    estimator's ``meta_history_``. All parameters are stored as attributes.

    The figure has two panels sharing the meta-iteration axis. The upper one shows the
    meta-loss, each iteration's value faint behind its moving average, and, on a
    second y-axis at the right (a score, higher is better, on a scale of its own), the
    validation score at the iterations that were validated. The lower panel shows the
    norm of the first inner gradient (averaged over the meta-batch): how far the
    initialisation is from the tasks' optima, which falls as the initialisation
    improves and grows when meta-training becomes unstable. ``show_grad_norm=False``
    leaves the lower panel out.

    Parameters
    ----------
    meta_loss : ndarray of shape (n_iter,)
        The meta-loss of each meta-iteration (``meta_history_["meta_loss"]``).
    init_grad_norm : ndarray of shape (n_iter,), default=None
        The norm of the first inner gradient of each meta-iteration.
    validation_score : ndarray of shape (n_iter,), default=None
        The validation score, NaN at iterations not validated.
    best_iter : int, default=None
        With early stopping, the meta-iteration whose initialisation was kept; marked
        with a vertical line.
    loss_name : str, default="meta-loss\\n(query loss after adaptation)"
        The meta-loss axis label; its first line names the curve in the legend.
    score_name : str, default="validation score"
        The validation score axis label.
    name : str, default=None
        The estimator's name, shown in the title.

    Attributes
    ----------
    smoothed_meta_loss_ : ndarray of shape (n_iter,)
        The moving average of ``meta_loss`` that is drawn.
    smoothing_ : int
        Its window, in meta-iterations.
    meta_loss_line_ : matplotlib Line2D
        Each iteration's meta-loss (faint); None without smoothing.
    smoothed_line_ : matplotlib Line2D
        The moving average of the meta-loss (the meta-loss itself without smoothing).
    validation_line_ : matplotlib Line2D or None
        The validation scores.
    best_iter_line_ : matplotlib Line2D or None
        The vertical line at ``best_iter``.
    grad_norm_line_ : matplotlib Line2D or None
        The first inner-gradient norm.
    ax_ : matplotlib Axes
        The meta-loss axes.
    validation_ax_ : matplotlib Axes or None
        The validation score's axes (a twin of ``ax_``, y-axis at the right).
    grad_norm_ax_ : matplotlib Axes or None
        The gradient norm's axes.
    legend_ : matplotlib Legend
        The legend: the figure's, below the panels, when ``plot`` made the figure;
        else that of the top-most axes.
    figure_ : matplotlib Figure
        The figure.

    See Also
    --------
    AdaptationCurveDisplay : Query error against the number of adaptation steps.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklmeta import MAMLRegressor
    >>> from sklmeta.plot import MetaLearningCurveDisplay
    >>> from sklmeta.tasks import SinusoidTasks
    >>> tasks = SinusoidTasks()
    >>> maml = MAMLRegressor(max_iter=20, validation_every=5, device="cpu", random_state=0)
    >>> maml = maml.meta_fit(tasks, validation_tasks=tasks.sample(10, random_state=1))
    >>> display = MetaLearningCurveDisplay.from_estimator(maml, smoothing=5)
    >>> print(display.ax_.get_ylabel())
    meta-loss
    (query MSE after adaptation)
    >>> display.smoothed_meta_loss_.shape
    (20,)
    >>> plt.close(display.figure_)
    """

    def __init__(self, *, meta_loss, init_grad_norm=None, validation_score=None,
                 best_iter=None, loss_name="meta-loss\n(query loss after adaptation)",
                 score_name="validation score", name=None):
        self.meta_loss = meta_loss
        self.init_grad_norm = init_grad_norm
        self.validation_score = validation_score
        self.best_iter = best_iter
        self.loss_name = loss_name
        self.score_name = score_name
        self.name = name

    def plot(self, ax=None, *, smoothing=None, show_grad_norm=True):
        """Plot the meta-learning curve.

        Parameters
        ----------
        ax : matplotlib Axes or pair of Axes, default=None
            Where to draw: the meta-loss axes, or ``(loss_ax, grad_norm_ax)``. A single
            Axes takes ``show_grad_norm=False`` (or no gradient norms). None: a new
            figure.
        smoothing : int, default=None
            The moving average's window, in meta-iterations; 1 draws the meta-loss
            unsmoothed. None: 2% of the iterations (at least 1).
        show_grad_norm : bool, default=True
            Draw the first inner-gradient norm in a lower panel.

        Returns
        -------
        display : MetaLearningCurveDisplay
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        meta_loss = np.asarray(self.meta_loss, dtype=np.float64)
        n_iter = len(meta_loss)
        if n_iter == 0:
            raise ValueError("meta_loss is empty: there is no meta-iteration to plot.")
        if smoothing is None:
            smoothing = max(1, n_iter // 50)
        if not isinstance(smoothing, numbers.Integral) or smoothing < 1:
            raise ValueError(f"smoothing must be a positive int (a window of "
                             f"meta-iterations) or None; got {smoothing!r}.")
        show_grad_norm = show_grad_norm and self.init_grad_norm is not None

        own_figure = ax is None
        if own_figure:
            if show_grad_norm:
                fig, (ax, grad_ax) = plt.subplots(
                    2, 1, sharex=True, figsize=(7, 6), layout="constrained",
                    gridspec_kw={"height_ratios": (2, 1)})
            else:
                fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
                grad_ax = None
        elif np.ndim(ax) == 0:
            if show_grad_norm:
                raise ValueError(
                    "The gradient norm is drawn in a panel of its own: pass two axes, "
                    "ax=(loss_ax, grad_norm_ax), or show_grad_norm=False.")
            grad_ax = None
        else:
            axes = np.ravel(ax)
            if len(axes) != 2:
                raise ValueError(f"ax must be one Axes or a pair (loss_ax, grad_norm_ax); "
                                 f"got {len(axes)} axes.")
            ax, grad_ax = axes
        iterations = np.arange(1, n_iter + 1)  # the iteration count after each update

        self.smoothing_ = int(smoothing)
        self.smoothed_meta_loss_ = moving_average(meta_loss, self.smoothing_)
        self.meta_loss_line_ = None
        short_name = self.loss_name.split("\n")[0]
        if self.smoothing_ > 1:
            (self.meta_loss_line_,) = ax.plot(
                iterations, meta_loss, color="C0", alpha=0.3, linewidth=0.8,
                label=f"{short_name}, each iteration")
        smoothed_label = (f"{short_name}, moving average of {self.smoothing_}"
                          if self.smoothing_ > 1 else short_name)
        (self.smoothed_line_,) = ax.plot(iterations, self.smoothed_meta_loss_, color="C0",
                                         linewidth=1.8, label=smoothed_label)
        ax.set_ylabel(self.loss_name)

        self.best_iter_line_ = None
        if self.best_iter is not None:
            self.best_iter_line_ = ax.axvline(
                self.best_iter, color="0.3", linestyle=":",
                label=f"initialisation kept (iteration {self.best_iter})")

        self.validation_ax_ = self.validation_line_ = None
        scores = (np.full(n_iter, np.nan) if self.validation_score is None
                  else np.asarray(self.validation_score, dtype=np.float64))
        validated = ~np.isnan(scores)
        if validated.any():
            # a score, higher is better, on a scale of its own: a y-axis of its own
            self.validation_ax_ = ax.twinx()
            (self.validation_line_,) = self.validation_ax_.plot(
                iterations[validated], scores[validated], color="C1", marker="o",
                markersize=4, label="validation score")
            self.validation_ax_.set_ylabel(self.score_name, color="C1")
            self.validation_ax_.tick_params(axis="y", colors="C1")

        self.grad_norm_ax_ = self.grad_norm_line_ = None
        if show_grad_norm:
            self.grad_norm_ax_ = grad_ax
            (self.grad_norm_line_,) = grad_ax.plot(
                iterations, np.asarray(self.init_grad_norm, dtype=np.float64), color="C2",
                linewidth=0.8)
            grad_ax.set_ylabel("first inner-gradient\nnorm")
            grad_ax.set_xlabel("meta-iteration")
            if not ax.get_shared_x_axes().joined(ax, grad_ax):  # else no tick labels
                ax.set_xlabel("meta-iteration")
        else:
            ax.set_xlabel("meta-iteration")

        # one legend for both y-axes. Inside, it would hide the end of a run, where the
        # loss falls and the score rises: below the figure when the figure is ours, else
        # on the top-most axes, so that no line covers it
        handles = [h for a in (ax, self.validation_ax_) if a is not None
                   for h in a.get_legend_handles_labels()[0]]
        if own_figure:
            self.legend_ = ax.figure.legend(handles=handles, loc="outside lower center",
                                            ncols=2, fontsize="small")
        else:
            self.legend_ = (self.validation_ax_ or ax).legend(handles=handles,
                                                              fontsize="small")
        title = "Meta-learning curve" + (f" of {self.name}" if self.name else "")
        ax.set_title(title)
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, smoothing=None, show_grad_norm=True, ax=None,
                       name=None):
        """Plot the meta-learning curve of a meta-fitted estimator.

        Parameters
        ----------
        estimator : sklmeta estimator or TaskPipeline
            Meta-fitted: reads its ``meta_history_`` (and ``best_iter_`` with early
            stopping). Pipelines: their last step's.
        smoothing : int, default=None
            The moving average's window, in meta-iterations (see :meth:`plot`).
        show_grad_norm : bool, default=True
            Draw the first inner-gradient norm in a lower panel.
        ax : matplotlib Axes or pair of Axes, default=None
            See :meth:`plot`.
        name : str, default=None
            Shown in the title; None: the estimator's class name.

        Returns
        -------
        display : MetaLearningCurveDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        learner = meta_learner(estimator)
        if not hasattr(learner, "meta_fit"):
            raise TypeError(
                f"{cls.__name__} plots what a sklmeta meta-learner recorded while "
                f"meta-training; {type(estimator).__name__} is not one.")
        if not hasattr(learner, "meta_history_"):
            raise NotFittedError(
                f"This {type(learner).__name__} has not been meta-fitted: call "
                "meta_fit(tasks) before plotting its meta-learning curve.")
        history = learner.meta_history_
        pretraining = isinstance(learner, (PretrainedRegressor, PretrainedClassifier))
        loss = "cross-entropy" if is_classifier(learner) else "MSE"
        return cls(
            meta_loss=history["meta_loss"],
            init_grad_norm=history.get("init_grad_norm"),
            validation_score=history.get("validation_score"),
            best_iter=getattr(learner, "best_iter_", None),
            # joint pre-training has no inner loop: its loss is that of the pooled data
            loss_name=(f"training loss\n({loss} on pooled tasks)" if pretraining
                       else f"meta-loss\n(query {loss} after adaptation)"),
            score_name=("validation accuracy" if is_classifier(learner)
                        else "validation score (R²)"),
            name=type(learner).__name__ if name is None else name,
        ).plot(ax=ax, smoothing=smoothing, show_grad_norm=show_grad_norm)
