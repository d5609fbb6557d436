"""
scikit-learn workflows on tasks
===============================

The everyday scikit-learn moves, done on tasks: a pipeline that meta-trains, any metric
over a task collection, cross-validation that keeps classes apart, a searchable network
class, zero-shot prediction, sample weights, and the adapted network as a plain
``torch.nn.Module``.

Regression (sinusoid tasks):

1. ``make_task_pipeline(StandardScaler(), MAMLRegressor())`` meta-trains on tasks; the
   scaler is fitted on the pooled meta-training inputs, then frozen.
2. ``cross_validate`` over a ``TaskBatch`` with two task scorers
   (``make_task_scorer``): the query MSE pooled over tasks, and the mean of per-task
   mean absolute errors.
3. On new tasks: the zero-shot prediction of the meta-learned initialisation (before any
   ``adapt``), the prediction adapted to 10 support points, adapted to a support set
   with 2 corrupted targets, and adapted to the same set with ``sample_weight=0`` on
   those 2 points. The first figure shows the four pooled R^2.
4. ``to_module()``: the adapted network as an ``nn.Module`` gives ``predict``'s output.

Classification (3-way 1-shot digit episodes):

5. ``module=Net, module__width=...``: ``GridSearchCV`` searches the width of a network
   class, each candidate meta-trained and scored on episodes of classes it never saw
   (``DisjointTaskKFold`` over episodes drawn per fold of classes with
   ``EpisodicTasks.split`` and ``TaskBatch.concatenate``). The second figure shows the
   cross-validated accuracy per width.

Commands::

    python examples/sklearn_workflows.py            # 2,000 / 500 meta-iterations
    python examples/sklearn_workflows.py --quick    # seconds: checks it runs

Full-budget numbers (the first command, seed 0, 41 s on one CPU thread): pooled query
R^2 on 100 new tasks 0.320 zero-shot, 0.705 adapted, -0.057 adapted to the corrupted
targets and 0.686 with weight 0 on them; cross-validated query MSE 3.29 pooled, per-task
MAE 1.43; accuracy on unseen digit classes 0.525 +/- 0.057 (width 8), 0.538 +/- 0.042
(32), 0.559 +/- 0.075 (128), on 40 episodes per fold, so the widths are within the
noise. ``--quick`` (200 / 60 meta-iterations) only checks that the script runs: its
scores are not these. The user guide's "sklmeta and scikit-learn" page explains each
workflow.
"""

import argparse

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a small budget (200 regression and 60 classification "
                             "meta-iterations) that runs in well under a minute on one CPU "
                             "thread; its scores are not those of longer runs")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="regression meta-iterations (default: 2000; 200 with --quick)")
    parser.add_argument("--max-iter-classification", type=int, default=None,
                        help="meta-iterations per classification fit (default: 500; 60 "
                             "with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.max_iter is None:
        args.max_iter = 200 if args.quick else 2000
    if args.max_iter_classification is None:
        args.max_iter_classification = 60 if args.quick else 500
    return args


def main(argv=None):
    args = parse_args(argv)
    # imported here, after the arguments, so that --help answers at once
    import torch
    from sklearn.base import clone
    from sklearn.datasets import load_digits
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GridSearchCV, cross_validate
    from sklearn.preprocessing import StandardScaler
    from torch import nn

    from sklmeta import MAMLClassifier, MAMLRegressor
    from sklmeta.metrics import make_task_scorer
    from sklmeta.model_selection import DisjointTaskKFold
    from sklmeta.pipeline import make_task_pipeline
    from sklmeta.tasks import EpisodicTasks, SinusoidTasks, TaskBatch

    # 1. a pipeline that meta-trains
    tasks = SinusoidTasks(k_support=10, k_query=10)
    maml = MAMLRegressor(inner_lr=0.01, meta_batch_size=25, max_iter=args.max_iter,
                         device="cpu", random_state=args.seed, verbose=1)
    pipe = make_task_pipeline(StandardScaler(), maml)
    print(f"1. meta-training a task pipeline: {args.max_iter} iterations", flush=True)
    pipe.fit(tasks)

    # 2. any metric over a task collection, in scikit-learn's cross-validation
    collection = tasks.sample(60, random_state=args.seed)
    scoring = {"pooled_mse": make_task_scorer("neg_mean_squared_error"),
               "per_task_mae": make_task_scorer("neg_mean_absolute_error", pooled=False)}
    small = make_task_pipeline(StandardScaler(), MAMLRegressor(
        max_iter=max(50, args.max_iter // 4), device="cpu", random_state=args.seed))
    print("2. cross_validate over 60 tasks, 3 folds, two task scorers", flush=True)
    cv = cross_validate(small, collection, cv=3, scoring=scoring)
    print(f"   pooled query MSE {-cv['test_pooled_mse'].mean():.3f}, mean per-task MAE "
          f"{-cv['test_per_task_mae'].mean():.3f} (means over the 3 folds)")

    # 3. zero-shot, adapted, adapted to corrupted targets, and the same with weights
    new = tasks.sample(100, random_state=10_000 + args.seed)
    rng = np.random.default_rng(args.seed)
    y_true, predictions = [], {k: [] for k in ("zero-shot (no adapt)", "adapted",
                                                "2 corrupted targets",
                                                "corrupted, weight 0")}
    scaler = pipe[0]
    # clone keeps the meta-learned initialisation, not an adaptation: before any adapt a
    # meta-fitted regressor predicts zero-shot, from the initialisation
    zero_shot, regressor = clone(pipe[-1]), clone(pipe[-1])
    for task in new:
        X_support, X_query = scaler.transform(task.X_support), scaler.transform(task.X_query)
        y_true.append(task.y_query)
        predictions["zero-shot (no adapt)"].append(zero_shot.predict(X_query))
        adapted = regressor.adapt(X_support, task.y_support)
        predictions["adapted"].append(adapted.predict(X_query))
        corrupted = task.y_support.copy()
        bad = rng.choice(len(corrupted), size=2, replace=False)
        corrupted[bad] += rng.choice([-1, 1], size=2) * 10  # two gross errors
        predictions["2 corrupted targets"].append(
            regressor.adapt(X_support, corrupted).predict(X_query))
        weight = np.ones(len(corrupted))
        weight[bad] = 0.0
        predictions["corrupted, weight 0"].append(
            regressor.adapt(X_support, corrupted, sample_weight=weight).predict(X_query))
    y_true = np.concatenate(y_true)
    r2 = {k: r2_score(y_true, np.concatenate(v)) for k, v in predictions.items()}
    print("3. pooled query R^2 on 100 new tasks, 10 support points each:")
    for name, value in r2.items():
        print(f"   {name:<22} {value:7.3f}")

    # 4. the adapted network as a plain nn.Module
    task = new[0]
    regressor.adapt(scaler.transform(task.X_support), task.y_support)
    net = regressor.to_module()
    X_query = torch.as_tensor(scaler.transform(task.X_query), dtype=torch.float32)
    gap = np.abs(net(X_query).detach().numpy()[:, 0]
                 - regressor.predict(scaler.transform(task.X_query))).max()
    print(f"4. to_module(): {type(net).__name__}; max |module output - predict| = {gap:.1e}")

    # 5. a network class with searchable parameters, cross-validated on unseen classes
    class Net(nn.Sequential):
        def __init__(self, width=32):
            super().__init__(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 3))

    X, y = load_digits(return_X_y=True)
    episodes = EpisodicTasks(X / 16, y, n_way=3, k_shot=1, k_query=5)
    rest, first = episodes.split([0, 1, 2, 3])            # (train, test) sides
    third, second = rest.split([4, 5, 6])
    parts = (first, second, third)                         # classes 0-3, 4-6, 7-9
    batch = TaskBatch.concatenate(
        [part.sample(40, random_state=args.seed + i) for i, part in enumerate(parts)],
        groups=[0, 1, 2])
    widths = [8, 32, 128]
    search = GridSearchCV(
        MAMLClassifier(module=Net, inner_lr=0.4, max_iter=args.max_iter_classification,
                       device="cpu", random_state=args.seed),
        {"module__width": widths}, cv=DisjointTaskKFold(3), verbose=1)
    print("5. GridSearchCV over module__width, folds of disjoint digit classes", flush=True)
    search.fit(batch)
    accuracy = search.cv_results_["mean_test_score"]
    spread = search.cv_results_["std_test_score"]
    for width, mean, std in zip(widths, accuracy, spread):
        print(f"   width {width:>3}: accuracy on unseen classes {mean:.3f} +/- {std:.3f}")

    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install sklmeta[plot]): no figures")
        return
    budget = f"{args.max_iter} meta-iterations" + (", --quick budget" if args.quick else "")
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    names = list(r2)
    ax.barh(names[::-1], [r2[k] for k in names[::-1]],
            color=["tab:red", "tab:orange", "tab:blue", "tab:gray"])
    ax.axvline(0, color="k", lw=0.8)
    ax.set(xlabel="pooled query $R^2$ on 100 new tasks",
           title=f"Sinusoid MAML in a task pipeline\n({budget})")
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.errorbar(widths, accuracy, yerr=spread, marker="o", capsize=3,
                label="mean and std over 3 class-disjoint folds")
    ax.axhline(1 / 3, color="k", ls="--", lw=1, label="chance (3-way)")
    ax.set(xscale="log", xticks=widths, xticklabels=[str(w) for w in widths],
           xlabel="module__width (hidden units of Net)",
           ylabel="query accuracy on unseen classes",
           title=f"GridSearchCV over a network class's width\n"
                 f"({args.max_iter_classification} meta-iterations per fit"
                 + (", --quick budget)" if args.quick else ")"))
    ax.legend(fontsize=8)
    plt.show()


if __name__ == "__main__":
    main()
