"""Task-level scoring with any scikit-learn metric (sklmeta.metrics)."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error
from sklearn.model_selection import GridSearchCV, cross_val_score

from sklmeta import MAMLClassifier, MAMLRegressor
from sklmeta.metrics import make_task_scorer
from sklmeta.tasks import EpisodicTasks, SinusoidTasks


@pytest.fixture(scope="module")
def regressor_and_tasks():
    tasks = SinusoidTasks(k_support=5, k_query=7)
    est = MAMLRegressor(hidden_layer_sizes=(16, 16), max_iter=20, device="cpu",
                        random_state=0).meta_fit(tasks)
    return est, tasks.sample(6, random_state=1)


@pytest.fixture(scope="module")
def classifier_and_tasks():
    X, y = load_digits(return_X_y=True)
    tasks = EpisodicTasks(X[y < 6] / 16, y[y < 6], n_way=3, k_shot=2, k_query=4)
    est = MAMLClassifier(hidden_layer_sizes=(16,), max_iter=10, device="cpu",
                         random_state=0).meta_fit(tasks)
    return est, tasks.sample(5, random_state=2)


def by_hand(est, tasks, method="predict"):
    """Each task's query targets and outputs, adapting a fresh copy per task."""
    out = []
    for t in tasks:
        adapted = MAMLRegressor.__new__(type(est))
        adapted.__dict__.update(est.__dict__)
        adapted.adapt(t.X_support, t.y_support)
        out.append((t.y_query, getattr(adapted, method)(t.X_query)))
    return out


def test_pooled_and_per_task_scores_are_those_written_out(regressor_and_tasks):
    est, tasks = regressor_and_tasks
    pairs = by_hand(est, tasks)
    y_true = np.concatenate([p[0] for p in pairs])
    y_pred = np.concatenate([p[1] for p in pairs])
    pooled = make_task_scorer("neg_mean_squared_error")(est, tasks)
    assert pooled == pytest.approx(-mean_squared_error(y_true, y_pred), rel=1e-6)
    per_task = make_task_scorer(mean_absolute_error, greater_is_better=False, pooled=False)
    assert per_task(est, tasks) == pytest.approx(
        -np.mean([mean_absolute_error(t, p) for t, p in pairs]), rel=1e-6)
    # r2 pooled is the estimator's own task-collection score
    assert make_task_scorer("r2")(est, tasks) == pytest.approx(est.score(tasks), rel=1e-6)
    assert not hasattr(est, "adapted_params_")  # the estimator was left alone


def test_classifier_scores_with_labels_and_probabilities(classifier_and_tasks):
    est, tasks = classifier_and_tasks
    pairs = by_hand(est, tasks)
    probas = by_hand(est, tasks, "predict_proba")
    y_true = np.concatenate([p[0] for p in pairs])
    assert make_task_scorer("accuracy")(est, tasks) == pytest.approx(
        accuracy_score(y_true, np.concatenate([p[1] for p in pairs])))
    assert make_task_scorer("neg_log_loss")(est, tasks) == pytest.approx(
        -log_loss(y_true, np.concatenate([p[1] for p in probas])), rel=1e-5)
    assert make_task_scorer("accuracy", pooled=False)(est, tasks) == pytest.approx(
        np.mean([accuracy_score(t, p) for t, p in pairs]))


def test_task_scorers_drive_searches_and_cross_validation(regressor_and_tasks):
    _, tasks = regressor_and_tasks
    many = SinusoidTasks(k_support=5, k_query=7).sample(24, random_state=3)
    est = MAMLRegressor(hidden_layer_sizes=(16, 16), max_iter=5, device="cpu", random_state=0)
    scorer = make_task_scorer("neg_mean_squared_error")
    scores = cross_val_score(est, many, cv=3, scoring=scorer, error_score="raise")
    assert scores.shape == (3,) and np.all(scores < 0)
    search = GridSearchCV(est, {"inner_lr": [0.005, 0.02]}, cv=2, error_score="raise",
                          scoring={"mse": scorer, "mae": make_task_scorer(
                              "neg_mean_absolute_error", pooled=False)}, refit="mse")
    search.fit(many)
    assert np.isfinite(search.cv_results_["mean_test_mse"]).all()
    assert np.isfinite(search.cv_results_["mean_test_mae"]).all()


def test_misuse_gets_clear_errors(regressor_and_tasks):
    est, tasks = regressor_and_tasks
    with pytest.raises(TypeError, match="make_task_scorer"):
        est.predict(tasks)
    with pytest.raises(TypeError, match="scores task collections"):
        make_task_scorer("r2")(est, np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(TypeError, match="metric must be"):
        make_task_scorer(3)
