"""Validation tasks and early stopping for ``meta_fit``, in scikit-learn's words."""

import math

import numpy as np

from ._validation import _is_task_distribution
from .tasks import TaskBatch
from .tasks._base import TaskSequence


def validation_split(source, validation_tasks, estimator, seed):
    """``(training_source, validation_batch)``.

    ``validation_tasks`` when given (a finite collection, or a distribution drawn from
    once); else, from a finite collection, ``validation_fraction`` of its tasks set
    aside; else ``n_validation_tasks`` drawn from the distribution. ``seed`` fixes the
    split or the draw, so warm starts and resumed runs validate on the same tasks.
    """
    if validation_tasks is not None:
        if _is_task_distribution(validation_tasks):
            return source, _draw(validation_tasks, estimator.n_validation_tasks, seed)
        batch = validation_tasks
        if not isinstance(batch, TaskBatch):
            try:
                batch = TaskBatch.stack(list(batch))
            except Exception as exc:
                raise TypeError(
                    "validation_tasks must be a TaskBatch, a non-empty list of Task or a "
                    f"task distribution; got {type(validation_tasks).__name__} ({exc})."
                ) from None
        return source, batch
    if isinstance(source, TaskSequence):
        n_tasks = len(source.tasks)
        n_validation = math.ceil(estimator.validation_fraction * n_tasks)
        if n_validation >= n_tasks:
            raise ValueError(
                f"validation_fraction={estimator.validation_fraction} of {n_tasks} tasks "
                "leaves no task to meta-train on: lower it, pass more tasks, or pass "
                "validation_tasks to meta_fit."
            )
        order = np.random.default_rng(seed).permutation(n_tasks)
        return (TaskSequence(source.tasks[np.sort(order[n_validation:])]),
                source.tasks[np.sort(order[:n_validation])])
    return source, _draw(source, estimator.n_validation_tasks, seed)


def _draw(distribution, n_tasks, seed):
    batch = distribution.sample(n_tasks, random_state=np.random.default_rng(seed))
    if not isinstance(batch, TaskBatch) or len(batch) == 0:
        raise ValueError(
            "The validation tasks' distribution returned no TaskBatch of tasks from "
            f"sample({n_tasks}, random_state)."
        )
    return batch


class EarlyStopping:
    """The best validation score so far, its parameters, and the validations since.

    As scikit-learn's MLP: a validation improves when its score exceeds the best by
    more than ``tol``; training stops after ``n_iter_no_change`` validations in a row
    that did not. A NaN score (diverged adaptation) never improves.
    """

    def __init__(self, tol, n_iter_no_change):
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.best_score = -math.inf
        self.best_iter = None
        self.best_params = None
        self.no_improvement = 0

    def update(self, score, params, iteration):
        """Record a validation; return whether to stop."""
        if score > self.best_score + self.tol:
            self.no_improvement = 0
        else:
            self.no_improvement += 1
        if score > self.best_score:
            self.best_score, self.best_iter = float(score), int(iteration)
            self.best_params = {k: v.detach().clone() for k, v in params.items()}
        return self.no_improvement >= self.n_iter_no_change

    def state_dict(self):
        """Plain data and tensors (for a checkpoint)."""
        return {
            "best_score": self.best_score, "best_iter": self.best_iter,
            "no_improvement": self.no_improvement,
            "best_params": ({k: v.detach().cpu() for k, v in self.best_params.items()}
                            if self.best_params is not None else None),
        }

    def load_state_dict(self, state, device):
        self.best_score, self.best_iter = state["best_score"], state["best_iter"]
        self.no_improvement = state["no_improvement"]
        self.best_params = ({k: v.to(device) for k, v in state["best_params"].items()}
                            if state["best_params"] is not None else None)
        return self
