"""The estimators' public behaviour: API, labels, persistence, errors, interruption."""

import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from torch import nn

from sklmeta import (
    MAMLClassifier,
    MAMLRegressor,
    PretrainedRegressor,
    ReptileClassifier,
    ReptileRegressor,
)
from sklmeta.tasks import EpisodicTasks, SinusoidTasks, TaskBatch

REGRESSORS = [MAMLRegressor, ReptileRegressor, PretrainedRegressor]


def quick(cls, **kwargs):
    params = dict(max_iter=20, device="cpu", random_state=0, hidden_layer_sizes=(16, 16))
    params.update(kwargs)
    return cls(**params)


@pytest.fixture(scope="module")
def sinusoid():
    return SinusoidTasks(k_support=10, k_query=10)


@pytest.fixture(scope="module")
def digit_tasks():
    X, y = load_digits(return_X_y=True)
    keep = y < 6
    return EpisodicTasks(X[keep] / 16, y[keep], n_way=3, k_shot=4, k_query=4)


def same_params(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def same_value(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, np.random.Generator):  # same state, not the same object
        return isinstance(b, np.random.Generator) and a.bit_generator.state == b.bit_generator.state
    if isinstance(a, nn.Module):
        return same_value(dict(a.state_dict()), dict(b.state_dict())) and repr(a) == repr(b)
    return a == b


def snapshot(est, ignore=()):
    """A deep copy of an estimator's state, for checking that a failed call changed nothing."""
    return {k: v for k, v in pickle.loads(pickle.dumps(est)).__dict__.items() if k not in ignore}


def assert_unchanged(est, before, ignore=()):
    after = {k: v for k, v in est.__dict__.items() if k not in ignore}
    assert after.keys() == before.keys()
    for key in after:
        assert same_value(after[key], before[key]), key


@pytest.mark.parametrize("cls", REGRESSORS)
def test_regressor_meta_fit_adapt_predict_score(cls, sinusoid):
    est = quick(cls).meta_fit(sinusoid)
    assert est.n_iter_ == 20 and est.meta_history_["meta_loss"].shape == (20,)
    assert np.all(np.diff(est.meta_history_["wall_time"]) >= 0)
    assert np.all(est.meta_history_["init_grad_norm"] > 0)
    task = sinusoid.sample(1, random_state=5)[0]
    assert est.adapt(task.X_support, task.y_support) is est
    pred = est.predict(task.X_query)
    assert pred.shape == (10,) and np.all(np.isfinite(pred))
    assert isinstance(est.score(task.X_query, task.y_query), float)
    assert est.n_features_in_ == 1
    assert set(est.meta_params_) == set(est.adapted_params_)
    assert all(v.device.type == "cpu" for v in est.meta_params_.values())


def test_meta_fit_is_reproducible_and_discards_old_adaptation(sinusoid):
    a = quick(MAMLRegressor).meta_fit(sinusoid)
    b = quick(MAMLRegressor).meta_fit(sinusoid)
    assert same_params(a.meta_params_, b.meta_params_)
    c = quick(MAMLRegressor, random_state=1).meta_fit(sinusoid)
    assert not same_params(a.meta_params_, c.meta_params_)
    task = sinusoid.sample(1, random_state=0)[0]
    adapted = a.adapt(task.X_support, task.y_support).predict(task.X_query)
    a.meta_fit(sinusoid)
    assert not hasattr(a, "adapted_params_")
    # what predicts now is the new initialisation (zero-shot), not the old adaptation
    zero_shot = a.to_module(adapted=False)(torch.as_tensor(task.X_query)).detach().numpy()
    np.testing.assert_allclose(a.predict(task.X_query), zero_shot[:, 0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.predict(task.X_query), adapted)


def test_meta_fit_accepts_a_finite_list_of_tasks(sinusoid):
    task_list = list(sinusoid.sample(30, random_state=0))
    est = quick(MAMLRegressor, meta_batch_size=8).meta_fit(task_list)
    assert est.n_iter_ == 20
    est2 = quick(MAMLRegressor, meta_batch_size=8).meta_fit(sinusoid.sample(30, random_state=0))
    assert same_params(est.meta_params_, est2.meta_params_)


def test_adapt_steps_and_zero_steps(sinusoid):
    est = quick(MAMLRegressor).meta_fit(sinusoid)
    task = sinusoid.sample(1, random_state=2)[0]
    zero = est.set_params(adapt_steps=0).adapt(task.X_support, task.y_support)
    assert same_params(zero.adapted_params_, est.meta_params_)
    one = est.set_params(adapt_steps=1).adapt(task.X_support, task.y_support).predict(task.X_query)
    five = est.set_params(adapt_steps=5).adapt(task.X_support, task.y_support).predict(task.X_query)
    assert not np.allclose(one, five)


def test_predict_before_adapt_is_not_fitted(sinusoid):
    est = quick(MAMLRegressor)
    X = np.zeros((3, 1))
    with pytest.raises(NotFittedError):
        est.predict(X)
    est.meta_fit(sinusoid)  # a regressor then predicts zero-shot: test_zero_shot_and_weights
    assert est.predict(X).shape == (3,)


def test_adapt_without_meta_fit_starts_from_a_random_init():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    est = MAMLRegressor(inner_lr=0.05, adapt_steps=50, device="cpu", random_state=0).fit(X, y)
    assert est.predict(X).shape == (20,)
    assert est.score(X, y) > 0.5  # 50 full-batch steps on a linear problem
    assert not hasattr(est, "meta_params_")
    est.fit(rng.normal(size=(10, 5)), rng.normal(size=10))  # refits on a new feature count
    assert est.n_features_in_ == 5


def test_multi_output_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    Y = np.column_stack([X[:, 0], -X[:, 1]])
    est = MAMLRegressor(inner_lr=0.05, adapt_steps=30, device="cpu", random_state=0).fit(X, Y)
    assert est.predict(X).shape == (30, 2)


def test_classifier_labels_map_to_output_units(digit_tasks):
    clf = quick(MAMLClassifier, hidden_layer_sizes=(32,)).meta_fit(digit_tasks)
    assert clf.n_way_ == 3
    X, y = load_digits(return_X_y=True)
    names = np.array(["seven", "eight", "nine"])
    mask = y >= 7
    X_new, y_new = X[mask][:60] / 16, names[y[mask][:60] - 7]
    clf.adapt(X_new[:15], y_new[:15])
    assert list(clf.classes_) == ["eight", "nine", "seven"]
    pred = clf.predict(X_new[15:])
    assert set(pred) <= set(names)
    proba = clf.predict_proba(X_new[15:])
    assert proba.shape == (45, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(clf.classes_[proba.argmax(1)], pred)

    two = y_new[:15] != "nine"  # fewer classes than n_way is fine
    clf.adapt(X_new[:15][two], y_new[:15][two])
    assert clf.predict_proba(X_new).shape == (60, 2)
    with pytest.raises(ValueError, match="n_way=3"):
        clf.adapt(X[:40] / 16, y[:40])  # 10 classes > n_way


@pytest.mark.parametrize("cls", [MAMLClassifier, ReptileClassifier])
def test_classifier_on_image_shaped_inputs(cls):
    rng = np.random.default_rng(0)
    images = rng.random((120, 16, 16)).astype(np.float32)
    labels = np.repeat(np.arange(6), 20)
    tasks = EpisodicTasks(images, labels, n_way=2, k_shot=1, k_query=2)
    clf = cls(max_iter=2, meta_batch_size=2, device="cpu", random_state=0).meta_fit(tasks)
    assert clf.input_shape_ == (1, 16, 16)
    assert type(clf.module_).__name__ == "Conv4"
    support, y = images[:4], np.array([0, 0, 1, 1])
    preds = []
    for shaped in (support, support[:, None], support.reshape(4, -1)):
        clf.adapt(shaped, y)
        preds.append(clf.predict_proba(images[10:20].reshape(10, -1)))
    np.testing.assert_allclose(preds[0], preds[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(preds[0], preds[2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        clf.predict(rng.random((3, 15, 15)))


def test_user_module_is_copied_and_its_builtin_batchnorm_converted(digit_tasks):
    from sklmeta.networks import BatchNorm1d

    module = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    clf = MAMLClassifier(module, max_iter=3, device="cpu", random_state=0).meta_fit(digit_tasks)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert type(module[1]) is nn.BatchNorm1d and type(clf.module_[1]) is BatchNorm1d
    assert set(clf.meta_params_) == {k for k, _ in module.named_parameters()}
    # sklmeta's BatchNorm is exact under vmap (tests/test_engine.py), torch's is not
    assert clf.strategy_ == "vmap"
    # kinds that are not converted keep torch's layer: the reference convention only,
    # and never vmap for second order
    class OwnNorm(nn.modules.batchnorm._BatchNorm):  # a kind of BatchNorm torch has not
        def _check_input_dim(self, input):
            pass

    other = nn.Sequential(nn.Linear(64, 16), OwnNorm(16), nn.ReLU(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match="batch_norm_stats='transductive'"):
        MAMLClassifier(other, max_iter=1, device="cpu").meta_fit(digit_tasks)
    with pytest.raises(ValueError, match="BatchNorm"):
        MAMLClassifier(other, max_iter=1, device="cpu", strategy="vmap",
                       batch_norm_stats="transductive").meta_fit(digit_tasks)
    transductive = MAMLClassifier(other, max_iter=1, device="cpu",
                                  batch_norm_stats="transductive").meta_fit(digit_tasks)
    assert transductive.strategy_ == "loop"


@pytest.mark.parametrize("cls", [MAMLRegressor, ReptileRegressor])
def test_auto_strategy_follows_the_meta_batch_size(cls, sinusoid):
    assert quick(cls, max_iter=2, meta_batch_size=1).meta_fit(sinusoid).strategy_ == "loop"
    assert quick(cls, max_iter=2, meta_batch_size=4).meta_fit(sinusoid).strategy_ == "vmap"


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_checkpointed_inner_loop_learns_the_same_initialisation(strategy, sinusoid):
    kwargs = dict(max_iter=3, meta_batch_size=4, inner_steps=3, strategy=strategy)
    plain = quick(MAMLRegressor, **kwargs).meta_fit(sinusoid)
    checkpointed = quick(MAMLRegressor, checkpoint_inner_loop=True, **kwargs)
    checkpointed.meta_fit(sinusoid)
    for name, value in plain.meta_params_.items():
        torch.testing.assert_close(checkpointed.meta_params_[name], value)


def test_pretraining_refuses_compiled_strategies(sinusoid):
    with pytest.raises(ValueError, match="strategy"):
        quick(PretrainedRegressor, strategy="vmap+compile").meta_fit(sinusoid)


@pytest.mark.slow
@pytest.mark.parametrize("cls", [MAMLRegressor, ReptileRegressor])
def test_compiled_strategy_learns_the_same_initialisation(cls, sinusoid):
    """torch.compile'd meta-training (opt-in) follows the eager one step for step."""
    eager = quick(cls, max_iter=5, meta_batch_size=4, strategy="vmap").meta_fit(sinusoid)
    compiled = quick(cls, max_iter=5, meta_batch_size=4, strategy="vmap+compile")
    compiled.meta_fit(sinusoid)
    assert compiled.strategy_ == "vmap+compile"
    for name, value in eager.meta_params_.items():
        torch.testing.assert_close(compiled.meta_params_[name], value, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(compiled.meta_history_["meta_loss"],
                               eager.meta_history_["meta_loss"], rtol=1e-4)


@pytest.mark.parametrize("stage", ["unfitted", "meta_fitted", "adapted"])
@pytest.mark.parametrize("cls", [MAMLRegressor, ReptileRegressor])
def test_pickle_and_joblib_round_trip(cls, stage, sinusoid, tmp_path):
    est = quick(cls)
    task = sinusoid.sample(1, random_state=9)[0]
    if stage != "unfitted":
        est.meta_fit(sinusoid)
    if stage == "adapted":
        est.adapt(task.X_support, task.y_support)
    for loaded in (pickle.loads(pickle.dumps(est)), _joblib_round_trip(est, tmp_path)):
        assert loaded.get_params() == est.get_params()
        if stage == "unfitted":
            continue
        if stage == "meta_fitted":
            assert same_params(loaded.meta_params_, est.meta_params_)
            est.adapt(task.X_support, task.y_support)
            loaded.adapt(task.X_support, task.y_support)
        np.testing.assert_array_equal(loaded.predict(task.X_query), est.predict(task.X_query))


def _joblib_round_trip(est, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    return joblib.load(path)


def test_pickle_loads_in_a_fresh_process(sinusoid, tmp_path):
    clf_tasks = EpisodicTasks(*load_digits(return_X_y=True), n_way=3, k_shot=2, k_query=2)
    X, y = load_digits(return_X_y=True)
    models = {
        "reg": quick(MAMLRegressor).meta_fit(sinusoid),
        "clf": quick(MAMLClassifier, hidden_layer_sizes=(8,)).meta_fit(clf_tasks),
    }
    task = sinusoid.sample(1, random_state=1)[0]
    models["reg"].adapt(task.X_support, task.y_support)
    models["clf"].adapt(X[:12], np.array(["a", "b", "c"] * 4))
    inputs = {"reg": task.X_query, "clf": X[12:40]}
    for name, model in models.items():
        with open(tmp_path / f"{name}.pkl", "wb") as f:
            pickle.dump(model, f)
        np.save(tmp_path / f"{name}_X.npy", inputs[name])
    code = (
        "import pickle, sys, numpy as np\n"
        "d = sys.argv[1]\n"
        "for name in ('reg', 'clf'):\n"
        "    m = pickle.load(open(f'{d}/{name}.pkl', 'rb'))\n"
        "    np.save(f'{d}/{name}_pred.npy', m.predict(np.load(f'{d}/{name}_X.npy')))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)
    for name, model in models.items():
        fresh = np.load(tmp_path / f"{name}_pred.npy", allow_pickle=False)
        np.testing.assert_array_equal(fresh, model.predict(inputs[name]))


class InterruptingTasks:
    """Task distribution that raises KeyboardInterrupt on its n-th sample, as Ctrl-C would."""

    def __init__(self, base, interrupt_at):
        self.base, self.interrupt_at, self.calls = base, interrupt_at, 0

    def sample(self, n_tasks, random_state=None):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.base.sample(n_tasks, random_state)


def test_keyboard_interrupt_keeps_what_was_learned(sinusoid):
    est = quick(MAMLRegressor, max_iter=100)
    with pytest.warns(UserWarning, match="interrupted after 6 of 100"):
        est.meta_fit(InterruptingTasks(sinusoid, interrupt_at=7))
    assert est.meta_interrupted_ and est.n_iter_ == 6
    assert len(est.meta_history_["meta_loss"]) == 6
    reference = quick(MAMLRegressor, max_iter=6).meta_fit(sinusoid)
    assert same_params(est.meta_params_, reference.meta_params_)  # the 6 updates are kept
    task = sinusoid.sample(1, random_state=3)[0]
    assert est.adapt(task.X_support, task.y_support).predict(task.X_query).shape == (10,)
    # warm start continues from there
    est.set_params(warm_start=True, max_iter=4).meta_fit(sinusoid)
    assert est.n_iter_ == 10 and not est.meta_interrupted_
    assert len(est.meta_history_["meta_loss"]) == 10


def test_interrupt_before_the_first_update_leaves_the_estimator_as_it_was(sinusoid):
    est = quick(MAMLRegressor).meta_fit(sinusoid)
    before = {k: v.clone() for k, v in est.meta_params_.items()}
    with pytest.raises(KeyboardInterrupt):
        est.meta_fit(InterruptingTasks(sinusoid, interrupt_at=1))
    assert same_params(est.meta_params_, before) and est.n_iter_ == 20


def test_verbose_shows_progress_with_the_meta_loss(sinusoid, capsys):
    quick(MAMLRegressor, verbose=1).meta_fit(sinusoid)
    err = capsys.readouterr().err
    assert "meta_loss=" in err and "20/20" in err


@pytest.mark.parametrize(
    "params, match",
    [
        ({"inner_lr": -1.0}, "inner_lr"),
        ({"inner_steps": 0}, "inner_steps"),
        ({"meta_batch_size": 0}, "meta_batch_size"),
        ({"strategy": "fast"}, "strategy"),
        ({"hidden_layer_sizes": (10, -2)}, "hidden_layer_sizes"),
        ({"meta_lr": 0}, "meta_lr"),
        ({"device": "tpu"}, "device"),
        ({"adapt_steps": 1.5}, "adapt_steps"),
    ],
)
def test_bad_parameters_name_the_parameter_and_change_nothing(params, match, sinusoid):
    est = quick(MAMLRegressor).meta_fit(sinusoid)
    task = sinusoid.sample(1, random_state=0)[0]
    est.adapt(task.X_support, task.y_support)
    before = snapshot(est, ignore=params)
    est.set_params(**params)
    with pytest.raises((ValueError, TypeError), match=match):
        est.meta_fit(sinusoid)
    with pytest.raises((ValueError, TypeError), match=match):
        est.adapt(task.X_support, task.y_support)
    assert_unchanged(est, before, ignore=params)


def test_missing_cuda_is_a_clear_error(sinusoid):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        quick(MAMLRegressor, device="cuda").meta_fit(sinusoid)


def test_bad_data_is_a_clear_error_and_changes_nothing(sinusoid):
    est = quick(MAMLRegressor).meta_fit(sinusoid)
    task = sinusoid.sample(1, random_state=0)[0]
    est.adapt(task.X_support, task.y_support)
    before = snapshot(est)
    X_nan = task.X_support.copy()
    X_nan[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.adapt(X_nan, task.y_support)
    with pytest.raises(ValueError, match="y"):
        est.adapt(task.X_support, np.full(10, np.inf))
    with pytest.raises(ValueError, match="different numbers of samples"):
        est.adapt(task.X_support, task.y_support[:-1])
    with pytest.raises(ValueError, match="expecting 1 features"):
        est.adapt(np.zeros((10, 3)), task.y_support)
    with pytest.raises(ValueError, match="outputs"):
        est.adapt(task.X_support, np.zeros((10, 2)))
    with pytest.raises(TypeError, match="task distribution"):
        est.meta_fit([1, 2, 3])
    with pytest.raises(TypeError, match="sample"):
        est.meta_fit("sinusoid")
    assert_unchanged(est, before)


class BadTasks:
    def __init__(self, kind):
        self.kind = kind

    def sample(self, n_tasks, random_state=None):
        batch = SinusoidTasks().sample(n_tasks, random_state)
        if self.kind == "nan":
            batch.y_query[0, 0] = np.nan
        elif self.kind == "shape":
            return TaskBatch(batch.X_support[:, :, 0], batch.y_support, batch.X_query, batch.y_query)
        elif self.kind == "type":
            return list(batch)
        return batch


@pytest.mark.parametrize("kind, error, match", [
    ("nan", ValueError, "y_query.*NaN"),
    ("shape", ValueError, "X_support"),
    ("type", TypeError, "TaskBatch"),
])
def test_bad_task_distributions(kind, error, match):
    with pytest.raises(error, match=match):
        quick(MAMLRegressor).meta_fit(BadTasks(kind))


def test_classifier_rejects_regression_tasks_and_bad_labels(sinusoid, digit_tasks):
    with pytest.raises(ValueError, match="integer labels"):
        quick(MAMLClassifier).meta_fit(sinusoid)
    clf = quick(MAMLClassifier).meta_fit(digit_tasks)
    with pytest.raises(ValueError, match="Unknown label type|continuous"):
        clf.adapt(np.zeros((4, 64)), np.array([0.5, 1.5, 2.5, 0.1]))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_and_pickles_hold_cpu_tensors(sinusoid):
    cpu = quick(MAMLRegressor).meta_fit(sinusoid)
    gpu = quick(MAMLRegressor, device="cuda").meta_fit(sinusoid)
    for k in cpu.meta_params_:
        assert gpu.meta_params_[k].device.type == "cpu"
        torch.testing.assert_close(gpu.meta_params_[k], cpu.meta_params_[k], rtol=1e-3, atol=1e-4)
    task = sinusoid.sample(1, random_state=0)[0]
    gpu.adapt(task.X_support, task.y_support)
    loaded = pickle.loads(pickle.dumps(gpu))
    assert all(v.device.type == "cpu" for v in loaded.adapted_params_.values())
    loaded.set_params(device="cpu")
    np.testing.assert_allclose(loaded.predict(task.X_query), gpu.predict(task.X_query), rtol=1e-4, atol=1e-5)


def test_to_module_gives_the_network_predict_uses(sinusoid):
    est = quick(MAMLRegressor).meta_fit(sinusoid)
    with pytest.raises(NotFittedError, match="adapt"):
        est.to_module()
    task = sinusoid.sample(1, random_state=2)[0]
    est.adapt(task.X_support, task.y_support)
    net = est.to_module()
    assert isinstance(net, nn.Module) and not net.training
    X = torch.as_tensor(task.X_query, dtype=torch.float32)
    with torch.no_grad():
        np.testing.assert_allclose(net(X).numpy().ravel(), est.predict(task.X_query),
                                   rtol=1e-5, atol=1e-6)
        initial = est.to_module(adapted=False)(X)
    assert not torch.allclose(initial, net(X))
    # a copy: training it leaves the estimator alone
    before = {k: v.clone() for k, v in est.adapted_params_.items()}
    next(net.parameters()).data.add_(1.0)
    assert same_params(before, est.adapted_params_)


def test_to_module_of_a_batchnorm_network_normalises_with_the_support_set(digit_tasks):
    module = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    est = MAMLClassifier(module=module, max_iter=5, device="cpu", random_state=0,
                         meta_batch_size=4).meta_fit(digit_tasks)
    task = digit_tasks.sample(1, random_state=3)[0]
    est.adapt(task.X_support, task.y_support)
    net = est.to_module()
    X = torch.as_tensor(task.X_query, dtype=torch.float32)
    with torch.no_grad():
        logits = net(X)
        one_by_one = torch.cat([net(X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(logits.numpy(), est.decision_function(task.X_query), rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(one_by_one, logits)
    assert est.classes_[logits.argmax(1).numpy()].tolist() == est.predict(task.X_query).tolist()
    restored = pickle.loads(pickle.dumps(net))
    torch.testing.assert_close(restored(X), logits)


class TwoLayer(nn.Module):
    def __init__(self, n_in=1, hidden=8, n_out=1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x):
        return self.net(x)


def test_module_as_a_class_with_module_parameters(sinusoid, tmp_path):
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    from sklmeta.persistence import load, save

    est = MAMLRegressor(module=TwoLayer, module__hidden=12, max_iter=3, device="cpu",
                        random_state=0)
    assert est.get_params()["module__hidden"] == 12
    assert "module__hidden=12" in repr(est)
    assert clone(est).module__hidden == 12
    est.meta_fit(sinusoid)
    assert est.meta_params_["net.0.weight"].shape == (12, 1)
    est.set_params(module__hidden=5, warm_start=False).meta_fit(sinusoid)
    assert est.meta_params_["net.0.weight"].shape == (5, 1)
    save(est, tmp_path / "m.pt")
    assert load(tmp_path / "m.pt", module=TwoLayer).meta_params_["net.0.weight"].shape == (5, 1)
    search = GridSearchCV(MAMLRegressor(module=TwoLayer, max_iter=3, device="cpu",
                                        random_state=0),
                          {"module__hidden": [4, 6]}, cv=2).fit(sinusoid.sample(6, random_state=0))
    assert search.best_estimator_.meta_params_["net.0.weight"].shape[0] in (4, 6)
    with pytest.raises(ValueError, match="need module to be a class"):
        MAMLRegressor(module=TwoLayer(), module__hidden=3, device="cpu").meta_fit(sinusoid)
    with pytest.raises(ValueError, match="could not be built"):
        MAMLRegressor(module=TwoLayer, module__width=3, device="cpu").meta_fit(sinusoid)
    with pytest.raises(TypeError, match="unexpected keyword argument 'hiden'"):
        MAMLRegressor(hiden=3)
