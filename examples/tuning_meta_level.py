"""Tune meta-training (inner_lr) by scoring on held-out *tasks* with GridSearchCV.

``fit`` on a collection of tasks meta-trains; ``score`` on one adapts on each task's
support set and returns the R^2 of all query predictions pooled. scikit-learn's splitters then split tasks,
not rows: each candidate is meta-trained on two thirds of the tasks and scored on the
held-out third. ``n_jobs=2`` runs candidates in parallel (joblib's workers each get
one torch thread on a 2-core machine, so they do not oversubscribe).

    python examples/tuning_meta_level.py
"""

import time

import numpy as np
from sklearn.model_selection import GridSearchCV

from sklmeta import MAMLRegressor
from sklmeta.tasks import SinusoidTasks


def main():
    tasks = SinusoidTasks(k_support=10, k_query=10)
    task_set = tasks.sample(300, random_state=0)  # a finite family of tasks
    grid = {"inner_lr": [0.0003, 0.003, 0.01, 0.03]}
    start = time.perf_counter()
    search = GridSearchCV(
        MAMLRegressor(max_iter=2000, device="cpu", random_state=0), grid, cv=3, n_jobs=2
    ).fit(task_set)
    print(f"GridSearchCV over {len(grid['inner_lr'])} inner_lr values x 3 task folds: "
          f"{time.perf_counter() - start:.0f} s")

    scores = search.cv_results_["mean_test_score"]
    for params, mean, std in zip(search.cv_results_["params"], scores,
                                 search.cv_results_["std_test_score"]):
        print(f"  inner_lr={params['inner_lr']:<7} pooled query R^2 on held-out tasks "
              f"{mean:.3f} +/- {std:.3f}")
    worst = int(np.argmin(scores))
    print(f"best inner_lr={search.best_params_['inner_lr']}: {search.best_score_:.3f}; "
          f"worst inner_lr={search.cv_results_['params'][worst]['inner_lr']}: {scores[worst]:.3f}")

    fresh = tasks.sample(200, random_state=1)
    print(f"best estimator (refit on all 300 tasks), pooled query R^2 on 200 new tasks: "
          f"{search.best_estimator_.score(fresh):.3f}")


if __name__ == "__main__":
    main()
