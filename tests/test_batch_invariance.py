"""Predictions you can trust: a row's prediction does not depend on the rows predicted
with it, outputs come in the precision they are computed in, and pandas input is data."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_methods_subset_invariance
from torch import nn

from sklmeta import MAMLClassifier, MAMLRegressor, ReptileRegressor
from sklmeta.networks import BatchNorm1d, BatchNorm2d
from sklmeta.tasks import EpisodicTasks, SinusoidTasks


@pytest.fixture(scope="module")
def adapted_regressor():
    tasks = SinusoidTasks(k_support=10, k_query=10)
    est = MAMLRegressor(max_iter=20, device="cpu", random_state=0).meta_fit(tasks)
    task = tasks.sample(1, random_state=1)[0]
    return est.adapt(task.X_support, task.y_support)


def test_outputs_come_in_the_precision_of_the_input(adapted_regressor):
    X = np.linspace(-5, 5, 50).reshape(-1, 1)
    assert adapted_regressor.predict(X).dtype == np.float64
    assert adapted_regressor.predict(X.astype(np.float32)).dtype == np.float32
    # the same function: float64 only computes the float32 weights more precisely
    np.testing.assert_allclose(adapted_regressor.predict(X),
                               adapted_regressor.predict(X.astype(np.float32)), rtol=1e-5,
                               atol=1e-5)
    rng = np.random.default_rng(0)
    clf = MAMLClassifier(device="cpu", random_state=0).fit(rng.normal(size=(12, 3)),
                                                           np.arange(12) % 3)
    Z = rng.normal(size=(7, 3))
    for method in (clf.predict_proba, clf.decision_function):
        assert method(Z).dtype == np.float64
        assert method(Z.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(clf.predict_proba(Z.astype(np.float32)).sum(1), 1, rtol=1e-6)


def test_a_float64_row_is_predicted_the_same_alone_or_in_any_batch(adapted_regressor):
    X = np.random.default_rng(0).uniform(-5, 5, size=(257, 1))
    full = adapted_regressor.predict(X)
    alone = np.array([adapted_regressor.predict(X[i : i + 1])[0] for i in range(len(X))])
    chunks = np.concatenate([adapted_regressor.predict(X[i : i + 10]) for i in range(0, 257, 10)])
    # float64 kernels: agreement to float64 rounding, far inside scikit-learn's rtol=1e-7
    np.testing.assert_allclose(alone, full, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(chunks, full, rtol=1e-12, atol=1e-12)


def _bn_mlp(n_outputs):
    return nn.Sequential(nn.Linear(3, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, n_outputs))


class _RowConvNet(nn.Module):
    """An image-style network (convolution, BatchNorm2d) on rows of 3 features."""

    def __init__(self, n_outputs):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=(1, 3), padding=(0, 1))
        self.norm = BatchNorm2d(4)
        self.head = nn.Linear(12, n_outputs)

    def forward(self, x):
        h = self.conv(x.reshape(len(x), 1, 1, 3))
        return self.head(torch.relu(self.norm(h)).flatten(1))


@pytest.mark.parametrize("make", [_bn_mlp, _RowConvNet], ids=["BatchNorm1d", "BatchNorm2d"])
@pytest.mark.parametrize("cls, n_outputs", [(MAMLRegressor, 1), (MAMLClassifier, 3)])
def test_batchnorm_networks_pass_scikit_learns_subset_invariance_check(cls, n_outputs, make):
    est = cls(make(n_outputs), adapt_steps=5, device="cpu", random_state=0)
    check_methods_subset_invariance(cls.__name__, est)
    # the reference MAML convention normalises each predicted batch with its own
    # statistics: the check catches it, so it would catch a regression of the default
    with pytest.raises(AssertionError, match="not invariant"):
        check_methods_subset_invariance(cls.__name__, est.set_params(batch_norm_stats="transductive"))


def test_support_statistics_normalise_the_predictions():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    est = MAMLRegressor(_bn_mlp(1), adapt_steps=3, device="cpu", random_state=0).fit(X, y)
    assert isinstance(est.module_[1], BatchNorm1d)
    torch.testing.assert_close(est.support_inputs_, torch.as_tensor(X))
    # by hand: normalise the hidden layer of new rows with the support set's statistics
    p = {k: v.double() for k, v in est.adapted_params_.items()}
    Z = torch.as_tensor(rng.normal(size=(5, 3)))

    def hidden(x):
        return x @ p["0.weight"].T + p["0.bias"]

    h_support = hidden(torch.as_tensor(X))
    mean, var = h_support.mean(0), h_support.var(0, unbiased=False)
    h = (hidden(Z) - mean) / torch.sqrt(var + 1e-5) * p["1.weight"] + p["1.bias"]
    expected = torch.relu(h) @ p["3.weight"].T + p["3.bias"]
    np.testing.assert_allclose(est.predict(Z.numpy()), expected[:, 0].numpy(), rtol=1e-10)
    # a new adapt replaces the support set
    est.fit(X[:10], y[:10])
    assert est.support_inputs_.shape == (10, 3)


def test_batchnorm_without_affine_parameters_and_3d():
    from sklmeta.networks import BatchNorm3d

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    module = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8, affine=False), nn.ReLU(),
                           nn.Linear(8, 1))
    est = MAMLRegressor(module, adapt_steps=2, device="cpu", random_state=0).fit(X, y)
    assert set(est.adapted_params_) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    Z = rng.normal(size=(9, 3))
    alone = np.array([est.predict(Z[i : i + 1])[0] for i in range(9)])
    np.testing.assert_allclose(alone, est.predict(Z), rtol=1e-12)

    class Volumes(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(1, 2, 3, padding=1)
            self.norm = nn.BatchNorm3d(2)
            self.head = nn.Linear(2 * 27, 2)

        def forward(self, x):
            return self.head(torch.relu(self.norm(self.conv(x))).flatten(1))

    V = rng.normal(size=(12, 1, 3, 3, 3))
    clf = MAMLClassifier(Volumes(), device="cpu", random_state=0).fit(V, np.arange(12) % 2)
    assert isinstance(clf.module_.norm, BatchNorm3d)
    alone = np.concatenate([clf.predict_proba(V[i : i + 1]) for i in range(12)])
    np.testing.assert_allclose(alone, clf.predict_proba(V), rtol=1e-10)


def test_a_single_example_support_set_with_batchnorm1d_warns():
    rng = np.random.default_rng(0)
    est = MAMLRegressor(_bn_mlp(1), device="cpu", random_state=0)
    with pytest.warns(UserWarning, match="one example.*zero variance"):
        est.fit(rng.normal(size=(1, 3)), [1.0])
    with warnings.catch_warnings(action="error"):
        est.fit(rng.normal(size=(2, 3)), [1.0, 2.0])
        est.set_params(batch_norm_stats="transductive").fit(rng.normal(size=(1, 3)), [1.0])


def test_reference_rows_are_per_thread():
    import threading

    from sklmeta.networks import reference_rows

    bn = BatchNorm1d(4).double()
    x = torch.randn(50, 4, dtype=torch.float64) * 3 + 1
    seen = {}

    def other_thread():
        seen["out"] = bn(x)  # no reference rows here: its own batch's statistics

    with reference_rows(1):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    torch.testing.assert_close(seen["out"].mean(0), torch.zeros(4, dtype=torch.float64),
                               atol=1e-6, rtol=0)


def test_networks_without_batchnorm_keep_no_support_set(adapted_regressor):
    assert adapted_regressor.support_inputs_ is None


# ------------------------------------------------------------------ pandas input is data


def test_pandas_dataframes_are_data_not_task_distributions():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    y = pd.Series(X.to_numpy() @ np.array([1.0, -2.0, 0.5]))
    est = ReptileRegressor(inner_lr=0.05, adapt_steps=20, device="cpu", random_state=0)
    assert est.fit(X, y) is est and est.n_features_in_ == 3
    assert est.predict(X).shape == (40,)
    assert est.score(X, y) > 0.5
    scores = cross_val_score(est, X, y, cv=4)
    assert np.all(np.isfinite(scores))
    pipe = make_pipeline(StandardScaler(), est).set_output(transform="pandas")
    assert pipe.fit(X, y).predict(X).shape == (40,)
    with pytest.raises(TypeError, match="DataFrame.*adapt\\(X, y\\)"):
        MAMLRegressor(device="cpu").meta_fit(X)
    clf = MAMLClassifier(device="cpu", random_state=0).fit(X, pd.Series(np.arange(40) % 2))
    assert list(clf.classes_) == [0, 1]


def test_episodic_tasks_from_pandas():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 4)))
    y = pd.Series(np.repeat(np.arange(6), 10))
    tasks = EpisodicTasks(X, y, n_way=3, k_shot=2, k_query=2)
    clf = MAMLClassifier(max_iter=2, meta_batch_size=2, device="cpu", random_state=0)
    assert clf.meta_fit(tasks).n_way_ == 3
