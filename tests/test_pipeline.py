"""Pipelines that meta-fit on tasks (sklmeta.pipeline)."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklmeta import MAMLRegressor
from sklmeta.pipeline import TaskPipeline, make_task_pipeline
from sklmeta.tasks import GroupedTasks, Task, TaskBatch


def unscaled_panel():
    """Grouped regression with features of mean ~50 and spread ~20."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 40)
    X = 50 + 20 * rng.normal(size=(groups.size, 2))
    slope = rng.normal(size=(30, 2))
    y = ((X - 50) / 20 * slope[groups]).sum(1) + 0.1 * rng.normal(size=groups.size)
    return GroupedTasks(X, y, groups, k_support=5, k_query=10)


def quick(**kwargs):
    params = dict(hidden_layer_sizes=(16, 16), max_iter=30, device="cpu", random_state=0)
    return MAMLRegressor(**{**params, **kwargs})


def test_the_scaler_is_fitted_on_pooled_tasks_and_then_frozen():
    tasks = unscaled_panel().sample(40, random_state=0)
    pipe = make_task_pipeline(StandardScaler(), quick())
    assert isinstance(pipe, TaskPipeline) and pipe.steps[1][0] == "mamlregressor"
    pipe.fit(tasks)
    pooled = np.concatenate([tasks.X_support.reshape(-1, 2), tasks.X_query.reshape(-1, 2)])
    scaler = pipe.named_steps["standardscaler"]
    np.testing.assert_allclose(scaler.mean_, pooled.mean(0), rtol=1e-5)
    # the meta-learner was meta-fitted on scaled tasks: same as doing it by hand
    by_hand = quick().meta_fit([Task(scaler.transform(t.X_support), t.y_support,
                                     scaler.transform(t.X_query), t.y_query) for t in tasks])
    for k, v in by_hand.meta_params_.items():
        np.testing.assert_allclose(pipe[-1].meta_params_[k], v, rtol=1e-5, atol=1e-6)
    # fit(X, y) adapts, without refitting the scaler on the support set
    task = tasks[0]
    mean = scaler.mean_.copy()
    pipe.fit(task.X_support, task.y_support)
    np.testing.assert_array_equal(scaler.mean_, mean)
    expected = by_hand.adapt(scaler.transform(task.X_support), task.y_support).predict(
        scaler.transform(task.X_query))
    np.testing.assert_allclose(pipe.predict(task.X_query), expected, rtol=1e-5, atol=1e-6)
    # scoring tasks scores the transformed tasks
    assert pipe.score(tasks[:5]) == pytest.approx(by_hand.score(
        TaskBatch(*(scaler.transform(a.reshape(-1, 2)).reshape(a.shape) if i % 2 == 0 else a
                    for i, a in enumerate(tasks[:5].arrays())))), rel=1e-5)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.predict(task.X_query), pipe.predict(task.X_query))


def test_searches_at_both_levels():
    distribution = unscaled_panel()
    tasks = distribution.sample(30, random_state=1)
    pipe = make_task_pipeline(StandardScaler(), quick(max_iter=10))
    # over meta-training: each candidate fits the scaler and meta-fits on the training tasks
    scores = cross_val_score(pipe, tasks, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    # over adaptation: clones keep the fitted scaler and the initialisation
    pipe.fit(distribution)  # a distribution: the scaler is fitted on n_fit_tasks draws
    twin = clone(pipe)
    np.testing.assert_array_equal(twin[0].mean_, pipe[0].mean_)
    assert twin[-1].meta_params_.keys() == pipe[-1].meta_params_.keys()
    task = tasks[0]
    search = GridSearchCV(pipe, {"mamlregressor__inner_lr": [0.003, 0.03]}, cv=2)
    search.fit(np.r_[task.X_support, task.X_query], np.r_[task.y_support, task.y_query])
    np.testing.assert_array_equal(search.best_estimator_[0].mean_, pipe[0].mean_)


def test_a_plain_pipeline_still_refuses_tasks_and_points_here():
    tasks = unscaled_panel().sample(10, random_state=0)
    with pytest.raises((TypeError, ValueError)):
        make_pipeline(StandardScaler(), quick()).fit(tasks)
    with pytest.raises(TypeError, match="task collection"):
        make_task_pipeline(StandardScaler(), quick()).meta_fit(np.zeros((3, 2)))


def test_task_scorers_score_a_task_pipeline_without_touching_it():
    from sklmeta.metrics import make_task_scorer

    tasks = unscaled_panel().sample(40, random_state=0)
    pipe = make_task_pipeline(StandardScaler(), quick()).fit(tasks)
    task = tasks[0]
    pipe.fit(task.X_support, task.y_support)
    before = pipe.predict(task.X_query)
    assert make_task_scorer("r2")(pipe, tasks[:6]) == pytest.approx(pipe.score(tasks[:6]),
                                                                    rel=1e-5)
    per_task = make_task_scorer("r2", pooled=False)(pipe, tasks[:6])
    assert np.isfinite(per_task)
    np.testing.assert_array_equal(pipe.predict(task.X_query), before)  # still its adaptation


def test_fit_on_a_support_set_routes_the_meta_learner_s_sample_weight():
    tasks = unscaled_panel().sample(40, random_state=0)
    pipe = make_task_pipeline(StandardScaler(), quick()).fit(tasks)
    task = tasks[1]
    weight = np.linspace(0.0, 2.0, len(task.y_support))
    pipe.fit(task.X_support, task.y_support, mamlregressor__sample_weight=weight)
    scaler = pipe.named_steps["standardscaler"]
    direct = clone(pipe[-1]).adapt(scaler.transform(task.X_support), task.y_support,
                                   sample_weight=weight)
    np.testing.assert_allclose(pipe.predict(task.X_query),
                               direct.predict(scaler.transform(task.X_query)), rtol=1e-6)
    with pytest.raises(ValueError, match="frozen"):
        pipe.fit(task.X_support, task.y_support, standardscaler__sample_weight=weight)
    with pytest.raises(ValueError, match="<step>__<parameter>"):
        pipe.fit(task.X_support, task.y_support, sample_weight=weight)
