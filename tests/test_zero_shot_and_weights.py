"""Zero-shot prediction after meta_fit, and sample_weight in adapt/fit."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.utils.validation import check_is_fitted
from torch import nn

from sklmeta import (
    MAMLClassifier,
    MAMLRegressor,
    MetaSGDRegressor,
    ReptileClassifier,
    ReptileRegressor,
)
from sklmeta.tasks import EpisodicTasks, SinusoidTasks


@pytest.fixture(scope="module")
def sinusoid():
    return SinusoidTasks(k_support=10, k_query=10)


@pytest.fixture(scope="module")
def linear_maml(sinusoid):
    # a linear model: its predictions have a closed form to check against
    est = MAMLRegressor(module=nn.Linear(1, 1), inner_lr=0.05, inner_steps=2, max_iter=5,
                        device="cpu", random_state=0)
    return est.meta_fit(sinusoid)


@pytest.fixture(scope="module")
def episodes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = np.repeat(np.arange(6), 20)
    return EpisodicTasks(X + y[:, None], y, n_way=3, k_shot=2, k_query=3)


def _weights_and_bias(params):
    return params["weight"].double().numpy(), params["bias"].double().numpy()


# ------------------------------------------------------------------ zero-shot

def test_a_meta_fitted_regressor_predicts_from_its_initialisation(linear_maml, sinusoid):
    task = sinusoid.sample(1, random_state=1)[0]
    W, b = _weights_and_bias(linear_maml.meta_params_)
    expected = (task.X_query.astype(np.float64) @ W.T + b)[:, 0]
    check_is_fitted(linear_maml)  # scikit-learn sees a model that predicts
    assert linear_maml.predict(task.X_query).shape == (10,)
    np.testing.assert_allclose(linear_maml.predict(task.X_query), expected, rtol=1e-5,
                               atol=1e-6)
    score = linear_maml.score(task.X_query, task.y_query)
    residual = ((task.y_query - expected) ** 2).sum()
    total = ((task.y_query - task.y_query.mean()) ** 2).sum()
    assert score == pytest.approx(1 - residual / total, rel=1e-4)


def test_adapt_replaces_the_zero_shot_model_and_meta_fit_brings_it_back(sinusoid):
    task = sinusoid.sample(1, random_state=2)[0]
    est = MAMLRegressor(max_iter=5, device="cpu", random_state=0).meta_fit(sinusoid)
    zero_shot = est.predict(task.X_query)
    adapted = est.adapt(task.X_support, task.y_support).predict(task.X_query)
    assert not np.allclose(zero_shot, adapted)
    np.testing.assert_allclose(est.to_module(adapted=True)(
        torch.as_tensor(task.X_query)).detach().numpy()[:, 0], adapted, rtol=1e-5, atol=1e-6)
    est.set_params(max_iter=3).meta_fit(sinusoid)  # a new initialisation, not adapted
    np.testing.assert_allclose(
        est.predict(task.X_query),
        est.to_module(adapted=False)(torch.as_tensor(task.X_query)).detach().numpy()[:, 0],
        rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [MAMLClassifier, ReptileClassifier])
def test_classifiers_refuse_zero_shot_with_the_reason(cls, episodes):
    est = cls(max_iter=3, device="cpu", random_state=0).meta_fit(episodes)
    with pytest.raises(NotFittedError, match="classes are set by the support set"):
        est.predict(np.zeros((2, 5)))
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


def test_zero_shot_with_batchnorm_needs_a_support_set_or_transductive_statistics(sinusoid):
    def net():
        return nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))

    X = np.linspace(-5, 5, 7, dtype=np.float32)[:, None]
    support = MAMLRegressor(module=net(), max_iter=3, device="cpu", random_state=0)
    support.meta_fit(sinusoid)
    with pytest.raises(NotFittedError, match="support set's statistics"):
        support.predict(X)
    transductive = MAMLRegressor(module=net(), max_iter=3, device="cpu", random_state=0,
                                 batch_norm_stats="transductive").meta_fit(sinusoid)
    # normalised with the predicted batch's statistics: the network in training mode
    module = transductive.to_module(adapted=False).train()
    expected = module(torch.as_tensor(X)).detach().numpy()[:, 0]
    np.testing.assert_allclose(transductive.predict(X), expected, rtol=1e-5, atol=1e-6)


def test_never_fitted_estimators_still_say_so():
    with pytest.raises(NotFittedError, match="adapt"):
        MAMLRegressor(device="cpu").predict(np.zeros((2, 1)))


# ------------------------------------------------------------------ sample_weight

def _weighted_sgd_oracle(W, b, X, y, p, lr, steps):
    """Textbook gradient steps on the p-weighted mean squared error, in float64."""
    X, y = X.astype(np.float64), y.astype(np.float64)
    for _ in range(steps):
        r = X @ W.T + b - y[:, None]           # (n, 1) residuals
        W = W - lr * 2 * (p[:, None] * r).T @ X
        b = b - lr * 2 * (p[:, None] * r).sum(0)
    return W, b


def test_weighted_adaptation_matches_a_textbook_weighted_loss(linear_maml, sinusoid):
    task = sinusoid.sample(1, random_state=3)[0]
    weight = np.random.default_rng(0).uniform(0.1, 3.0, size=10)
    W0, b0 = _weights_and_bias(linear_maml.meta_params_)
    W, b = _weighted_sgd_oracle(W0, b0, task.X_support, task.y_support,
                                weight / weight.sum(), lr=0.05, steps=2)
    est = clone(linear_maml).adapt(task.X_support, task.y_support, sample_weight=weight)
    got_W, got_b = _weights_and_bias(est.adapted_params_)
    np.testing.assert_allclose(got_W, W, rtol=1e-5)
    np.testing.assert_allclose(got_b, b, rtol=1e-5, atol=1e-6)
    # without weights the oracle's uniform weights apply, and the results differ
    plain = clone(linear_maml).adapt(task.X_support, task.y_support)
    W_uniform, _ = _weighted_sgd_oracle(W0, b0, task.X_support, task.y_support,
                                        np.full(10, 0.1), lr=0.05, steps=2)
    np.testing.assert_allclose(_weights_and_bias(plain.adapted_params_)[0], W_uniform,
                               rtol=1e-5)
    assert not np.allclose(W, W_uniform, rtol=1e-3)


@pytest.mark.parametrize("make", [
    lambda: MAMLRegressor(max_iter=3, inner_steps=3, device="cpu", random_state=0),
    lambda: MetaSGDRegressor(max_iter=3, device="cpu", random_state=0),
    lambda: ReptileRegressor(max_iter=3, inner_optimizer="adam", device="cpu",
                             random_state=0),
])
def test_integer_weights_act_as_repeated_examples(make, sinusoid):
    est = make().meta_fit(sinusoid)
    task = sinusoid.sample(1, random_state=4)[0]
    weight = np.array([0, 1, 2, 3, 1, 0, 2, 1, 1, 4])
    weighted = clone(est).adapt(task.X_support, task.y_support, sample_weight=weight)
    repeated = clone(est).adapt(np.repeat(task.X_support, weight, axis=0),
                                np.repeat(task.y_support, weight, axis=0))
    np.testing.assert_allclose(weighted.predict(task.X_query), repeated.predict(task.X_query),
                               rtol=1e-5, atol=1e-6)


def test_classifier_weights_act_as_repeated_examples(episodes):
    est = MAMLClassifier(max_iter=3, device="cpu", random_state=0).meta_fit(episodes)
    task = episodes.sample(1, random_state=5)[0]
    weight = np.array([1, 0, 2, 3, 1, 2])
    labels = np.array(["a", "b", "c"])[task.y_support]
    weighted = clone(est).fit(task.X_support, labels, sample_weight=weight)
    repeated = clone(est).fit(np.repeat(task.X_support, weight, axis=0),
                              np.repeat(labels, weight))
    np.testing.assert_allclose(weighted.predict_proba(task.X_query),
                               repeated.predict_proba(task.X_query), rtol=1e-5, atol=1e-6)


def test_huge_weights_weigh_as_their_ratios(linear_maml, sinusoid):
    # their sum overflows float64: only the ratios may count
    task = sinusoid.sample(1, random_state=8)[0]
    weight = np.linspace(1.0, 2.0, 10)
    huge = clone(linear_maml).adapt(task.X_support, task.y_support, sample_weight=weight * 1e307)
    plain = clone(linear_maml).adapt(task.X_support, task.y_support, sample_weight=weight)
    np.testing.assert_allclose(huge.predict(task.X_query), plain.predict(task.X_query),
                               rtol=1e-6)
    assert not np.allclose(huge.predict(task.X_query), clone(linear_maml).predict(task.X_query))


def test_grid_search_routes_sample_weight_to_adapt(linear_maml, sinusoid):
    task = sinusoid.sample(1, random_state=6)[0]
    X = np.concatenate([task.X_support, task.X_query])
    y = np.concatenate([task.y_support, task.y_query])
    weight = np.linspace(0.5, 2.0, len(y))
    search = GridSearchCV(linear_maml, {"inner_lr": [0.01, 0.05]}, cv=2)
    search.fit(X, y, sample_weight=weight)
    refit = clone(linear_maml).set_params(**search.best_params_)
    refit.adapt(X, y, sample_weight=weight)
    np.testing.assert_allclose(search.predict(X), refit.predict(X), rtol=1e-6)


def test_bad_sample_weights_are_refused_and_nothing_changes(linear_maml, sinusoid, episodes):
    task = sinusoid.sample(1, random_state=7)[0]
    est = clone(linear_maml)
    for bad, message in [(-np.ones(10), "Negative"), (np.ones(3), r"sample_weight\.shape"),
                         (np.zeros(10), "non-zero|all zero")]:
        with pytest.raises(ValueError, match=message):
            est.adapt(task.X_support, task.y_support, sample_weight=bad)
        assert not hasattr(est, "adapted_params_")
    with pytest.raises(ValueError, match="sample_weight must be None"):
        est.fit(sinusoid.sample(4, random_state=0), sample_weight=np.ones(4))
    proto = MAMLClassifier(head_init="prototypes", max_iter=2, device="cpu", random_state=0)
    proto.meta_fit(episodes)
    few = episodes.sample(1, random_state=0)[0]
    with pytest.raises(ValueError, match="head_init='prototypes'"):
        proto.adapt(few.X_support, few.y_support, sample_weight=np.ones(6))
