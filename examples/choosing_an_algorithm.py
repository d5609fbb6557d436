"""Choosing an algorithm with GridSearchCV: MAML, first-order MAML, Meta-SGD and ANIL.

The algorithms of the MAML family are parameters of one estimator (``first_order``,
``learn_inner_lr``, ``adapt_params``), so scikit-learn's ``GridSearchCV`` compares them
like any other hyper-parameter: each candidate is meta-trained on the training folds
of a task collection and scored (pooled R^2 of the query points after adaptation) on
the held-out tasks. Prints the ranking and the best candidate's 5-shot MSE on new
sinusoids.

    python examples/choosing_an_algorithm.py                  # ~1-2 min on 2 CPU cores
    python examples/choosing_an_algorithm.py --max-iter 3000 --n-tasks 2000
"""

import argparse
import time

import numpy as np
from sklearn.model_selection import GridSearchCV

from sklmeta import MAMLRegressor
from sklmeta.tasks import SinusoidTasks

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=500,
                        help="meta-iterations per candidate and fold (default: %(default)s)")
    parser.add_argument("--n-tasks", type=int, default=300,
                        help="tasks in the collection searched over (default: %(default)s)")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()

    tasks = SinusoidTasks(k_support=5, k_query=10)
    collection = tasks.sample(args.n_tasks, random_state=args.seed)
    grid = {"first_order": [False, True], "learn_inner_lr": [False, "elementwise"],
            "adapt_params": ["all", "head"]}
    search = GridSearchCV(
        MAMLRegressor(inner_lr=0.01, max_iter=args.max_iter, meta_batch_size=25,
                      device="cpu", random_state=args.seed),
        grid, cv=args.cv, n_jobs=args.n_jobs, verbose=1,
    ).fit(collection)

    print(f"\n{args.cv}-fold cross-validation over {args.n_tasks} sinusoid tasks, "
          f"{args.max_iter} meta-iterations each (pooled query R^2, mean +/- std):")
    results = search.cv_results_
    for i in np.argsort(results["rank_test_score"]):
        p = results["params"][i]
        name = NAMES[p["first_order"], p["learn_inner_lr"], p["adapt_params"]]
        print(f"  {results['rank_test_score'][i]}. {name:<32} "
              f"{results['mean_test_score'][i]:.3f} +/- {results['std_test_score'][i]:.3f}")

    best = search.best_estimator_
    errors = []
    for task in tasks.sample(200, random_state=10_000 + args.seed):
        pred = best.adapt(task.X_support, task.y_support).predict(task.X_query)
        errors.append(np.mean((pred - task.y_query) ** 2))
    print(f"\nbest: {search.best_params_}; 5-shot MSE on 200 new tasks after "
          f"{best.inner_steps} step(s): {np.mean(errors):.3f}")
    print(f"total wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
