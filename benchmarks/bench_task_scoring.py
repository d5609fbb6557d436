"""Scoring a task collection: tasks adapted together (vmap) against one at a time.

``score(tasks)``, ``make_task_scorer`` and early stopping's validation adapt a copy of
the estimator to every task's support set. A meta-fitted estimator whose meta-training
ran vmapped adapts tasks of one shape together (``BaseMetaEstimator._adapted_copies``);
the baseline, run in the same process, is what ``score`` did before: one copy adapted
task after task with ``adapt``, then ``predict``. Both give the same pooled score
(printed: the absolute difference, float rounding only).

Settings: MAML on sinusoids (MLP 1-40-40-1, 1 and 5 adaptation steps, 10-shot) and on
3-way 2-shot digit episodes (MLP 64-40-40-3), 100 and 600 tasks; each timing is the
best of ``--repeat`` runs.

``--early-stopping`` also times meta-training with and without early stopping
(validation every 250 iterations on 100 tasks, never stopping within ``--max-iter``):
the validation's share of a MAML run on sinusoids.

    OMP_NUM_THREADS=1 python benchmarks/bench_task_scoring.py
    OMP_NUM_THREADS=1 python benchmarks/bench_task_scoring.py --early-stopping --max-iter 5000
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, r2_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklmeta import MAMLClassifier, MAMLRegressor  # noqa: E402
from sklmeta.tasks import EpisodicTasks, SinusoidTasks  # noqa: E402


def one_at_a_time_score(est, tasks, metric):
    """The baseline: score(tasks) as it was, one adapt and predict per task."""
    worker = copy.copy(est)
    y_true, y_pred = [], []
    for task in tasks:
        worker.adapt(task.X_support, task.y_support)
        y_true.append(task.y_query)
        y_pred.append(worker.predict(task.X_query))
    return metric(np.concatenate(y_true), np.concatenate(y_pred))


def best_time(fn, repeat):
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def settings(max_iter):
    sine = SinusoidTasks(k_support=10, k_query=10)
    maml = MAMLRegressor(max_iter=max_iter, device="cpu", random_state=0).meta_fit(sine)
    X, y = load_digits(return_X_y=True)
    digits = EpisodicTasks(X / 16, y, n_way=3, k_shot=2, k_query=5)
    clf = MAMLClassifier(inner_lr=0.4, max_iter=max_iter, device="cpu",
                         random_state=0).meta_fit(digits)
    for steps in (1, 5):
        yield f"sinusoid MAML, {steps} step(s)", maml.set_params(adapt_steps=steps), sine, r2_score
    yield "digits 3-way 2-shot MAML", clf, digits, accuracy_score


def bench_scoring(args):
    print(f"{'setting':<30} {'tasks':>5} {'together s':>10} {'one by one s':>12} "
          f"{'speed-up':>8} {'|score diff|':>12}")
    for name, est, source, metric in settings(args.meta_iter):
        est = copy.deepcopy(est)
        for n_tasks in (100, 600):
            tasks = source.sample(n_tasks, random_state=1)
            fast, together = best_time(lambda: est.score(tasks), args.repeat)
            slow, alone = best_time(lambda: one_at_a_time_score(est, tasks, metric),
                                    args.repeat)
            print(f"{name:<30} {n_tasks:>5} {fast:>10.3f} {slow:>12.3f} {slow / fast:>7.1f}x "
                  f"{abs(together - alone):>12.2e}", flush=True)


def bench_early_stopping(args):
    sine = SinusoidTasks(k_support=10, k_query=10)
    common = dict(max_iter=args.max_iter, device="cpu", random_state=0)
    plain, _ = best_time(lambda: MAMLRegressor(**common).meta_fit(sine), 1)
    stopping = MAMLRegressor(early_stopping=True, validation_every=250,
                             n_iter_no_change=10**6, **common)
    timed, _ = best_time(lambda: stopping.meta_fit(sine), 1)
    n_validations = int(np.isfinite(stopping.meta_history_["validation_score"]).sum())
    print(f"\nMAML sinusoid, {args.max_iter} iterations: {plain:.1f} s without early stopping, "
          f"{timed:.1f} s with it ({n_validations} validations on 100 tasks): "
          f"validation costs {100 * (timed - plain) / plain:.0f}% of the run")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="timings per measure (best kept)")
    parser.add_argument("--meta-iter", type=int, default=200,
                        help="meta-training iterations of the scored estimators")
    parser.add_argument("--early-stopping", action="store_true",
                        help="also time meta-training with and without early stopping")
    parser.add_argument("--max-iter", type=int, default=5000,
                        help="meta-iterations of the early-stopping comparison")
    args = parser.parse_args()
    bench_scoring(args)
    if args.early_stopping:
        bench_early_stopping(args)


if __name__ == "__main__":
    main()
