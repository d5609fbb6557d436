"""Few-shot regression of a function of one input: support points and adapted curve."""

import numpy as np
from sklearn.base import is_classifier

from ._base import (
    accepts_return_std,
    adapt,
    adapt_steps_of,
    check_matplotlib_support,
    copy_for_adaptation,
    meta_learner,
    new_axes,
)

__all__ = ["FewShotRegressionDisplay"]

_N_GRID = 200
_Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile: a 95% band


def _one_input(X, name):
    """The single column of ``X``, shape (n_samples, 1), as a 1-D array."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 1:
        hint = " (reshape a 1-D array with X.reshape(-1, 1))" if X.ndim == 1 else ""
        raise ValueError(
            "FewShotRegressionDisplay plots functions of one input: "
            f"{name} must have shape (n_samples, 1); got shape {X.shape}{hint}.")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric; got dtype {X.dtype}.")
    return X[:, 0]


def _one_output(y, n_samples, name):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n_samples:
        raise ValueError(
            f"{name} must hold one target per example, shape ({n_samples},); got shape "
            f"{y.shape}.")
    return y


class FewShotRegressionDisplay:
    """Few-shot regression of a function of one input.

    Draws the support set, the prediction of the estimator adapted to it and,
    optionally, the prediction of the initialisation before any step (what
    meta-training learned), the true function and query points. A predictive band
    (the mean plus or minus 1.96 standard deviations, 95% for a normal predictive
    distribution) is drawn for estimators whose ``predict`` takes ``return_std=True``;
    sklmeta's estimators give point predictions, hence no band.

    It is recommended to use :meth:`from_estimator`. All parameters are stored as
    attributes.

    Parameters
    ----------
    X_support : ndarray of shape (n_support,)
        The support inputs.
    y_support : ndarray of shape (n_support,)
        The support targets.
    x_grid : ndarray of shape (n_grid,)
        The inputs the curves are evaluated at, increasing.
    y_pred : ndarray of shape (n_grid,)
        The adapted estimator's prediction on ``x_grid``.
    y_pred_init : ndarray of shape (n_grid,), default=None
        The initialisation's prediction (zero adaptation steps).
    y_std : ndarray of shape (n_grid,), default=None
        The predictive standard deviation, for a band.
    y_true : ndarray of shape (n_grid,), default=None
        The true function on ``x_grid``.
    X_query, y_query : ndarray of shape (n_query,), default=None
        Query points.
    adapt_steps : int, default=None
        The adaptation steps taken, for the legend.
    init_name : str, default="initialisation"
        The legend entry of ``y_pred_init``.
    name : str, default=None
        The estimator's name, in the title.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The adapted prediction.
    init_line_ : matplotlib Line2D or None
        The initialisation's prediction.
    true_line_ : matplotlib Line2D or None
        The true function.
    band_ : matplotlib PolyCollection or None
        The predictive band.
    support_points_ : matplotlib PathCollection
        The support set.
    query_points_ : matplotlib PathCollection or None
        The query set.
    ax_ : matplotlib Axes
        The axes.
    figure_ : matplotlib Figure
        The figure.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from sklmeta import MAMLRegressor
    >>> from sklmeta.plot import FewShotRegressionDisplay
    >>> from sklmeta.tasks import SinusoidTasks
    >>> tasks = SinusoidTasks()
    >>> maml = MAMLRegressor(max_iter=20, device="cpu", random_state=0).meta_fit(tasks)
    >>> X = np.random.default_rng(0).uniform(-5, 5, size=(5, 1))
    >>> y = tasks.wave(X[:, 0], amplitude=2.0, phase=0.5)
    >>> display = FewShotRegressionDisplay.from_estimator(
    ...     maml, X, y, X_grid=np.linspace(-5, 5, 100),
    ...     true_function=lambda x: tasks.wave(x, amplitude=2.0, phase=0.5))
    >>> display.y_pred.shape, display.y_std is None
    ((100,), True)
    >>> plt.close(display.figure_)
    """

    def __init__(self, *, X_support, y_support, x_grid, y_pred, y_pred_init=None,
                 y_std=None, y_true=None, X_query=None, y_query=None, adapt_steps=None,
                 init_name="initialisation", name=None):
        self.X_support = X_support
        self.y_support = y_support
        self.x_grid = x_grid
        self.y_pred = y_pred
        self.y_pred_init = y_pred_init
        self.y_std = y_std
        self.y_true = y_true
        self.X_query = X_query
        self.y_query = y_query
        self.adapt_steps = adapt_steps
        self.init_name = init_name
        self.name = name

    def plot(self, ax=None, *, name=None):
        """Plot the few-shot regression.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; None: a new figure.
        name : str, default=None
            Shown in the title; None: ``self.name``.

        Returns
        -------
        display : FewShotRegressionDisplay
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        ax, figure = new_axes(ax)
        name = self.name if name is None else name

        self.true_line_ = self.init_line_ = self.band_ = self.query_points_ = None
        if self.y_true is not None:
            (self.true_line_,) = ax.plot(self.x_grid, self.y_true, color="0.2",
                                         linestyle="--", linewidth=1.2, label="true function")
        if self.y_pred_init is not None:
            (self.init_line_,) = ax.plot(self.x_grid, self.y_pred_init, color="C1",
                                         linestyle=":", linewidth=1.8,
                                         label=f"{self.init_name} (0 steps)")
        steps = "" if self.adapt_steps is None else (
            f" ({self.adapt_steps} step{'s' if self.adapt_steps != 1 else ''})")
        (self.line_,) = ax.plot(self.x_grid, self.y_pred, color="C0", linewidth=2,
                                label=f"adapted{steps}")
        if self.y_std is not None:
            half = _Z_95 * np.asarray(self.y_std)
            self.band_ = ax.fill_between(self.x_grid, self.y_pred - half, self.y_pred + half,
                                         color="C0", alpha=0.2, linewidth=0,
                                         label="95% predictive band")
        if self.X_query is not None:
            self.query_points_ = ax.scatter(self.X_query, self.y_query, facecolors="none",
                                            edgecolors="0.4", s=25, label="query points")
        # drawn last, on top: the few points everything else depends on
        self.support_points_ = ax.scatter(self.X_support, self.y_support, color="C3",
                                          marker="^", s=50, zorder=3,
                                          label=f"support points ({len(self.X_support)})")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title("Few-shot regression" + (f": {name}" if name else ""))
        ax.legend(fontsize="small")
        self.ax_, self.figure_ = ax, figure
        return self

    @classmethod
    def from_estimator(cls, estimator, X_support, y_support, *, X_grid=None,
                       true_function=None, X_query=None, y_query=None,
                       show_initialisation=True, ax=None, name=None):
        """Adapt a copy of the estimator to a support set of one input and plot it.

        The estimator is left as it was: copies adapt (``sklearn.base.clone``, which
        keeps a meta-fitted estimator's initialisation).

        Parameters
        ----------
        estimator : sklmeta regressor or TaskPipeline
            Usually meta-fitted on tasks of one input.
        X_support : array-like of shape (n_support, 1)
            The support inputs: one feature.
        y_support : array-like of shape (n_support,)
            The support targets: one output.
        X_grid : array-like of shape (n_grid,) or (n_grid, 1), default=None
            The inputs to draw the curves at. None: 200 points spanning the support
            and query inputs, with a 10% margin each side.
        true_function : callable, default=None
            ``true_function(x) -> y`` for a 1-D array of inputs: the task's function,
            drawn dashed.
        X_query : array-like of shape (n_query, 1), default=None
            Query inputs, drawn as hollow points (with ``y_query``).
        y_query : array-like of shape (n_query,), default=None
            Query targets.
        show_initialisation : bool, default=True
            Also draw the prediction of the initialisation, before any adaptation
            step (the meta-learned one; a random one for an estimator never
            meta-fitted).
        ax : matplotlib Axes, default=None
            Where to draw; None: a new figure.
        name : str, default=None
            Shown in the title; None: the estimator's class name.

        Returns
        -------
        display : FewShotRegressionDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        if is_classifier(estimator):
            raise TypeError(
                f"{cls.__name__} plots regression curves; {type(estimator).__name__} is "
                "a classifier (AdaptationCurveDisplay plots a classifier's error rate).")
        x_support = _one_input(X_support, "X_support")
        y_support = _one_output(y_support, len(x_support), "y_support")
        if (X_query is None) != (y_query is None):
            raise ValueError("X_query and y_query go together: pass both or neither.")
        x_query = None
        if X_query is not None:
            x_query = _one_input(X_query, "X_query")
            y_query = _one_output(y_query, len(x_query), "y_query")
        if X_grid is None:
            seen = x_support if x_query is None else np.concatenate([x_support, x_query])
            low, high = seen.min(), seen.max()
            margin = 0.1 * (high - low) if high > low else 1.0
            x_grid = np.linspace(low - margin, high + margin, _N_GRID)
        else:
            X_grid = np.asarray(X_grid)
            x_grid = np.sort(X_grid if X_grid.ndim == 1 else _one_input(X_grid, "X_grid"))
        X_grid = x_grid.astype(np.float64)[:, None]

        worker = adapt(copy_for_adaptation(estimator), X_support, y_support)
        y_std = None
        if accepts_return_std(worker):
            y_pred, y_std = worker.predict(X_grid, return_std=True)
            y_std = _one_output(y_std, len(x_grid), "predict's standard deviation")
        else:
            y_pred = worker.predict(X_grid)
        y_pred = _one_output(y_pred, len(x_grid), "predict's output")
        steps = adapt_steps_of(estimator)

        y_pred_init = None
        if show_initialisation and steps != 0:
            start = adapt(copy_for_adaptation(estimator, adapt_steps=0), X_support, y_support)
            y_pred_init = _one_output(start.predict(X_grid), len(x_grid), "predict's output")
        meta_fitted = hasattr(meta_learner(estimator), "meta_params_")
        return cls(
            X_support=x_support, y_support=y_support, x_grid=x_grid, y_pred=y_pred,
            y_pred_init=y_pred_init, y_std=y_std,
            y_true=None if true_function is None else np.asarray(true_function(x_grid)),
            X_query=x_query, y_query=y_query, adapt_steps=steps,
            init_name="meta-learned initialisation" if meta_fitted else "random initialisation",
            name=type(estimator).__name__ if name is None else name,
        ).plot(ax=ax)
