"""
Choosing an algorithm with GridSearchCV
=======================================

Compare MAML, first-order MAML, Meta-SGD and ANIL with scikit-learn's ``GridSearchCV``,
since the algorithms of the MAML family are parameters of one estimator.

The switches are ``first_order``, ``learn_inner_lr`` and ``adapt_params``, so
``GridSearchCV`` compares the eight combinations like any other hyper-parameter: each
candidate is meta-trained on the training folds of a collection of sinusoid tasks and
scored (pooled R^2 of the query points after adaptation) on the held-out tasks. The
script prints the ranking and the best candidate's 5-shot MSE on new sinusoids, and
draws the ranking as a bar chart.

Commands::

    python examples/choosing_an_algorithm.py                  # ~1-2 min on 2 CPU cores
    python examples/choosing_an_algorithm.py --quick          # seconds: checks it runs
    python examples/choosing_an_algorithm.py --max-iter 3000 --n-tasks 2000

Full-budget numbers (``docs/results.md``, the default command, 35 s on one core): 3-fold
cross-validation over 300 sinusoid tasks (5 support, 10 query points), 500
meta-iterations of 25 tasks per candidate, pooled query R^2 after one adaptation step
(+/- one standard deviation over folds)::

    ANIL with learned rates            0.719 +/- 0.014
    first-order Meta-SGD               0.715 +/- 0.037
    Meta-SGD                           0.706 +/- 0.037
    first-order ANIL, learned rates    0.672
    MAML                               0.493
    first-order MAML                   0.428
    ANIL                               0.349
    first-order ANIL                   0.326

At this short budget the learned per-weight rates matter most; the best candidate's
5-shot MSE on 200 new tasks after one step is 1.128. ``--quick`` (100 meta-iterations,
60 tasks) only checks that the script runs: its scores are far below these and its
ranking means nothing.
"""

import argparse
import time

import numpy as np

NAMES = {  # (first_order, learn_inner_lr, adapt_params) -> the paper's name
    (False, False, "all"): "MAML",
    (True, False, "all"): "first-order MAML",
    (False, "elementwise", "all"): "Meta-SGD",
    (True, "elementwise", "all"): "first-order Meta-SGD",
    (False, False, "head"): "ANIL",
    (True, False, "head"): "first-order ANIL",
    (False, "elementwise", "head"): "ANIL with learned rates",
    (True, "elementwise", "head"): "first-order ANIL, learned rates",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a small budget (100 meta-iterations, 60 tasks, 50 test tasks) "
                             "that runs in well under a minute on one CPU thread; its scores "
                             "are not those of docs/results.md")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="meta-iterations per candidate and fold "
                             "(default: 500; 100 with --quick)")
    parser.add_argument("--n-tasks", type=int, default=None,
                        help="tasks in the collection searched over (default: 300; 60 with "
                             "--quick)")
    parser.add_argument("--n-test-tasks", type=int, default=None,
                        help="new tasks the best candidate is tested on (default: 200; 50 "
                             "with --quick)")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.max_iter is None:
        args.max_iter = 100 if args.quick else 500
    if args.n_tasks is None:
        args.n_tasks = 60 if args.quick else 300
    if args.n_test_tasks is None:
        args.n_test_tasks = 50 if args.quick else 200
    return args


def main(argv=None):
    args = parse_args(argv)
    # imported here, after the arguments, so that --help answers at once
    from sklearn.model_selection import GridSearchCV

    from sklmeta import MAMLRegressor
    from sklmeta.tasks import SinusoidTasks

    start = time.perf_counter()
    tasks = SinusoidTasks(k_support=5, k_query=10)
    collection = tasks.sample(args.n_tasks, random_state=args.seed)
    grid = {"first_order": [False, True], "learn_inner_lr": [False, "elementwise"],
            "adapt_params": ["all", "head"]}
    print(f"GridSearchCV: 8 candidates x {args.cv} folds of {args.n_tasks} tasks, "
          f"{args.max_iter} meta-iterations of 25 tasks per fit"
          + (" (--quick: not the budget of docs/results.md)" if args.quick else ""),
          flush=True)
    search = GridSearchCV(
        MAMLRegressor(inner_lr=0.01, max_iter=args.max_iter, meta_batch_size=25,
                      device="cpu", random_state=args.seed),
        grid, cv=args.cv, n_jobs=args.n_jobs, verbose=2,  # one line per fit
    ).fit(collection)

    print(f"\n{args.cv}-fold cross-validation over {args.n_tasks} sinusoid tasks, "
          f"{args.max_iter} meta-iterations each (pooled query R^2, mean +/- std):")
    results = search.cv_results_
    order = np.argsort(results["rank_test_score"])
    names = [NAMES[p["first_order"], p["learn_inner_lr"], p["adapt_params"]]
             for p in results["params"]]
    for i in order:
        print(f"  {results['rank_test_score'][i]}. {names[i]:<32} "
              f"{results['mean_test_score'][i]:.3f} +/- {results['std_test_score'][i]:.3f}")

    best = search.best_estimator_
    errors = []
    for task in tasks.sample(args.n_test_tasks, random_state=10_000 + args.seed):
        pred = best.adapt(task.X_support, task.y_support).predict(task.X_query)
        errors.append(np.mean((pred - task.y_query) ** 2))
    steps = best.inner_steps
    print(f"\nbest: {search.best_params_}; 5-shot MSE on {args.n_test_tasks} new tasks after "
          f"{steps} step{'' if steps == 1 else 's'}: {np.mean(errors):.3f}")
    print(f"total wall time: {time.perf_counter() - start:.0f} s")

    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install sklmeta[plot]): no figure")
        return
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    rows = order[::-1]  # best on top
    first_order = np.array([results["params"][i]["first_order"] for i in rows])
    y = np.arange(len(rows))
    for flag, color, label in ((False, "tab:blue", "second order"),
                               (True, "tab:orange", "first order")):
        mask = first_order == flag
        ax.barh(y[mask], results["mean_test_score"][rows][mask],
                xerr=results["std_test_score"][rows][mask], color=color, capsize=3,
                label=label)
    ax.set_yticks(y, [names[i] for i in rows])
    ax.axvline(0, color="k", lw=0.8)
    ax.set(title=f"GridSearchCV over the MAML family: {args.cv}-fold CV, {args.n_tasks} tasks,"
                 f"\n{args.max_iter} meta-iterations per fit"
                 + (" (--quick budget)" if args.quick else ""),
           xlabel="pooled query $R^2$ on held-out tasks (mean, std over folds)")
    ax.legend(title="meta-gradient", loc="upper left", bbox_to_anchor=(1.01, 1))
    plt.show()


if __name__ == "__main__":
    main()
