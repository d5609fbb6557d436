"""Searches on a cluster (issue 11, item 5): ``GridSearchCV(..., n_jobs=-1)`` under
``joblib.parallel_backend("dask")`` on a real ``distributed.LocalCluster`` gives the same
``cv_results_`` as ``n_jobs=1``.

The cluster runs its workers in separate processes, as a real cluster does, so every
candidate (a meta-fitted estimator, or an unfitted one and a ``TaskBatch``) is pickled
to a worker and its score pickled back.
"""

import logging
import os

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

distributed = pytest.importorskip("distributed")

from sklmeta import MAMLRegressor  # noqa: E402
from sklmeta.tasks import SinusoidTasks  # noqa: E402


def _worker_threads():
    import torch

    return torch.get_num_threads()


@pytest.fixture(scope="module")
def client():
    # One torch thread per worker process. torch takes its default thread count from
    # OMP_NUM_THREADS and then MKL_NUM_THREADS (the latter wins); the Nanny's env= sets
    # both in the worker process before any task runs, overriding what this process has.
    # (distributed's default "pre-spawn-environ" already sets MKL_NUM_THREADS=1, but a
    # variable already set here would win over it.)
    # Starting the cluster writes MKL_NUM_THREADS, PYTHONHASHSEED, ... into this
    # process's environment; it is put back afterwards.
    environ = dict(os.environ)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True,
        env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        dashboard_address=None, silence_logs=logging.ERROR,
    )
    client = distributed.Client(cluster)
    # The serial searches run here with one torch thread too, like each worker: the two
    # sides then compute the same way, and on a small machine this process's OpenMP
    # threads do not compete with the workers (unpinned, with OMP_NUM_THREADS=2 on 2
    # cores, this file took 33-40 s instead of 11-15 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield client
    finally:
        torch.set_num_threads(threads)
        client.close()
        cluster.close()
        os.environ.clear()
        os.environ.update(environ)


def quick(**kw):
    return MAMLRegressor(hidden_layer_sizes=(16, 16), max_iter=20, meta_batch_size=4,
                         random_state=0, device="cpu", **kw)


def assert_same_search(serial, parallel):
    a, b = serial.cv_results_, parallel.cv_results_
    assert list(a["params"]) == list(b["params"])
    np.testing.assert_array_equal(a["rank_test_score"], b["rank_test_score"])
    score_keys = [k for k in a if k.startswith("split") and k.endswith("_test_score")]
    assert score_keys and set(score_keys) == {k for k in b if k.startswith("split")
                                              and k.endswith("_test_score")}
    # Timing columns (mean_fit_time, ...) are ignored. The same candidate on the same CPU
    # with one torch thread should score bit for bit the same in a worker process as here,
    # but only agreement to rtol=1e-6 is demanded.
    for k in score_keys + ["mean_test_score", "std_test_score"]:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-6, atol=0, err_msg=k)
    assert serial.best_params_ == parallel.best_params_


def run_both(client, make_search, *fit_args):
    serial = make_search(n_jobs=1).fit(*fit_args)
    with distributed.get_task_stream(client) as stream:
        with joblib.parallel_backend("dask"):
            parallel = make_search(n_jobs=-1).fit(*fit_args)
    # the candidates really ran on the cluster's workers, not in this process
    assert len({t["worker"] for t in stream.data}) >= 1 and len(stream.data) > 0
    return serial, parallel


def test_workers_run_one_torch_thread(client):
    assert set(client.run(_worker_threads).values()) == {1}


def test_adaptation_grid_search_on_dask_equals_serial(client):
    maml = quick().meta_fit(SinusoidTasks(k_support=10, k_query=10))
    task = SinusoidTasks(k_support=20, k_query=10).sample(1, random_state=4)[0]

    def make(n_jobs):
        return GridSearchCV(maml, {"inner_lr": [0.005, 0.01, 0.02]}, cv=5, n_jobs=n_jobs)

    serial, parallel = run_both(client, make, task.X_support, task.y_support)
    assert_same_search(serial, parallel)
    # every candidate started from the meta-learned initialisation shipped to the workers
    assert serial.cv_results_["mean_test_score"].std() > 0


def test_meta_level_grid_search_on_dask_equals_serial(client):
    task_set = SinusoidTasks(k_support=10, k_query=10).sample(30, random_state=1)

    def make(n_jobs):
        return GridSearchCV(quick(), {"inner_lr": [0.005, 0.01, 0.02]}, cv=3, n_jobs=n_jobs)

    serial, parallel = run_both(client, make, task_set)
    assert_same_search(serial, parallel)
    assert hasattr(parallel.best_estimator_, "meta_params_")
