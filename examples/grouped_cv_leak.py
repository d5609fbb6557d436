"""Cross-validation over tasks leaks when tasks share groups; GroupKFold does not.

A panel of subjects (patients, sensors, stores), each with its own response curve
``y = f_s(x)`` (a random sum of three sinusoids) and 100 rows. Meta-learning is tuned
by cross-validating over *tasks* drawn from 12 subjects (``--n-seen``), and judged on 20
subjects it never saw. Three scores of the same MAMLRegressor (pooled query R^2, 5-shot):

- leaky CV: ``KFold`` over 300 tasks drawn from those subjects: every subject has
  tasks on both sides of each split, so the score measures subjects already seen;
- group-aware CV: ``GroupKFold`` with ``groups=tasks.groups``: each subject's tasks
  stay on one side;
- the truth: meta-trained on the 300 tasks, scored on 300 tasks of the 20 unseen
  subjects.

    python examples/grouped_cv_leak.py                  # ~3 min on one core
    python examples/grouped_cv_leak.py --seeds 0 1 2
    python examples/grouped_cv_leak.py --n-seen 40 --max-iter 3000
"""

import argparse
import time

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, cross_val_score

from sklmeta import MAMLRegressor
from sklmeta.tasks import GroupedTasks


def panel(n_subjects, n_rows, seed):
    """Rows ``(x, y, subject)``: each subject's own random curve, with noise."""
    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(0.3, 1.5, size=(n_subjects, 3))
    frequency = rng.uniform(0.3, 2.0, size=(n_subjects, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(n_subjects, 3))
    subject = np.repeat(np.arange(n_subjects), n_rows)
    x = rng.uniform(-5, 5, size=subject.size)
    y = (amplitude[subject] * np.sin(frequency[subject] * x[:, None] + phase[subject])).sum(1)
    return x[:, None], y + 0.05 * rng.normal(size=y.size), subject


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n-seen", type=int, default=12, help="subjects tuned on")
    args = parser.parse_args()
    print(f"{'seed':>4} {'leaky CV (KFold)':>18} {'group-aware CV':>16} {'unseen subjects':>16}")
    for seed in args.seeds:
        start = time.perf_counter()
        X, y, subject = panel(args.n_seen + 20, 100, seed)
        everyone = GroupedTasks(X, y, subject, k_support=5, k_query=10)
        seen, unseen = everyone.split(20, random_state=seed)
        tasks = seen.sample(300, random_state=seed)  # 300 tasks of the seen subjects
        est = MAMLRegressor(max_iter=args.max_iter, device="cpu", random_state=seed)
        leaky = cross_val_score(est, tasks, cv=KFold(3, shuffle=True, random_state=seed))
        grouped = cross_val_score(est, tasks, cv=GroupKFold(3), groups=tasks.groups)
        truth = est.meta_fit(tasks).score(unseen.sample(300, random_state=seed + 1))
        print(f"{seed:>4} {leaky.mean():>11.3f} ± {leaky.std():.3f} "
              f"{grouped.mean():>9.3f} ± {grouped.std():.3f} {truth:>16.3f}"
              f"   ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
