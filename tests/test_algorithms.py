"""The algorithm family as estimator parameters: Meta-SGD's and MAML++'s learned inner
rates (``learn_inner_lr``), ANIL's head-only adaptation (``adapt_params``), and the
named presets. The mathematics is checked against textbook oracles in test_engine.py."""

import copy
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklmeta import (
    ANILClassifier,
    ANILRegressor,
    MAMLRegressor,
    MetaSGDClassifier,
    MetaSGDRegressor,
)
from sklmeta.persistence import load, save
from sklmeta.tasks import SinusoidTasks


@pytest.fixture(scope="module")
def sinusoid():
    return SinusoidTasks(k_support=10, k_query=10)


def quick(cls, **kwargs):
    params = dict(max_iter=15, device="cpu", random_state=0, hidden_layer_sizes=(16, 16))
    return cls(**{**params, **kwargs})


def by_hand_adaptation(est, X, y, rates, steps, per_step):
    """Plain gradient steps with the learned rates, written out (float64)."""
    p = {k: v.double().clone().requires_grad_(True) for k, v in est.meta_params_.items()}
    X, y = torch.as_tensor(X).double(), torch.as_tensor(y).double().reshape(-1, 1)
    for i in range(steps):
        out = torch.func.functional_call(est.module_, p, (X,))
        g = torch.autograd.grad(torch.nn.functional.mse_loss(out, y), [p[k] for k in rates])
        for k, gk in zip(rates, g):
            lr = rates[k][min(i, len(rates[k]) - 1)] if per_step else rates[k]
            p[k] = (p[k] - lr.double() * gk).detach().requires_grad_(True)
    return p


@pytest.mark.parametrize("learn, shape", [("elementwise", (16, 1)), ("per_layer_step", (2,))])
def test_learned_rates_are_fitted_state_used_by_adapt(learn, shape, sinusoid, tmp_path):
    est = quick(MAMLRegressor, learn_inner_lr=learn, inner_steps=2).meta_fit(sinusoid)
    assert set(est.inner_lrs_) == set(est.meta_params_)
    assert est.inner_lrs_["0.weight"].shape == shape
    assert not torch.allclose(est.inner_lrs_["0.weight"], torch.tensor(0.01))  # learned
    task = sinusoid.sample(1, random_state=3)[0]
    est.set_params(adapt_steps=3).adapt(task.X_support, task.y_support)
    expected = by_hand_adaptation(est, task.X_support, task.y_support, est.inner_lrs_, 3,
                                  per_step=learn == "per_layer_step")
    for k, v in est.adapted_params_.items():
        torch.testing.assert_close(v.double(), expected[k].detach(), rtol=1e-5, atol=1e-6)
    # the rates travel with the model: clone, pickle, safe save/load
    for other in (clone(est), pickle.loads(pickle.dumps(est)),
                  (save(est, tmp_path / "m.pt"), load(tmp_path / "m.pt"))[1]):
        for k, v in est.inner_lrs_.items():
            assert torch.equal(other.inner_lrs_[k], v)
        other.adapt(task.X_support, task.y_support)
        np.testing.assert_array_equal(other.predict(task.X_query), est.predict(task.X_query))


def test_learned_rates_continue_with_warm_start_and_refuse_another_kind(sinusoid):
    est = quick(MAMLRegressor, learn_inner_lr="elementwise").meta_fit(sinusoid)
    rates = {k: v.clone() for k, v in est.inner_lrs_.items()}
    est.set_params(warm_start=True, max_iter=5).meta_fit(sinusoid)
    assert est.n_iter_ == 20
    assert not torch.equal(est.inner_lrs_["0.weight"], rates["0.weight"])
    est.set_params(learn_inner_lr="per_layer_step")
    with pytest.raises(ValueError, match="learned rates .* cannot continue"):
        est.meta_fit(sinusoid)
    est.set_params(learn_inner_lr=False, warm_start=False).meta_fit(sinusoid)
    assert not hasattr(est, "inner_lrs_")


@pytest.mark.parametrize("adapt_params, adapted", [
    ("head", {"4.weight", "4.bias"}),
    (["2.bias", "4.bias"], {"2.bias", "4.bias"}),
])
def test_only_the_chosen_parameters_adapt(adapt_params, adapted, sinusoid):
    est = quick(MAMLRegressor, adapt_params=adapt_params).meta_fit(sinusoid)
    task = sinusoid.sample(1, random_state=0)[0]
    est.adapt(task.X_support, task.y_support)
    changed = {k for k, v in est.adapted_params_.items()
               if not torch.equal(v, est.meta_params_[k])}
    assert changed == adapted


def test_bad_algorithm_parameters_are_named(sinusoid):
    with pytest.raises(ValueError, match="adapt_params names .*'5.weight'"):
        quick(MAMLRegressor, adapt_params=["5.weight"]).meta_fit(sinusoid)
    with pytest.raises(ValueError, match="learn_inner_lr"):
        quick(MAMLRegressor, learn_inner_lr=True).meta_fit(sinusoid)
    with pytest.raises(ValueError, match="adapt_params"):
        quick(MAMLRegressor, adapt_params="body").meta_fit(sinusoid)


def test_presets_are_the_family_with_other_defaults():
    assert MetaSGDRegressor().get_params()["learn_inner_lr"] == "elementwise"
    assert MetaSGDClassifier().get_params() == MAMLRegressor().set_params(
        learn_inner_lr="elementwise").get_params() | {"inner_lr": 0.4, "meta_batch_size": 32,
                                                     "head_init": "meta"}
    assert ANILRegressor().adapt_params == "head" and ANILClassifier().adapt_params == "head"
    assert repr(MetaSGDRegressor(inner_lr=0.05)) == "MetaSGDRegressor(inner_lr=0.05)"
    assert isinstance(ANILRegressor(), MAMLRegressor)
    from sklmeta import MAMLPlusPlusClassifier

    pp = MAMLPlusPlusClassifier().get_params()
    assert (pp["inner_steps"], pp["learn_inner_lr"], pp["meta_lr_schedule"]) == (
        5, "per_layer_step", "cosine") and pp["multi_step_loss"] > 0


def test_grid_search_over_algorithms(sinusoid):
    """Variants are parameters, so one search compares algorithms on held-out tasks."""
    grid = {"learn_inner_lr": [False, "elementwise"], "adapt_params": ["all", "head"]}
    search = GridSearchCV(quick(MAMLRegressor, max_iter=20), grid, cv=2)
    search.fit(sinusoid.sample(40, random_state=0))
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4 and np.all(np.isfinite(scores))
    assert hasattr(search.best_estimator_, "meta_params_")


# ------------------------------------------------------------------ MAML++ switches


def test_multi_step_loss_weights_anneal_towards_the_last_step():
    from sklmeta.algorithms import multi_step_loss_weights

    assert multi_step_loss_weights(4, 0, 100) == pytest.approx((0.25,) * 4)
    middle = multi_step_loss_weights(4, 50, 100)
    end = multi_step_loss_weights(4, 100, 100)
    assert multi_step_loss_weights(4, 10_000, 100) == end
    for w in (middle, end):
        assert sum(w) == pytest.approx(1.0)
    assert end[:3] == pytest.approx((0.03 / 4,) * 3) and end[3] == pytest.approx(1 - 0.09 / 4)
    assert end[0] < middle[0] < 0.25 < middle[3] < end[3]
    assert multi_step_loss_weights(1, 5, 10) == (1.0,)


def test_first_order_iterations_then_second_order(sinusoid):
    common = dict(inner_steps=2, meta_batch_size=4)
    mixed = quick(MAMLRegressor, first_order_iters=3, max_iter=3, **common).meta_fit(sinusoid)
    first = quick(MAMLRegressor, first_order=True, max_iter=3, **common).meta_fit(sinusoid)
    for k, v in first.meta_params_.items():
        assert torch.equal(mixed.meta_params_[k], v)
    mixed = quick(MAMLRegressor, first_order_iters=3, max_iter=6, **common).meta_fit(sinusoid)
    first = quick(MAMLRegressor, first_order=True, max_iter=6, **common).meta_fit(sinusoid)
    assert not torch.allclose(mixed.meta_params_["0.weight"], first.meta_params_["0.weight"])


def test_multi_step_loss_and_cosine_schedule_change_what_is_learned(sinusoid):
    common = dict(inner_steps=3, meta_batch_size=4, max_iter=5)
    plain = quick(MAMLRegressor, **common).meta_fit(sinusoid)
    msl = quick(MAMLRegressor, multi_step_loss=10, **common).meta_fit(sinusoid)
    assert not torch.allclose(msl.meta_params_["0.weight"], plain.meta_params_["0.weight"])
    # with one inner step there is one loss: the multi-step loss is MAML's
    one = dict(inner_steps=1, meta_batch_size=4, max_iter=5)
    a = quick(MAMLRegressor, multi_step_loss=10, **one).meta_fit(sinusoid)
    b = quick(MAMLRegressor, **one).meta_fit(sinusoid)
    for k, v in b.meta_params_.items():
        torch.testing.assert_close(a.meta_params_[k], v)
    # the cosine schedule starts at meta_lr: the first update is the constant one's
    cos1 = quick(MAMLRegressor, meta_lr_schedule="cosine", **{**one, "max_iter": 1})
    const1 = quick(MAMLRegressor, **{**one, "max_iter": 1})
    assert torch.equal(cos1.meta_fit(sinusoid).meta_params_["0.weight"],
                       const1.meta_fit(sinusoid).meta_params_["0.weight"])
    cos = quick(MAMLRegressor, meta_lr_schedule="cosine", **one).meta_fit(sinusoid)
    assert not torch.allclose(cos.meta_params_["0.weight"], b.meta_params_["0.weight"])


def test_compiled_strategies_refuse_per_iteration_switches(sinusoid):
    with pytest.raises(ValueError, match="recompile every iteration"):
        quick(MAMLRegressor, multi_step_loss=5, strategy="vmap+compile").meta_fit(sinusoid)


def test_zero_head_initialisation_in_meta_fit_and_adapt():
    from sklearn.datasets import load_digits

    from sklmeta import MAMLClassifier
    from sklmeta.tasks import EpisodicTasks

    X, y = load_digits(return_X_y=True)
    tasks = EpisodicTasks(X[y < 6] / 16, y[y < 6], n_way=3, k_shot=2, k_query=2)
    clf = MAMLClassifier(head_init="zero", hidden_layer_sizes=(16,), max_iter=10,
                         device="cpu", random_state=0).meta_fit(tasks)
    init_head = clf.meta_params_["2.weight"].clone()
    X_new, y_new = X[y >= 7][:12] / 16, y[y >= 7][:12]
    clf.set_params(adapt_steps=0).adapt(X_new, y_new)
    assert torch.count_nonzero(clf.adapted_params_["2.weight"]) == 0  # starts at zero
    assert torch.equal(clf.meta_params_["2.weight"], init_head)  # never meta-learned
    np.testing.assert_allclose(clf.predict_proba(X_new), 1 / 3, rtol=1e-6)
    clf.set_params(adapt_steps=3).adapt(X_new, y_new)
    assert clf.score(X_new, y_new) > 1 / 3
    with pytest.raises(ValueError, match="head_init"):
        MAMLClassifier(head_init="centroids", max_iter=2, device="cpu").meta_fit(tasks)
    with pytest.raises(ValueError, match="adapt_params to include the head"):
        MAMLClassifier(head_init="zero", adapt_params=["0.weight"], max_iter=2,
                       device="cpu").meta_fit(tasks)


def test_proto_maml_without_steps_is_a_nearest_prototype_classifier():
    from sklearn.datasets import load_digits

    from sklmeta import MAMLClassifier
    from sklmeta.tasks import EpisodicTasks

    X, y = load_digits(return_X_y=True)
    X = X / 16
    tasks = EpisodicTasks(X[y < 6], y[y < 6], n_way=3, k_shot=2, k_query=2)
    clf = MAMLClassifier(head_init="prototypes", hidden_layer_sizes=(16,), max_iter=10,
                         device="cpu", random_state=0).meta_fit(tasks)
    support = np.flatnonzero(y >= 7)[:15]
    query = np.flatnonzero(y >= 7)[15:60]
    clf.set_params(adapt_steps=0).adapt(X[support], y[support])
    p = {k: v.double() for k, v in clf.meta_params_.items()}

    def embed(x):
        return torch.relu(torch.as_tensor(x) @ p["0.weight"].T + p["0.bias"])

    e_support, e_query = embed(X[support]), embed(X[query])
    prototypes = torch.stack([e_support[torch.as_tensor(y[support] == c)].mean(0)
                              for c in clf.classes_])
    nearest = torch.cdist(e_query, prototypes).argmin(1).numpy()
    np.testing.assert_array_equal(clf.predict(X[query]), clf.classes_[nearest])
    # a few steps from there
    assert clf.set_params(adapt_steps=2).adapt(X[support], y[support]).score(
        X[query], y[query]) > 0.5


# ------------------------------------------------------------------ Reptile's paper options


def test_reptile_adam_inner_optimiser_is_used_at_meta_training_and_adapt(sinusoid):
    from sklmeta import ReptileRegressor

    sgd = quick(ReptileRegressor, max_iter=5).meta_fit(sinusoid)
    adam = quick(ReptileRegressor, max_iter=5, inner_optimizer="adam",
                 inner_lr=0.01).meta_fit(sinusoid)
    assert not torch.allclose(adam.meta_params_["0.weight"], sgd.meta_params_["0.weight"])
    task = sinusoid.sample(1, random_state=0)[0]
    adam.set_params(adapt_steps=3).adapt(task.X_support, task.y_support)
    # by hand: torch.optim.Adam (beta1 = 0) on the module from the meta-learned weights
    model = copy.deepcopy(adam.module_)
    model.load_state_dict({**adam.meta_params_}, strict=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.0, 0.999), eps=1e-8)
    X = torch.as_tensor(task.X_support)
    y = torch.as_tensor(task.y_support).reshape(-1, 1)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(X), y).backward()
        optimizer.step()
    for k, v in model.named_parameters():
        torch.testing.assert_close(adam.adapted_params_[k], v.detach(), rtol=1e-5, atol=1e-6)


def test_reptile_meta_step_annealing(sinusoid):
    from sklmeta import ReptileRegressor

    constant = quick(ReptileRegressor, max_iter=1).meta_fit(sinusoid)
    annealed = quick(ReptileRegressor, max_iter=1, meta_step_size_final=0.0).meta_fit(sinusoid)
    for k, v in constant.meta_params_.items():  # the first step is meta_step_size
        assert torch.equal(annealed.meta_params_[k], v)
    constant = quick(ReptileRegressor, max_iter=4).meta_fit(sinusoid)
    same = quick(ReptileRegressor, max_iter=4, meta_step_size_final=0.1).meta_fit(sinusoid)
    annealed = quick(ReptileRegressor, max_iter=4, meta_step_size_final=0.0).meta_fit(sinusoid)
    for k, v in constant.meta_params_.items():
        torch.testing.assert_close(same.meta_params_[k], v)
    assert not torch.allclose(annealed.meta_params_["0.weight"], constant.meta_params_["0.weight"])
    # smaller steps move the initialisation less from where it started
    start = quick(ReptileRegressor, max_iter=1, meta_step_size=1e-12).meta_fit(sinusoid)
    moved = {name: sum((e.meta_params_[k] - start.meta_params_[k]).norm() for k in
                       start.meta_params_) for name, e in (("constant", constant),
                                                           ("annealed", annealed))}
    assert moved["annealed"] < moved["constant"]


# ------------------------------------------------------------------ continuing is continuing


class RecordingTasks:
    def __init__(self, base):
        self.base, self.first_x = base, []

    def sample(self, n_tasks, random_state=None):
        batch = self.base.sample(n_tasks, random_state)
        self.first_x.append(float(batch.X_support[0, 0, 0]))
        return batch


@pytest.mark.parametrize("cls", ["MAMLRegressor", "ReptileRegressor", "PretrainedRegressor"])
def test_warm_start_continues_exactly_where_it_stopped(cls, sinusoid):
    import sklmeta

    est_cls = getattr(sklmeta, cls)
    whole = quick(est_cls, max_iter=12).meta_fit(sinusoid)
    recording = RecordingTasks(sinusoid)
    split = quick(est_cls, max_iter=5).meta_fit(recording)
    split.set_params(warm_start=True, max_iter=7).meta_fit(recording)
    assert split.n_iter_ == 12
    assert len(set(recording.first_x)) == 12  # new tasks, not the first five again
    for k, v in whole.meta_params_.items():  # new tasks and Adam's moments: bit for bit
        assert torch.equal(split.meta_params_[k], v), k
    np.testing.assert_array_equal(split.meta_history_["meta_loss"],
                                  whole.meta_history_["meta_loss"])


def test_warm_start_takes_todays_meta_lr_and_restarts_the_cosine(sinusoid, monkeypatch):
    seen = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    est = quick(MAMLRegressor, max_iter=4, meta_lr_schedule="cosine").meta_fit(sinusoid)
    assert seen[0] == pytest.approx(1e-3) and seen[-1] < 1e-3
    seen.clear()
    est.set_params(warm_start=True, meta_lr=0.01).meta_fit(sinusoid)
    assert seen[0] == pytest.approx(0.01) and seen[-1] < 0.01


def test_warm_start_after_switching_learned_rates_starts_a_fresh_optimiser(sinusoid):
    est = quick(MAMLRegressor, max_iter=3).meta_fit(sinusoid)
    est.set_params(warm_start=True, learn_inner_lr="elementwise").meta_fit(sinusoid)
    assert est.n_iter_ == 6 and set(est.inner_lrs_) == set(est.meta_params_)
    est.set_params(learn_inner_lr=False).meta_fit(sinusoid)
    assert est.n_iter_ == 9 and not hasattr(est, "inner_lrs_")


def test_adapt_reads_learned_rates_as_they_were_learned(sinusoid):
    est = quick(MetaSGDRegressor, max_iter=3).meta_fit(sinusoid)
    task = sinusoid.sample(1, random_state=0)[0]
    est.adapt(task.X_support, task.y_support)
    expected = {k: v.clone() for k, v in est.adapted_params_.items()}
    est.set_params(learn_inner_lr="per_layer_step").adapt(task.X_support, task.y_support)
    for k, v in expected.items():
        assert torch.equal(est.adapted_params_[k], v)


def batch_norm_tasks():
    from sklearn.datasets import load_digits

    from sklmeta.tasks import EpisodicTasks

    X, y = load_digits(return_X_y=True)
    return EpisodicTasks(X[y < 6] / 16, y[y < 6], n_way=3, k_shot=2, k_query=3)


def batch_norm_mlp():
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16),
                               torch.nn.ReLU(), torch.nn.Linear(16, 3))


def test_per_step_batchnorm_in_meta_fit_adapt_predict_and_persistence(tmp_path):
    from sklmeta import MAMLClassifier, MAMLPlusPlusClassifier
    from sklmeta.networks import batch_norm_step

    tasks = batch_norm_tasks()
    assert MAMLPlusPlusClassifier().per_step_bn
    est = MAMLClassifier(module=batch_norm_mlp(), per_step_bn=True, inner_steps=3,
                         inner_lr=0.3, max_iter=15, meta_batch_size=4, device="cpu",
                         random_state=0).meta_fit(tasks)
    weight = est.meta_params_["1.weight"]
    assert weight.shape == (3, 16)
    assert not torch.equal(weight[0], weight[2])  # each step learned its own
    task = tasks.sample(1, random_state=1)[0]
    est.set_params(adapt_steps=5).adapt(task.X_support, task.y_support)
    # the per-step weights do not adapt; the rest does
    assert torch.equal(est.adapted_params_["1.weight"], weight)
    assert not torch.equal(est.adapted_params_["0.weight"], est.meta_params_["0.weight"])
    # prediction uses the last learned step's weights (5 adaptation steps: row 2)
    X = torch.as_tensor(task.X_query, dtype=torch.float32)
    Xs = torch.as_tensor(task.X_support, dtype=torch.float32)

    def logits(step):
        with batch_norm_step(step):
            from sklmeta.networks import forward
            return forward(est.module_, est.adapted_params_, est.buffers_, X, Xs)

    np.testing.assert_array_equal(est.decision_function(task.X_query), logits(2).numpy())
    assert not np.allclose(logits(0).numpy(), logits(2).numpy())
    for other in (pickle.loads(pickle.dumps(est)),
                  (save(est, tmp_path / "m.pt"), load(tmp_path / "m.pt",
                                                      module=batch_norm_mlp()))[1]):
        np.testing.assert_array_equal(other.predict(task.X_query), est.predict(task.X_query))
    with pytest.raises(ValueError, match="per-step BatchNorm parameters"):
        est.set_params(adapt_params=["1.weight", "3.weight"]).meta_fit(tasks)
    with pytest.raises(ValueError, match="cannot run per_step_bn"):
        est.set_params(adapt_params="all", strategy="loop+compile").meta_fit(tasks)
