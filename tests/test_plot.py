"""sklmeta.plot: the displays' values against independent computations, what they draw,
and that drawing leaves the estimator as it was."""

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error
from sklearn.preprocessing import StandardScaler

from sklmeta import MAMLClassifier, MAMLRegressor, PretrainedRegressor
from sklmeta.pipeline import make_task_pipeline
from sklmeta.tasks import EpisodicTasks, SinusoidTasks

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sklmeta.plot import (  # noqa: E402
    AdaptationCurveDisplay,
    FewShotRegressionDisplay,
    MetaLearningCurveDisplay,
)

SINE = SinusoidTasks(k_support=5, k_query=10)
AMPLITUDE, PHASE = 2.0, 0.5


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def maml():
    # validated every 4 iterations: iterations 4, 8, 12 have scores, the others NaN
    return MAMLRegressor(hidden_layer_sizes=(20, 20), max_iter=12, meta_batch_size=4,
                         validation_every=4, device="cpu", random_state=0).meta_fit(
        SINE, validation_tasks=SINE.sample(5, random_state=1))


@pytest.fixture(scope="module")
def test_tasks():
    return SINE.sample(4, random_state=2)


@pytest.fixture(scope="module")
def digit_tasks():
    X, y = load_digits(return_X_y=True)
    keep = y < 6
    return EpisodicTasks(X[keep] / 16, y[keep], n_way=3, k_shot=4, k_query=4)


def support_set():
    X = np.random.default_rng(0).uniform(-5, 5, size=(5, 1))
    return X, SINE.wave(X[:, 0], AMPLITUDE, PHASE)


def snapshot(estimator):
    """What an estimator holds: its parameters and its fitted tensors, copied."""
    tensors = {name: {k: v.clone() for k, v in getattr(estimator, name).items()}
               for name in ("meta_params_", "adapted_params_") if hasattr(estimator, name)}
    return estimator.get_params(), tensors


def legend_texts(legend):
    return [t.get_text() for t in legend.get_texts()]


def test_importing_sklmeta_plot_does_not_import_matplotlib():
    code = "import sys, sklmeta, sklmeta.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_displays_say_how_to_install_matplotlib(monkeypatch, maml, test_tasks):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    with pytest.raises(ImportError, match=r"sklmeta\[plot\]"):
        AdaptationCurveDisplay.from_estimator(maml, test_tasks)


# ---------------------------------------------------------------- meta-learning curve
def test_meta_learning_curve_values(maml):
    history = maml.meta_history_
    display = MetaLearningCurveDisplay.from_estimator(maml, smoothing=3)
    np.testing.assert_array_equal(display.meta_loss, history["meta_loss"])
    # trailing moving average: numpy's full windows, then the mean of what came before
    loss = history["meta_loss"].astype(np.float64)
    np.testing.assert_allclose(display.smoothed_meta_loss_[2:],
                               np.convolve(loss, np.ones(3) / 3, mode="valid"))
    np.testing.assert_allclose(display.smoothed_meta_loss_[:2],
                               [loss[0], loss[:2].mean()])
    np.testing.assert_allclose(display.smoothed_line_.get_ydata(), display.smoothed_meta_loss_)
    np.testing.assert_array_equal(display.meta_loss_line_.get_ydata(), loss)
    np.testing.assert_array_equal(display.smoothed_line_.get_xdata(), np.arange(1, 13))
    # validation points only where validated, at the iteration counts validated
    np.testing.assert_array_equal(display.validation_line_.get_xdata(), [4, 8, 12])
    np.testing.assert_allclose(display.validation_line_.get_ydata(),
                               history["validation_score"][[3, 7, 11]])
    np.testing.assert_allclose(display.grad_norm_line_.get_ydata(), history["init_grad_norm"])


def test_meta_learning_curve_labels(maml):
    display = MetaLearningCurveDisplay.from_estimator(maml, smoothing=3)
    assert display.ax_.get_ylabel() == "meta-loss\n(query MSE after adaptation)"
    assert display.validation_ax_.get_ylabel() == "validation score (R²)"
    assert display.grad_norm_ax_.get_xlabel() == "meta-iteration"
    assert "norm" in display.grad_norm_ax_.get_ylabel()
    assert display.ax_.get_title() == "Meta-learning curve of MAMLRegressor"
    assert legend_texts(display.legend_) == [
        "meta-loss, each iteration", "meta-loss, moving average of 3", "validation score"]
    assert display.figure_ is display.ax_.figure
    display.figure_.savefig(io.BytesIO(), format="png")


def test_meta_learning_curve_one_panel_and_given_axes(maml):
    display = MetaLearningCurveDisplay.from_estimator(maml, show_grad_norm=False,
                                                      smoothing=1, name="mine")
    assert display.grad_norm_ax_ is None and display.meta_loss_line_ is None
    assert display.ax_.get_xlabel() == "meta-iteration"
    assert display.ax_.get_title() == "Meta-learning curve of mine"
    assert len(display.figure_.axes) == 2  # the loss axes and the score's twin

    _, axes = plt.subplots(1, 2)
    display = MetaLearningCurveDisplay.from_estimator(maml, ax=axes)
    assert display.ax_ is axes[0] and display.grad_norm_ax_ is axes[1]
    assert display.smoothing_ == 1  # 2% of 12 iterations, at least 1
    with pytest.raises(ValueError, match="ax=\\(loss_ax, grad_norm_ax\\)"):
        MetaLearningCurveDisplay.from_estimator(maml, ax=axes[0])


def test_meta_learning_curve_best_iteration_and_no_validation():
    loss = np.linspace(2.0, 1.0, 10)
    display = MetaLearningCurveDisplay(meta_loss=loss, best_iter=7).plot(smoothing=2)
    assert display.best_iter_line_.get_xdata()[0] == 7
    assert display.validation_ax_ is None and display.grad_norm_ax_ is None
    assert "initialisation kept (iteration 7)" in legend_texts(display.legend_)


def test_meta_learning_curve_of_pretraining_names_its_loss():
    est = PretrainedRegressor(max_iter=2, device="cpu", random_state=0).meta_fit(SINE)
    display = MetaLearningCurveDisplay.from_estimator(est)
    assert display.ax_.get_ylabel() == "training loss\n(MSE on pooled tasks)"
    assert legend_texts(display.legend_)[0] == "training loss"  # smoothing 1: no raw line


def test_meta_learning_curve_refuses_unfitted_estimators():
    with pytest.raises(NotFittedError, match="This MAMLRegressor has not been meta-fitted"):
        MetaLearningCurveDisplay.from_estimator(MAMLRegressor())
    with pytest.raises(TypeError, match="LinearRegression is not one"):
        MetaLearningCurveDisplay.from_estimator(LinearRegression())
    with pytest.raises(ValueError, match="smoothing must be a positive int"):
        MetaLearningCurveDisplay(meta_loss=np.ones(3)).plot(smoothing=0)


# ---------------------------------------------------------------- adaptation curve
def test_adaptation_curve_values_match_a_hand_loop(maml, test_tasks):
    steps = (0, 1, 3)
    display = AdaptationCurveDisplay.from_estimator(maml, test_tasks, steps=steps)
    for i, k in enumerate(steps):
        est = clone(maml).set_params(adapt_steps=k)
        mse = [mean_squared_error(t.y_query, est.adapt(t.X_support, t.y_support)
                                  .predict(t.X_query)) for t in test_tasks]
        np.testing.assert_allclose(display.errors[i], mse, rtol=1e-6)
        np.testing.assert_allclose(display.mean_errors_[i], np.mean(mse), rtol=1e-6)
        low, high = stats.t.interval(0.95, len(mse) - 1, loc=np.mean(mse),
                                     scale=stats.sem(mse))
        np.testing.assert_allclose(display.interval_[:, i], [low, high], rtol=1e-6)
    np.testing.assert_array_equal(display.line_.get_xdata(), steps)
    np.testing.assert_allclose(display.line_.get_ydata(), display.mean_errors_)


def test_adaptation_curve_leaves_the_estimator_as_it_was(maml, test_tasks):
    est = clone(maml).set_params(adapt_steps=2)
    task = test_tasks[0]
    est.adapt(task.X_support, task.y_support)
    before_pred = est.predict(task.X_query)
    params, tensors = snapshot(est)
    AdaptationCurveDisplay.from_estimator(est, test_tasks[1:], steps=(0, 5))
    after_params, after_tensors = snapshot(est)
    assert after_params == params
    for name in tensors:
        assert all(torch.equal(tensors[name][k], after_tensors[name][k]) for k in tensors[name])
    np.testing.assert_array_equal(est.predict(task.X_query), before_pred)


def test_adaptation_curves_of_several_estimators_share_an_axis(maml, test_tasks):
    first = AdaptationCurveDisplay.from_estimator(maml, test_tasks, steps=(0, 1, 2))
    untrained = MAMLRegressor(hidden_layer_sizes=(20, 20), device="cpu", random_state=0)
    second = AdaptationCurveDisplay.from_estimator(untrained, test_tasks, steps=(0, 1, 4),
                                                   name="no meta-training", ax=first.ax_)
    ax = first.ax_
    assert second.ax_ is ax and len(ax.lines) == 2
    assert legend_texts(ax.get_legend()) == ["MAMLRegressor", "no meta-training"]
    assert first.line_.get_color() != second.line_.get_color()
    # each band in its line's colour
    for d in (first, second):
        np.testing.assert_allclose(d.fill_between_.get_facecolor()[0][:3],
                                   matplotlib.colors.to_rgb(d.line_.get_color()))
    np.testing.assert_array_equal(ax.get_xticks(), [0, 1, 2, 4])
    assert ax.get_xlabel() == "adaptation steps (gradient steps on the support set)"
    assert ax.get_ylabel() == "query MSE"
    assert ax.get_title() == "Error after adaptation: mean over 4 tasks, 95% interval"
    first.figure_.savefig(io.BytesIO(), format="png")


def test_adaptation_curve_of_a_classifier_is_its_error_rate(digit_tasks):
    clf = MAMLClassifier(hidden_layer_sizes=(16,), max_iter=2, meta_batch_size=2,
                         device="cpu", random_state=0).meta_fit(digit_tasks)
    tasks = digit_tasks.sample(3, random_state=1)
    display = AdaptationCurveDisplay.from_estimator(clf, tasks, steps=(0, 2))
    for i, k in enumerate((0, 2)):
        est = clone(clf).set_params(adapt_steps=k)
        expected = [1 - accuracy_score(t.y_query, est.adapt(t.X_support, t.y_support)
                                       .predict(t.X_query)) for t in tasks]
        np.testing.assert_allclose(display.errors[i], expected)
    assert display.ax_.get_ylabel() == "query error rate (1 - accuracy)"


def test_adaptation_curve_with_a_metric_and_a_pipeline(test_tasks):
    pipe = make_task_pipeline(StandardScaler(), MAMLRegressor(
        hidden_layer_sizes=(20,), max_iter=2, device="cpu", random_state=0))
    pipe.meta_fit(SINE.sample(8, random_state=0))
    display = AdaptationCurveDisplay.from_estimator(pipe, test_tasks, steps=(0, 2),
                                                    metric=mean_absolute_error)
    est = clone(pipe).set_params(mamlregressor__adapt_steps=2)
    expected = [mean_absolute_error(t.y_query, est.fit(t.X_support, t.y_support)
                                    .predict(t.X_query)) for t in test_tasks]
    np.testing.assert_allclose(display.errors[1], expected, rtol=1e-6)
    assert display.ax_.get_ylabel() == "query mean_absolute_error"
    assert pipe[-1].adapt_steps is None  # the pipeline was not changed


def test_adaptation_curve_with_one_task_has_no_band(maml, test_tasks):
    display = AdaptationCurveDisplay.from_estimator(maml, test_tasks[:1], steps=(0, 1))
    assert np.isnan(display.interval_).all()
    assert np.isfinite(display.mean_errors_).all()


@pytest.mark.parametrize("tasks, steps, error, match", [
    (SINE, (0, 1), TypeError, "tasks.sample"),
    (np.zeros((5, 1)), (0, 1), TypeError, "collection of tasks"),
    (None, (0, -1), ValueError, "non-negative ints"),
    (None, (), ValueError, "non-empty"),
    (None, (0.5,), ValueError, "non-negative ints"),
])
def test_adaptation_curve_refuses_bad_inputs(maml, test_tasks, tasks, steps, error, match):
    with pytest.raises(error, match=match):
        AdaptationCurveDisplay.from_estimator(
            maml, test_tasks if tasks is None else tasks, steps=steps)


def test_adaptation_curve_refuses_bad_metric_arguments(maml, test_tasks):
    with pytest.raises(TypeError, match="metric must be a callable"):
        AdaptationCurveDisplay.from_estimator(maml, test_tasks, metric="mse")
    with pytest.raises(ValueError, match="response_method"):
        AdaptationCurveDisplay.from_estimator(maml, test_tasks,
                                              response_method="predict_proba")


# ---------------------------------------------------------------- few-shot regression
def test_few_shot_regression_values(maml):
    X, y = support_set()
    grid = np.linspace(-5, 5, 50)
    display = FewShotRegressionDisplay.from_estimator(
        maml, X, y, X_grid=grid, true_function=lambda x: SINE.wave(x, AMPLITUDE, PHASE))
    adapted = clone(maml).adapt(X, y)
    np.testing.assert_allclose(display.y_pred, adapted.predict(grid[:, None]), rtol=1e-6)
    start = clone(maml).set_params(adapt_steps=0).adapt(X, y)
    np.testing.assert_allclose(display.y_pred_init, start.predict(grid[:, None]), rtol=1e-6)
    np.testing.assert_allclose(display.y_true, SINE.wave(grid, AMPLITUDE, PHASE))
    np.testing.assert_allclose(display.line_.get_ydata(), display.y_pred)
    assert display.y_std is None and display.band_ is None  # sklmeta gives no std
    np.testing.assert_array_equal(display.support_points_.get_offsets(),
                                  np.column_stack([X[:, 0], y]))


def test_few_shot_regression_labels_and_default_grid(maml):
    X, y = support_set()
    Xq = np.array([[-6.0], [6.0]])
    display = FewShotRegressionDisplay.from_estimator(
        maml, X, y, X_query=Xq, y_query=SINE.wave(Xq[:, 0], AMPLITUDE, PHASE))
    # the grid spans support and query inputs, with a 10% margin
    assert display.x_grid[0] == pytest.approx(-7.2) and display.x_grid[-1] == pytest.approx(7.2)
    assert legend_texts(display.ax_.get_legend()) == [
        "meta-learned initialisation (0 steps)", "adapted (1 step)", "query points",
        "support points (5)"]
    assert display.ax_.get_title() == "Few-shot regression: MAMLRegressor"
    assert (display.ax_.get_xlabel(), display.ax_.get_ylabel()) == ("x", "y")
    display.figure_.savefig(io.BytesIO(), format="png")

    untrained = MAMLRegressor(device="cpu", random_state=0)
    display = FewShotRegressionDisplay.from_estimator(untrained, X, y)
    assert legend_texts(display.ax_.get_legend())[0] == "random initialisation (0 steps)"
    none = FewShotRegressionDisplay.from_estimator(maml, X, y, show_initialisation=False)
    assert none.init_line_ is None


def test_few_shot_regression_leaves_the_estimator_as_it_was(maml):
    X, y = support_set()
    params, tensors = snapshot(maml)
    FewShotRegressionDisplay.from_estimator(maml, X, y)
    after_params, after_tensors = snapshot(maml)
    assert after_params == params and not hasattr(maml, "adapted_params_")
    assert all(torch.equal(tensors["meta_params_"][k], after_tensors["meta_params_"][k])
               for k in tensors["meta_params_"])


class RegressorWithStd(MAMLRegressor):
    """A regressor with a predictive distribution: a constant standard deviation."""

    def predict(self, X, return_std=False):
        mean = super().predict(X)
        return (mean, np.full(len(mean), 0.5)) if return_std else mean


def test_few_shot_regression_draws_a_predictive_band():
    X, y = support_set()
    est = RegressorWithStd(max_iter=2, device="cpu", random_state=0).meta_fit(SINE)
    display = FewShotRegressionDisplay.from_estimator(est, X, y, X_grid=np.linspace(-5, 5, 20))
    np.testing.assert_array_equal(display.y_std, 0.5)
    assert display.band_ is not None
    assert "95% predictive band" in legend_texts(display.ax_.get_legend())


@pytest.mark.parametrize("X, y, kwargs, error, match", [
    (np.zeros((5, 2)), np.zeros(5), {}, ValueError, r"shape \(n_samples, 1\); got shape \(5, 2\)"),
    (np.zeros(5), np.zeros(5), {}, ValueError, r"reshape\(-1, 1\)"),
    (np.zeros((5, 1)), np.zeros((5, 2)), {}, ValueError, "one target per example"),
    (np.zeros((5, 1)), np.zeros(5), {"X_query": np.zeros((3, 1))}, ValueError, "go together"),
    (np.zeros((5, 1)), np.zeros(5), {"X_grid": np.zeros((4, 3))}, ValueError, "X_grid"),
])
def test_few_shot_regression_refuses_bad_inputs(maml, X, y, kwargs, error, match):
    with pytest.raises(error, match=match):
        FewShotRegressionDisplay.from_estimator(maml, X, y, **kwargs)


def test_few_shot_regression_refuses_classifiers():
    with pytest.raises(TypeError, match="MAMLClassifier is a classifier"):
        FewShotRegressionDisplay.from_estimator(MAMLClassifier(), np.zeros((4, 1)), [0, 1, 0, 1])
