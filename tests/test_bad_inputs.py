"""Bad inputs and faults from a user's side: each is a clear error (type, and a message
naming the argument or file), a warning, or correct behaviour, and a failed call leaves
the estimator as it was."""

import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler
from torch import nn

from sklmeta import MAMLClassifier, MAMLRegressor, ReptileRegressor
from sklmeta.persistence import load, save
from sklmeta.tasks import EpisodicTasks, GroupedTasks, SinusoidTasks, TaskBatch

from test_estimators import InterruptingTasks, assert_unchanged, quick, snapshot


@pytest.fixture(scope="module")
def sinusoid():
    return SinusoidTasks(k_support=10, k_query=10)


@pytest.fixture
def adapted(sinusoid):
    est = quick(MAMLRegressor).meta_fit(sinusoid)
    task = sinusoid.sample(1, random_state=0)[0]
    return est.adapt(task.X_support, task.y_support), task


def _no_warnings():
    return warnings.catch_warnings(action="error")


# ------------------------------------------------------------------ scale and divergence


def _unscaled_panel():
    """40 groups, features in [0, 100], targets around 1e4-1e5 (an issue's report)."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 30)
    X = rng.uniform(0, 100, size=(1200, 3))
    y = (X * 50 * rng.normal(size=(40, 3))[groups]).sum(1) + rng.uniform(1e4, 1e5, 40)[groups]
    return X, y, groups


def test_unscaled_data_gets_a_warning_and_the_documented_scaling_works():
    X, y, groups = _unscaled_panel()
    train = groups < 30
    unscaled = MAMLRegressor(max_iter=100, device="cpu", random_state=0)
    with pytest.warns(UserWarning, match="targets are of order 4.*Standardise"):
        unscaled.meta_fit(GroupedTasks(X[train], y[train], groups[train]))
    # docs/sklearn.md, "Scaling": statistics of the pooled meta-training data
    x_scaler = StandardScaler().fit(X[train])
    y_mean, y_std = y[train].mean(), y[train].std()
    tasks = GroupedTasks(x_scaler.transform(X[train]), (y[train] - y_mean) / y_std, groups[train])
    maml = MAMLRegressor(inner_lr=0.1, max_iter=100, device="cpu", random_state=0)
    with _no_warnings():
        maml.meta_fit(tasks)
    truth, scaled, raw = [], [], []
    for g in range(30, 40):
        rows = np.flatnonzero(groups == g)
        s, q = rows[:10], rows[10:]
        maml.adapt(x_scaler.transform(X[s]), (y[s] - y_mean) / y_std)
        scaled.append(maml.predict(x_scaler.transform(X[q])) * y_std + y_mean)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw.append(unscaled.adapt(X[s], y[s]).predict(X[q]))
        truth.append(y[q])
    truth, scaled, raw = map(np.concatenate, (truth, scaled, raw))
    assert r2_score(truth, scaled) > 0.9
    assert r2_score(truth, raw) < 0  # unscaled: worse than predicting the mean


@pytest.mark.parametrize("cls, params", [
    (MAMLRegressor, {"meta_lr": 1e6, "inner_lr": 5.0}),
    (ReptileRegressor, {"meta_step_size": 30.0, "inner_lr": 0.5}),
])
def test_meta_fit_divergence_stops_and_keeps_the_last_finite_initialisation(cls, params, sinusoid):
    est = quick(cls, max_iter=50, **params)
    step = "meta_lr=1000000.0" if "meta_lr" in params else "meta_step_size=30.0"
    with pytest.warns(RuntimeWarning, match=f"diverged at iteration.*{step}"):
        est.meta_fit(sinusoid)
    assert 0 < est.n_iter_ < 50
    assert all(torch.isfinite(v).all() for v in est.meta_params_.values())
    assert np.isfinite(est.meta_history_["meta_loss"]).all()
    # the kept initialisation is the one of iteration n_iter_: a run stopped there
    reference = quick(cls, max_iter=est.n_iter_, **params).meta_fit(sinusoid)
    for k, v in reference.meta_params_.items():
        torch.testing.assert_close(est.meta_params_[k], v)


def test_divergence_at_the_first_iteration_is_an_error_and_changes_nothing(sinusoid):
    est = quick(MAMLRegressor).meta_fit(sinusoid)
    before = snapshot(est, ignore=("inner_lr", "warm_start"))
    est.set_params(inner_lr=1e30, warm_start=True)
    # iterations are counted over all calls: the first of this call is n_iter_ + 1
    with pytest.raises(ValueError,
                       match=f"diverged at iteration {est.n_iter_ + 1}.*inner_lr=1e\\+30"):
        est.meta_fit(sinusoid)
    assert_unchanged(est, before, ignore=("inner_lr", "warm_start"))


def test_adaptation_divergence_warns_at_adapt_and_predict(adapted):
    est, task = adapted
    est.set_params(inner_lr=1e12, adapt_steps=5)
    with pytest.warns(RuntimeWarning, match="Adaptation diverged.*inner_lr=1000000000000"):
        est.adapt(task.X_support, task.y_support)
    with pytest.warns(RuntimeWarning, match="outputs contain NaN or infinity"):
        est.predict(task.X_query)


def test_values_beyond_float32_are_refused(adapted, sinusoid):
    est, task = adapted
    before = snapshot(est)
    big = np.full((10, 1), 1e39)
    with pytest.raises(ValueError, match="X has values beyond float32"):
        est.adapt(big, task.y_support)
    with pytest.raises(ValueError, match="y has values beyond float32"):
        est.adapt(task.X_support, np.full(10, -1e39))
    batch = sinusoid.sample(4, random_state=0)
    huge = TaskBatch(batch.X_support.astype(np.float64) * 1e38, batch.y_support, batch.X_query,
                     batch.y_query)
    with pytest.raises(ValueError, match="tasks' X_support has values beyond float32"):
        est.meta_fit(huge)
    assert_unchanged(est, before)


# ------------------------------------------------------------------ custom modules


def _digit_tasks(n_way=3):
    X, y = load_digits(return_X_y=True)
    return EpisodicTasks(X / 16, y, n_way=n_way, k_shot=2, k_query=2)


@pytest.mark.parametrize("module, tasks, match", [
    (nn.Linear(3, 1), "sinusoid", "module cannot take the tasks' inputs.*shape \\(1,\\)"),
    (nn.Linear(1, 2), "sinusoid", "module must output .* shape \\(n_examples, 1\\).*\\(2, 2\\)"),
    (nn.Sequential(nn.Linear(1, 4), nn.Flatten(0)), "sinusoid", "gave shape \\(8,\\)"),
    (nn.Linear(64, 2), "digits", "exactly 3 columns for 3 classes.*\\(2, 2\\)"),
    (nn.Linear(64, 4), "digits", "exactly 3 columns"),
])
def test_a_custom_module_is_checked_against_the_tasks(module, tasks, match, sinusoid):
    cls = MAMLRegressor if tasks == "sinusoid" else MAMLClassifier
    tasks = sinusoid if tasks == "sinusoid" else _digit_tasks()
    est = cls(module, max_iter=2, device="cpu")
    with pytest.raises(ValueError, match=match):
        est.meta_fit(tasks)
    assert not hasattr(est, "meta_params_")


def test_a_custom_module_is_checked_at_adapt_without_meta_fit():
    X, y = np.random.default_rng(0).normal(size=(12, 3)), np.arange(12) % 3
    with pytest.raises(ValueError, match="at least 3 columns"):
        MAMLClassifier(nn.Linear(3, 2), device="cpu").fit(X, y)
    assert MAMLClassifier(nn.Linear(3, 5), device="cpu").fit(X, y).predict_proba(X).shape == (12, 3)
    with pytest.raises(ValueError, match="module cannot take"):
        MAMLRegressor(nn.Linear(4, 1), device="cpu").fit(X, y.astype(float))
    with pytest.raises(ValueError, match="module must output"):
        MAMLRegressor(nn.Linear(3, 1), device="cpu").fit(X, np.ones((12, 2)))


def test_frozen_parameters_are_neither_meta_learned_nor_adapted(sinusoid):
    module = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1))
    module[0].requires_grad_(False)
    frozen = {k: v.clone() for k, v in module[0].state_dict().items()}
    est = MAMLRegressor(module, max_iter=20, device="cpu", random_state=0).meta_fit(sinusoid)
    assert set(est.meta_params_) == {"2.weight", "2.bias"}
    torch.testing.assert_close(est.buffers_["0.weight"], frozen["weight"], rtol=0, atol=0)
    task = sinusoid.sample(1, random_state=0)[0]
    est.adapt(task.X_support, task.y_support)
    assert set(est.adapted_params_) == {"2.weight", "2.bias"}
    # the prediction uses the frozen layer: by hand
    h = torch.relu(torch.as_tensor(task.X_query).double() @ frozen["weight"].double().T
                   + frozen["bias"].double())
    p = {k: v.double() for k, v in est.adapted_params_.items()}
    expected = (h @ p["2.weight"].T + p["2.bias"])[:, 0].numpy()
    np.testing.assert_allclose(est.predict(task.X_query.astype(np.float64)), expected, rtol=1e-10)
    module.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameters to meta-learn.*requires_grad=False"):
        MAMLRegressor(module, max_iter=2, device="cpu").meta_fit(sinusoid)


# ------------------------------------------------------------------ every batch is checked


class LaterBatches:
    """A distribution whose second meta-batch is bad in one way."""

    def __init__(self, kind):
        self.kind, self.calls, self.base, self.n_way = kind, 0, _digit_tasks(), 3

    def sample(self, n_tasks, random_state=None):
        self.calls += 1
        batch = self.base.sample(n_tasks, random_state)
        if self.calls < 2:
            return batch
        if self.kind == "label":
            batch.y_query[0, 0] = 3
        elif self.kind == "float":
            return TaskBatch(batch.X_support, batch.y_support + 0.5, batch.X_query, batch.y_query)
        elif self.kind == "empty":
            return batch[:0]
        return batch


@pytest.mark.parametrize("kind, match", [
    ("label", "labels from 0 to 3"),
    ("float", "integer labels.*float64"),
    ("empty", "no tasks"),
])
def test_every_meta_batch_is_checked(kind, match):
    est = MAMLClassifier(max_iter=3, meta_batch_size=2, device="cpu", random_state=0)
    with pytest.raises(ValueError, match=match):
        est.meta_fit(LaterBatches(kind))
    assert not hasattr(est, "meta_params_")


# ------------------------------------------------------------------ warm start


def test_warm_start_refuses_a_changed_network(sinusoid):
    est = quick(MAMLRegressor).meta_fit(sinusoid)
    before = snapshot(est, ignore=("hidden_layer_sizes", "warm_start"))
    est.set_params(hidden_layer_sizes=(8,), warm_start=True)
    with pytest.raises(ValueError, match="network changed since the last meta_fit"):
        est.meta_fit(sinusoid)
    assert_unchanged(est, before, ignore=("hidden_layer_sizes", "warm_start"))
    est.set_params(hidden_layer_sizes=(16, 16))
    assert est.meta_fit(sinusoid).n_iter_ == 40


def test_ctrl_c_in_the_first_warm_started_update_keeps_the_adaptation(adapted, sinusoid,
                                                                     monkeypatch):
    from sklmeta import _engine

    est, task = adapted
    before = snapshot(est, ignore=("warm_start",))
    est.set_params(warm_start=True)

    def interrupted(*args, **kwargs):  # Ctrl-C while the first meta-gradient is computed
        raise KeyboardInterrupt

    monkeypatch.setattr(_engine, "meta_gradient", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.meta_fit(sinusoid)
    assert_unchanged(est, before, ignore=("warm_start",))
    assert est.predict(task.X_query).shape == (10,)


def test_the_interrupt_message_says_how_to_run_the_remainder(sinusoid):
    est = quick(MAMLRegressor, max_iter=30)
    with pytest.warns(UserWarning, match="warm_start=True, max_iter=25"):
        est.meta_fit(InterruptingTasks(sinusoid, interrupt_at=6))
    est.set_params(warm_start=True, max_iter=25).meta_fit(sinusoid)
    assert est.n_iter_ == 30


# ------------------------------------------------------------------ persistence


def test_save_refuses_what_load_could_not_read(adapted, tmp_path):
    est, _ = adapted
    est.set_params(hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="hidden_layer_sizes was changed after fitting"):
        save(est, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left
    with pytest.raises(FileNotFoundError, match="folder .*missing.* does not exist"):
        save(est.set_params(hidden_layer_sizes=(16, 16)), tmp_path / "missing" / "m.pt")


def test_save_warns_that_a_random_generator_is_not_kept(tmp_path):
    est = MAMLRegressor(random_state=np.random.RandomState(0))
    with pytest.warns(UserWarning, match="random_state=RandomState.*saved as None"):
        save(est, tmp_path / "m.pt")
    assert load(tmp_path / "m.pt").random_state is None


@pytest.fixture
def saved(adapted, tmp_path):
    est, task = adapted
    save(est, tmp_path / "m.pt")
    return tmp_path / "m.pt", est, task


def test_damaged_files_are_refused_naming_the_file(saved, tmp_path):
    path, _, _ = saved
    data = path.read_bytes()
    cases = {"truncated.pt": data[: len(data) // 2], "random.pt": bytes(range(256)) * 40,
             "empty.pt": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}.*(refused|not a readable)"):
            load(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load(tmp_path / "nowhere.pt")


def _tensor_record_offset(path):
    """Offset in the file of the first tensor's bytes (torch.save's zip layout)."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename)
    raw = path.read_bytes()
    name_len = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    return info.header_offset + 30 + name_len + extra_len


def test_corrupted_weights_are_caught_by_the_checksum(saved, tmp_path):
    path, est, task = saved
    data = bytearray(path.read_bytes())
    start = _tensor_record_offset(path)
    data[start : start + 8] = bytes(8 * [0x7F])
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    # torch alone loads it, with other numbers
    tensors = [_all_tensors(torch.load(p, weights_only=True)) for p in (path, damaged)]
    assert any(not torch.equal(a, b) for a, b in zip(*tensors, strict=True))
    with pytest.raises(ValueError, match="damaged.pt.*corrupted.*checksum"):
        load(damaged)
    np.testing.assert_array_equal(load(path).predict(task.X_query), est.predict(task.X_query))


def _all_tensors(obj):
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for key in sorted(obj, key=repr) for t in _all_tensors(obj[key])]
    return []


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_crafted_pickle_is_refused_without_advice_to_run_it(tmp_path):
    marker = tmp_path / "was_run"
    torch.save({"format": "sklmeta-safe-2", "evil": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt.*was refused.*Nothing from it was run") as info:
        load(tmp_path / "evil.pt")
    assert "weights_only=False" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert not marker.exists()


def test_load_takes_only_known_state_and_checks_adapted_shapes(saved, tmp_path):
    from sklmeta import persistence

    path, est, _ = saved
    payload = torch.load(path, weights_only=True)
    payload.pop("sha256")
    payload["state"]["predict"] = {"x": torch.zeros(1)}  # would shadow a method
    payload["sha256"] = persistence._digest(payload)
    torch.save(payload, tmp_path / "extra.pt")
    loaded = load(tmp_path / "extra.pt")
    assert "predict" not in vars(loaded) and callable(loaded.predict)

    payload = torch.load(path, weights_only=True)
    payload.pop("sha256")
    payload["state"]["adapted_params_"]["0.weight"] = torch.zeros(3, 1)
    payload["sha256"] = persistence._digest(payload)
    torch.save(payload, tmp_path / "shapes.pt")
    with pytest.raises(ValueError, match="shapes.pt.*adapted_params_ do not match"):
        load(tmp_path / "shapes.pt")


def test_a_model_saved_for_cuda_falls_back_to_the_cpu(adapted, tmp_path, monkeypatch):
    est, task = adapted
    expected = est.predict(task.X_query)
    est.device = "cuda"  # as if fitted on a GPU machine (fitted tensors are CPU tensors)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for restore in (lambda: pickle.loads(pickle.dumps(est)),
                    lambda: (save(est, tmp_path / "gpu.pt"), load(tmp_path / "gpu.pt"))[1]):
        with pytest.warns(UserWarning, match="device='cuda'.*set to device='cpu'"):
            loaded = restore()
        assert loaded.device == "cpu"
        np.testing.assert_array_equal(loaded.predict(task.X_query), expected)


# ------------------------------------------------------------------ messages


def test_adapt_without_y_says_y_is_required(adapted):
    est, task = adapted
    for call in (est.adapt, est.fit):
        with pytest.raises(ValueError, match="requires y|y is required"):
            call(task.X_support, None)


def test_grouped_tasks_keep_integer_labels_for_classifiers():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    groups = np.repeat(np.arange(10), 20)
    y = (X[:, 0] > 0).astype(int)
    tasks = GroupedTasks(X, y, groups, k_support=6, k_query=6)
    assert tasks.sample(2, random_state=0).y_support.dtype.kind == "i"
    clf = MAMLClassifier(max_iter=3, meta_batch_size=2, device="cpu", random_state=0)
    assert clf.meta_fit(tasks).n_way_ == 2
    with pytest.warns(UserWarning, match="1 of 11 groups .*smallest group: 3 rows.*Lower k_support"):
        GroupedTasks(np.vstack([X, X[:3]]), np.concatenate([y, y[:3]]),
                     np.concatenate([groups, [99, 99, 99]]), k_support=6, k_query=6)


def test_ctrl_c_inside_an_update_keeps_exactly_the_finished_iterations(sinusoid, monkeypatch):
    calls = {"n": 0}
    step = torch.optim.Adam.step

    def interrupted_step(self, *args, **kwargs):
        calls["n"] += 1
        result = step(self, *args, **kwargs)  # the parameters have moved...
        if calls["n"] == 5:
            raise KeyboardInterrupt  # ...when Ctrl-C lands
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", interrupted_step)
    est = quick(MAMLRegressor, max_iter=20)
    with pytest.warns(UserWarning, match="interrupted after 4 of 20"):
        est.meta_fit(sinusoid)
    monkeypatch.setattr(torch.optim.Adam, "step", step)
    reference = quick(MAMLRegressor, max_iter=4).meta_fit(sinusoid)
    assert est.n_iter_ == 4 and len(est.meta_history_["meta_loss"]) == 4
    for k, v in reference.meta_params_.items():
        assert torch.equal(est.meta_params_[k], v)


def test_negative_labels_in_the_first_batch_are_named():
    X, y = load_digits(return_X_y=True)

    class Negative:
        n_way = 3

        def sample(self, n_tasks, random_state=None):
            batch = EpisodicTasks(X, y, n_way=3, k_shot=2, k_query=2).sample(n_tasks, random_state)
            batch.y_query[0, 0] = -1
            return batch

    with pytest.raises(ValueError, match="first meta-batch has labels from -1 to 2"):
        MAMLClassifier(max_iter=2, device="cpu").meta_fit(Negative())


def test_an_unfitted_copy_keeps_its_device(monkeypatch):
    import copy

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    est = MAMLRegressor(device="cuda")
    with _no_warnings():
        assert copy.deepcopy(est).device == "cuda"
        assert pickle.loads(pickle.dumps(est)).device == "cuda"


def test_saved_files_follow_the_umask_and_refuse_unknown_parameters(saved, tmp_path):
    import os

    from sklmeta import persistence

    path, est, task = saved
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert (path.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777)
    payload = torch.load(path, weights_only=True)
    payload.pop("sha256")
    payload["params"]["learning_speed"] = 3
    payload["sha256"] = persistence._digest(payload)
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="future.pt has parameters \\['learning_speed'\\]"):
        load(tmp_path / "future.pt")
    # files of sklmeta 0.1 (no checksum) were meta-trained transductively
    payload = torch.load(path, weights_only=True)
    payload.pop("sha256")
    payload["format"] = "sklmeta-safe-1"
    del payload["params"]["batch_norm_stats"]
    torch.save(payload, tmp_path / "old.pt")
    assert load(tmp_path / "old.pt").batch_norm_stats == "transductive"
    assert os.path.exists(path)
