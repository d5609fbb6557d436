"""The sinusoid comparison of Finn et al. (2017): MAML, first-order MAML, Meta-SGD, ANIL,
Reptile and joint pre-training, evaluated K-shot after 1, 5 and 10 adaptation steps.

Every learner is meta-trained on tasks with 10 support and 10 query points (the
paper's setting), then evaluated on 600 new tasks with K = 5 and K = 10 support points
and 100 query points each; the table gives the mean query MSE with a 95% interval.
Two figures are saved: (a) MSE against adaptation steps, (b) the fit on one task whose
support points all lie on the right half of the x-axis.

    python examples/sinusoid_comparison.py --max-iter 70000 --out results/sinusoid
    python examples/sinusoid_comparison.py --only MAML Meta-SGD ANIL --max-iter 10000
    python examples/sinusoid_comparison.py --only MAML --max-iter 20000 --early-stopping
    python examples/sinusoid_comparison.py --checkpoint-dir ckpt   # rerun to resume

``--early-stopping`` validates every ``--validation-every`` meta-iterations on 100 tasks
drawn once (R^2 of their query points after adaptation), stops after
``--n-iter-no-change`` validations without improvement and keeps the best
initialisation. ``--checkpoint-dir`` writes each learner's checkpoint there; after a
crash, the same command resumes every unfinished learner where its checkpoint left it.

Results are written to ``<out>/results.json`` after each learner, so a long run that
is stopped keeps what it finished.
"""

import argparse
import json
import pathlib
import time

import numpy as np

from sklmeta import MAMLRegressor, PretrainedRegressor, ReptileRegressor
from sklmeta.tasks import SinusoidTasks, Task

PAPER = {  # Finn et al. (2017), figure 2 / section 5.1, 5-shot
    ("MAML", 5): {1: 0.67, 5: 0.38, 10: 0.35},
    ("pretrained", 5): {1: 2.41, 5: 2.23, 10: 2.19},
}
STEPS = (1, 5, 10)


def learners(max_iter, seed, long_run=None):
    common = dict(max_iter=max_iter, device="cpu", random_state=seed, verbose=1,
                  **(long_run or {}))
    return {
        "MAML": MAMLRegressor(inner_lr=0.01, inner_steps=1, meta_batch_size=25, **common),
        "FOMAML": MAMLRegressor(inner_lr=0.01, inner_steps=1, meta_batch_size=25,
                                first_order=True, **common),
        # Li et al. (2017): one learned inner rate per weight, initialised at alpha
        "Meta-SGD": MAMLRegressor(inner_lr=0.01, inner_steps=1, meta_batch_size=25,
                                  learn_inner_lr="elementwise", **common),
        # Raghu et al. (2020): only the last layer adapts
        "ANIL": MAMLRegressor(inner_lr=0.01, inner_steps=1, meta_batch_size=25,
                              adapt_params="head", **common),
        "Reptile": ReptileRegressor(inner_lr=0.02, inner_steps=5, meta_step_size=0.1,
                                    meta_batch_size=5, **common),
        "pretrained": PretrainedRegressor(inner_lr=0.01, meta_batch_size=25, **common),
    }


def query_errors(est, tasks, steps):
    est.set_params(adapt_steps=steps)
    return np.array([
        np.mean((est.adapt(t.X_support, t.y_support).predict(t.X_query) - t.y_query) ** 2)
        for t in tasks
    ])


def one_sided_task(k_shot, seed):
    """A task whose support points all lie on x in [0, 5] (query covers [-5, 5])."""
    dist = SinusoidTasks(k_support=k_shot, k_query=200)
    amplitude, phase = dist.sample_functions(1, random_state=seed)
    rng = np.random.default_rng(seed)
    xs = rng.uniform(0, 5, size=(k_shot, 1)).astype(np.float32)
    xq = np.linspace(-5, 5, 200, dtype=np.float32)[:, None]
    wave = lambda x: dist.wave(x[:, 0], amplitude[0], phase[0]).astype(np.float32)  # noqa: E731
    return Task(xs, wave(xs), xq, wave(xq))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=20000)
    parser.add_argument("--n-test-tasks", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="run only these learners")
    parser.add_argument("--out", default="results/sinusoid")
    parser.add_argument("--early-stopping", action="store_true")
    parser.add_argument("--validation-every", type=int, default=250)
    parser.add_argument("--n-iter-no-change", type=int, default=10)
    parser.add_argument("--checkpoint-dir", type=pathlib.Path, default=None,
                        help="write checkpoints there, and resume from them")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    train = SinusoidTasks(k_support=10, k_query=10)
    test = {k: SinusoidTasks(k_support=k, k_query=100).sample(args.n_test_tasks,
                                                             random_state=10_000 + k)
            for k in (5, 10)}
    long_run = {}
    if args.early_stopping:
        long_run.update(early_stopping=True, validation_every=args.validation_every,
                        n_iter_no_change=args.n_iter_no_change, n_validation_tasks=100)
    if args.checkpoint_dir is not None:
        args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        long_run.update(warm_start=True, checkpoint_every=500)
    fitted = {}
    for name, est in learners(args.max_iter, args.seed, long_run).items():
        if args.only and name not in args.only:
            continue
        if args.checkpoint_dir is not None:
            est.set_params(checkpoint_path=args.checkpoint_dir / f"{name}.ckpt")
        start = time.perf_counter()
        est.meta_fit(train)
        seconds = time.perf_counter() - start
        entry = {"iterations": int(est.n_iter_), "seconds": seconds,
                 "n_test_tasks": args.n_test_tasks,
                 "interrupted": bool(est.meta_interrupted_), "params": {
                     k: str(v) if k == "checkpoint_path" else v
                     for k, v in est.get_params().items() if k != "module"}}
        if args.early_stopping:
            entry.update(best_iter=int(est.best_iter_),
                         best_validation_score=float(est.best_validation_score_))
        for k, tasks in test.items():
            curve = {}
            for steps in range(0, 11):
                errors = query_errors(est, tasks, steps)
                curve[str(steps)] = [float(errors.mean()),
                                float(1.96 * errors.std(ddof=1) / np.sqrt(len(errors)))]
            entry[f"{k}-shot"] = curve
        results[name] = entry
        fitted[name] = est
        results_path.write_text(json.dumps(results, indent=1))
        stop = (f", best validation R^2 {est.best_validation_score_:.4f} at iteration "
                f"{est.best_iter_} (kept)" if args.early_stopping else "")
        print(f"{name}: {est.n_iter_} iterations in {seconds:.0f} s{stop}")

    print_table(results)
    plot(results, fitted, out)


def print_table(results):
    for k in (5, 10):
        n_tasks = next(iter(results.values()))["n_test_tasks"] if results else 0
        print(f"\n{k}-shot query MSE, {n_tasks} new tasks (mean +/- 95% interval)")
        print(f"{'learner':<11}{'iters':>7}{'time':>7}" + "".join(f"{f'{s} step(s)':>18}" for s in STEPS)
              + "   paper (1/5/10)")
        for name, entry in results.items():
            curve = entry[f"{k}-shot"]
            cells = "".join(f"{curve[str(s)][0]:>10.3f} +/- {curve[str(s)][1]:.3f}" for s in STEPS)
            paper = PAPER.get((name, k))
            ref = " / ".join(f"{paper[s]:.2f}" for s in STEPS) if paper else "-"
            print(f"{name:<11}{entry['iterations']:>7}{entry['seconds']:>6.0f}s{cells}   {ref}")


def plot(results, fitted, out):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (pip install sklmeta[plot]); no figures saved")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, k in zip(axes, (5, 10)):
        for name, entry in results.items():
            curve = entry[f"{k}-shot"]
            steps = sorted(int(s) for s in curve)
            mean = np.array([curve[str(s)][0] for s in steps])
            ci = np.array([curve[str(s)][1] for s in steps])
            ax.errorbar(steps, mean, yerr=ci, marker="o", capsize=2, label=name)
        ax.set(title=f"{k}-shot sinusoid regression", xlabel="adaptation steps",
               ylabel="query MSE", yscale="log")
        ax.legend()
    fig.savefig(out / "mse_vs_steps.png", dpi=120, bbox_inches="tight")

    if fitted:
        task = one_sided_task(5, seed=3)
        fig, axes = plt.subplots(1, len(fitted), figsize=(4 * len(fitted), 3.5), sharey=True)
        axes = np.atleast_1d(axes)
        for ax, (name, est) in zip(axes, fitted.items()):
            ax.plot(task.X_query[:, 0], task.y_query, "k-", lw=2, label="true")
            for steps in (0, 1, 10):
                est.set_params(adapt_steps=steps).adapt(task.X_support, task.y_support)
                ax.plot(task.X_query[:, 0], est.predict(task.X_query), label=f"{steps} steps")
            ax.plot(task.X_support[:, 0], task.y_support, "^", color="purple", ms=8,
                    label="5 support points")
            ax.set(title=name, xlabel="x")
        axes[0].legend(fontsize=8)
        fig.savefig(out / "one_sided_fit.png", dpi=120, bbox_inches="tight")
    print(f"figures saved in {out}/")


if __name__ == "__main__":
    main()
