"""
Tuning meta-training (inner_lr) on held-out tasks with GridSearchCV
===================================================================

Choose a meta-training hyper-parameter, MAML's inner learning rate, by scoring each
candidate on held-out *tasks* with scikit-learn's ``GridSearchCV``.

``fit`` on a collection of tasks meta-trains; ``score`` on one adapts on each task's
support set and returns the R^2 of all query predictions pooled. scikit-learn's
splitters then split tasks, not rows: each candidate is meta-trained on two thirds of
the tasks and scored on the held-out third. ``--n-jobs 2`` (the default) runs
candidates in parallel (joblib's workers each get one torch thread on a 2-core machine,
so they do not oversubscribe). The script prints each candidate's score and the refit
best estimator's score on new tasks, and draws the scores against ``inner_lr``.

Commands::

    python examples/tuning_meta_level.py                 # 2,000 iterations per fit, n_jobs=2
    python examples/tuning_meta_level.py --quick         # seconds: checks it runs
    python examples/tuning_meta_level.py --n-jobs 1 --max-iter 5000

Full-budget numbers (``docs/results.md``, the default command: each candidate
meta-trained 2,000 iterations on two thirds of 300 tasks and scored on the held-out
third, ``n_jobs=2``, 228 s): pooled query R^2 0.325 (inner_lr 0.0003), 0.716 (0.003),
0.784 (0.01), 0.762 (0.03); the refit best estimator scores 0.778 on 200 new tasks.
``--quick`` (300 iterations, 60 tasks, one job) only checks that the script runs: its
scores are not these.
"""

import argparse
import time

import numpy as np

INNER_LRS = [0.0003, 0.003, 0.01, 0.03]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a small budget (300 meta-iterations per fit, 60 tasks, 50 new "
                             "tasks, --n-jobs 1) that runs in well under a minute on one CPU "
                             "thread; its scores are not those of docs/results.md")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="meta-iterations per fit (default: 2000; 300 with --quick)")
    parser.add_argument("--n-tasks", type=int, default=None,
                        help="tasks in the collection searched over (default: 300; 60 with "
                             "--quick)")
    parser.add_argument("--n-new-tasks", type=int, default=None,
                        help="new tasks the refit best estimator is scored on (default: 200; "
                             "50 with --quick)")
    parser.add_argument("--cv", type=int, default=3, help="task folds (default: %(default)s)")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="GridSearchCV's parallel jobs (default: 2; 1 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.max_iter is None:
        args.max_iter = 300 if args.quick else 2000
    if args.n_tasks is None:
        args.n_tasks = 60 if args.quick else 300
    if args.n_new_tasks is None:
        args.n_new_tasks = 50 if args.quick else 200
    if args.n_jobs is None:
        args.n_jobs = 1 if args.quick else 2
    return args


def main(argv=None):
    args = parse_args(argv)
    # imported here, after the arguments, so that --help answers at once
    from sklearn.model_selection import GridSearchCV

    from sklmeta import MAMLRegressor
    from sklmeta.tasks import SinusoidTasks

    tasks = SinusoidTasks(k_support=10, k_query=10)
    task_set = tasks.sample(args.n_tasks, random_state=args.seed)  # a finite family of tasks
    grid = {"inner_lr": INNER_LRS}
    print(f"GridSearchCV: {len(INNER_LRS)} inner_lr values x {args.cv} folds of "
          f"{args.n_tasks} tasks, {args.max_iter} meta-iterations per fit, n_jobs="
          f"{args.n_jobs}" + (" (--quick: not the budget of docs/results.md)"
                             if args.quick else ""), flush=True)
    start = time.perf_counter()
    search = GridSearchCV(
        MAMLRegressor(max_iter=args.max_iter, device="cpu", random_state=args.seed), grid,
        cv=args.cv, n_jobs=args.n_jobs, verbose=2,  # a line per fit
    ).fit(task_set)
    print(f"GridSearchCV over {len(INNER_LRS)} inner_lr values x {args.cv} task folds: "
          f"{time.perf_counter() - start:.0f} s")

    results = search.cv_results_
    scores, stds = results["mean_test_score"], results["std_test_score"]
    for params, mean, std in zip(results["params"], scores, stds):
        print(f"  inner_lr={params['inner_lr']:<7} pooled query R^2 on held-out tasks "
              f"{mean:.3f} +/- {std:.3f}")
    worst = int(np.argmin(scores))
    print(f"best inner_lr={search.best_params_['inner_lr']}: {search.best_score_:.3f}; "
          f"worst inner_lr={results['params'][worst]['inner_lr']}: {scores[worst]:.3f}")

    fresh = tasks.sample(args.n_new_tasks, random_state=args.seed + 1)
    new_score = search.best_estimator_.score(fresh)
    print(f"best estimator (refit on all {args.n_tasks} tasks), pooled query R^2 on "
          f"{args.n_new_tasks} new tasks: {new_score:.3f}")

    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install sklmeta[plot]): no figure")
        return
    lrs = [p["inner_lr"] for p in results["params"]]
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.errorbar(lrs, scores, yerr=stds, marker="o", capsize=3,
                label=f"held-out tasks, mean and std over {args.cv} folds")
    ax.plot([search.best_params_["inner_lr"]], [new_score], "*", ms=14, color="tab:red",
            label=f"best inner_lr, refit on all {args.n_tasks} tasks: "
                  f"{args.n_new_tasks} new tasks")
    ax.set(xscale="log", xlabel="inner_lr (meta-training and adaptation)",
           ylabel="pooled query $R^2$",
           title=f"GridSearchCV over MAML's inner_lr, {args.n_tasks} sinusoid tasks\n"
                 f"{args.max_iter} meta-iterations per fit"
                 + (", --quick budget" if args.quick else ""))
    ax.legend(fontsize=8)
    plt.show()


if __name__ == "__main__":
    main()
