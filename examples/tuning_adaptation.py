"""Tune how to adapt (inner_lr, adapt_steps) on one support set with GridSearchCV.

After meta-training, a user holds one new task with a small labelled set and asks:
which inner learning rate and how many steps adapt best from the meta-learned
initialisation? scikit-learn's own GridSearchCV answers it. Cloning a meta-fitted
sklmeta estimator keeps the meta-learned initialisation (it plays the part of
pre-trained weights), so every candidate starts from it.

    python examples/tuning_adaptation.py
"""

import time

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold

from sklmeta import MAMLRegressor
from sklmeta.tasks import SinusoidTasks


def main():
    start = time.perf_counter()
    tasks = SinusoidTasks(k_support=10, k_query=10)
    maml = MAMLRegressor(max_iter=5000, device="cpu", random_state=0).meta_fit(tasks)
    print(f"meta-trained {maml.n_iter_} iterations in {time.perf_counter() - start:.0f} s")

    # one new task: 20 labelled points to tune on, 500 held-out points to check on
    task = SinusoidTasks(k_support=20, k_query=500).sample(1, random_state=7)[0]
    grid = {"inner_lr": [0.0003, 0.001, 0.003, 0.01, 0.03], "adapt_steps": [1, 5, 20]}
    search = GridSearchCV(maml, grid, cv=KFold(5, shuffle=True, random_state=0))
    search.fit(task.X_support, task.y_support)

    scores = search.cv_results_["mean_test_score"]
    worst = int(np.argmin(scores))
    print(f"\n{len(scores)} candidates, 5-fold CV R^2 on the 20 support points")
    print(f"best  {search.best_params_}: CV R^2 {search.best_score_:.3f}")
    print(f"worst {search.cv_results_['params'][worst]}: CV R^2 {scores[worst]:.3f}")
    held_out = search.score(task.X_query, task.y_query)
    default = maml.adapt(task.X_support, task.y_support).score(task.X_query, task.y_query)
    print(f"held-out R^2 of the refit best candidate: {held_out:.3f} "
          f"(default inner_lr=0.01, 1 step: {default:.3f})")


if __name__ == "__main__":
    main()
