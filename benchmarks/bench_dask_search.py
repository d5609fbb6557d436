"""GridSearchCV with n_jobs=1 against n_jobs=-1 under ``joblib.parallel_backend("dask")``.

The two searches of ``tests/test_dask.py``, on a ``distributed.LocalCluster`` of
``--workers`` worker processes with one thread each (one torch thread each; this
process also runs one torch thread):

(a) adaptation: a meta-fitted ``MAMLRegressor`` (hidden (16, 16), 20 meta-iterations),
    ``inner_lr`` in [0.005, 0.01, 0.02], ``cv=5`` on one sinusoid support set of 20 points;
(b) meta-level: ``MAMLRegressor(max_iter=--max-iter)`` over the same ``inner_lr`` grid,
    ``cv=3`` on a ``TaskBatch`` of 30 sinusoid tasks (9 meta-fits, then the refit here).

For each repetition it prints the wall time of both searches, whether the scores in
``cv_results_`` are bit-identical, and the CPU seconds that *other* processes on the
machine used meanwhile (all CPU time less this process's and its children's; a
repetition with more than a few tenths of a second there was slowed by something else).

    OMP_NUM_THREADS=1 python benchmarks/bench_dask_search.py --max-iter 20
    OMP_NUM_THREADS=1 python benchmarks/bench_dask_search.py --max-iter 300
"""

import argparse
import logging
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.model_selection import GridSearchCV

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklmeta import MAMLRegressor  # noqa: E402
from sklmeta.tasks import SinusoidTasks  # noqa: E402


def quick(max_iter=20):
    return MAMLRegressor(hidden_layer_sizes=(16, 16), max_iter=max_iter, meta_batch_size=4,
                         random_state=0, device="cpu")


def searches(max_iter):
    maml = quick().meta_fit(SinusoidTasks(k_support=10, k_query=10))
    task = SinusoidTasks(k_support=20, k_query=10).sample(1, random_state=4)[0]
    task_set = SinusoidTasks(k_support=10, k_query=10).sample(30, random_state=1)
    grid = {"inner_lr": [0.005, 0.01, 0.02]}
    return {
        "(a) adaptation, cv=5": (
            lambda n: GridSearchCV(maml, grid, cv=5, n_jobs=n), (task.X_support, task.y_support)),
        f"(b) meta-level, max_iter={max_iter}, cv=3": (
            lambda n: GridSearchCV(quick(max_iter), grid, cv=3, n_jobs=n), (task_set,)),
    }


def main():
    import distributed
    import psutil

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    me = psutil.Process()

    def own_cpu():
        total = 0.0
        for p in [me, *me.children(recursive=True)]:
            try:
                c = p.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                pass
        return total

    def all_cpu():
        c = psutil.cpu_times()
        return c.user + c.system + c.nice + getattr(c, "irq", 0) + getattr(c, "softirq", 0)

    def timed(f):
        a0, m0, t0 = all_cpu(), own_cpu(), time.perf_counter()
        out = f()
        wall = time.perf_counter() - t0
        return out, wall, max(0.0, (all_cpu() - a0) - (own_cpu() - m0))

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    threads = client.run(lambda: __import__("torch").get_num_threads())
    print(f"distributed {distributed.__version__}, torch {torch.__version__}; cluster of "
          f"{args.workers} worker processes started in {time.perf_counter() - t0:.2f} s; "
          f"torch threads per worker: {sorted(threads.values())}")
    try:
        for name, (make, fit_args) in searches(args.max_iter).items():
            for rep in range(args.reps):
                serial, t_serial, o_serial = timed(lambda: make(1).fit(*fit_args))

                def on_dask():
                    with joblib.parallel_backend("dask"):
                        return make(-1).fit(*fit_args)

                parallel, t_dask, o_dask = timed(on_dask)
                keys = [k for k in serial.cv_results_ if k.endswith("_test_score")]
                same = all(np.array_equal(serial.cv_results_[k], parallel.cv_results_[k])
                           for k in keys) and serial.best_params_ == parallel.best_params_
                print(f"{name} rep {rep}: n_jobs=1 {t_serial:.2f} s (others {o_serial:.1f} "
                      f"CPU-s) | dask n_jobs=-1 {t_dask:.2f} s (others {o_dask:.1f} CPU-s) | "
                      f"bit-identical cv_results_ scores: {same}")
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
