"""Task collections adapt together (vmap over tasks) as they would one at a time."""

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from sklmeta import (
    MAMLClassifier,
    MAMLPlusPlusRegressor,
    MAMLRegressor,
    MetaSGDRegressor,
    ReptileRegressor,
)
from sklmeta.tasks import EpisodicTasks, SinusoidTasks, Task


def bn_net():
    return nn.Sequential(nn.Linear(1, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))


@pytest.fixture(scope="module")
def sinusoid():
    return SinusoidTasks(k_support=5, k_query=7)


@pytest.fixture(scope="module")
def episodes():
    X, y = load_digits(return_X_y=True)
    return EpisodicTasks(X / 16, y, n_way=3, k_shot=2, k_query=4)


def one_at_a_time(est, tasks):
    """The reference: each task adapted by adapt() on its own copy."""
    return [copy.copy(est).adapt(t.X_support, t.y_support) for t in tasks]


REGRESSORS = {
    "maml-3-steps": lambda: MAMLRegressor(inner_steps=3),
    "meta-sgd": lambda: MetaSGDRegressor(),
    "reptile-adam": lambda: ReptileRegressor(inner_optimizer="adam"),
    "batchnorm-support": lambda: MAMLRegressor(module=bn_net()),
    "mamlpp-per-step-bn": lambda: MAMLPlusPlusRegressor(module=bn_net()),
}


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressors_adapt_together_as_one_at_a_time(name, sinusoid):
    est = REGRESSORS[name]().set_params(max_iter=10, device="cpu", random_state=0)
    est.meta_fit(sinusoid)
    assert est.strategy_.startswith("vmap")  # the batched path is the one under test
    tasks = sinusoid.sample(12, random_state=1)
    pairs = list(est._adapted_copies(tasks))
    assert [t.X_query.tolist() for t, _ in pairs] == [t.X_query.tolist() for t in tasks]
    for (task, batched), single in zip(pairs, one_at_a_time(est, tasks)):
        for k, v in single.adapted_params_.items():
            np.testing.assert_allclose(batched.adapted_params_[k], v, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(batched.predict(task.X_query),
                                   single.predict(task.X_query), rtol=1e-5, atol=1e-5)
    assert not hasattr(est, "adapted_params_")  # the estimator itself is untouched


@pytest.mark.parametrize("head_init", ["meta", "zero", "prototypes"])
def test_classifiers_adapt_together_as_one_at_a_time(head_init, episodes):
    est = MAMLClassifier(head_init=head_init, max_iter=10, device="cpu", random_state=0)
    est.meta_fit(episodes)
    tasks = episodes.sample(10, random_state=2)
    for (task, batched), single in zip(est._adapted_copies(tasks), one_at_a_time(est, tasks)):
        np.testing.assert_allclose(batched.predict_proba(task.X_query),
                                   single.predict_proba(task.X_query), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(batched.classes_, single.classes_)
    assert est.score(tasks) == pytest.approx(
        np.mean(np.concatenate([s.predict(t.X_query) == t.y_query
                                for t, s in zip(tasks, one_at_a_time(est, tasks))])))


def test_tasks_of_different_label_sets_or_shapes_adapt_one_at_a_time(episodes, sinusoid):
    est = MAMLClassifier(max_iter=5, device="cpu", random_state=0).meta_fit(episodes)
    tasks = list(episodes.sample(4, random_state=3))
    tasks[1] = Task(tasks[1].X_support, np.where(tasks[1].y_support == 2, 7,
                                                  tasks[1].y_support),
                    tasks[1].X_query, tasks[1].y_query)  # labels {0, 1, 7}
    assert est._batched_support_sets(tasks) is None
    for (task, worker), single in zip(est._adapted_copies(tasks), one_at_a_time(est, tasks)):
        np.testing.assert_array_equal(worker.classes_, single.classes_)
        np.testing.assert_array_equal(worker.predict(task.X_query), single.predict(task.X_query))
    reg = MAMLRegressor(max_iter=5, device="cpu", random_state=0).meta_fit(sinusoid)
    mixed = list(sinusoid.sample(2, random_state=0)) + list(
        SinusoidTasks(k_support=3, k_query=7).sample(2, random_state=0))
    assert reg._batched_support_sets(mixed) is None
    assert np.isfinite(reg.score(mixed))
    looped = MAMLRegressor(max_iter=5, strategy="loop", device="cpu", random_state=0)
    assert looped.meta_fit(sinusoid)._batched_support_sets(list(mixed[:2])) is None


def test_a_diverged_batch_warns_once(sinusoid):
    est = MAMLRegressor(max_iter=5, device="cpu", random_state=0).meta_fit(sinusoid)
    est.set_params(inner_lr=1e6, adapt_steps=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        workers = [w for _, w in est._adapted_copies(sinusoid.sample(8, random_state=0))]
    diverged = [w for w in caught if "Adaptation diverged on" in str(w.message)]
    assert len(diverged) == 1 and "on 8 task(s)" in str(diverged[0].message)
    assert not all(torch.isfinite(v).all() for v in workers[0].adapted_params_.values())
    torch.testing.assert_close(est.meta_params_, MAMLRegressor(
        max_iter=5, device="cpu", random_state=0).meta_fit(sinusoid).meta_params_)
