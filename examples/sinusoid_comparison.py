"""
Sinusoid regression: MAML, FOMAML, Meta-SGD, ANIL, Reptile and pre-training
===========================================================================

The sinusoid comparison of Finn et al. (2017): MAML, first-order MAML, Meta-SGD, ANIL,
Reptile and joint pre-training, evaluated K-shot after 0 to 10 adaptation steps.

Every learner is meta-trained on tasks with 10 support and 10 query points (the
paper's setting), then evaluated on 600 new tasks with K = 5 and K = 10 support points
and 100 query points each; the table gives the mean query MSE with a 95% interval
after 1, 5 and 10 steps. Two figures, shown and saved in ``--out``: (a)
``mse_vs_steps.png``, the MSE against adaptation steps, (b) ``one_sided_fit.png``, the
fit on one task whose support points all lie on the right half of the x-axis.

Commands::

    python examples/sinusoid_comparison.py --max-iter 70000 --out results/sinusoid
    python examples/sinusoid_comparison.py --quick        # seconds: checks it runs
    python examples/sinusoid_comparison.py --only MAML Meta-SGD ANIL --max-iter 10000
    python examples/sinusoid_comparison.py --only MAML --max-iter 20000 --early-stopping
    python examples/sinusoid_comparison.py --checkpoint-dir ckpt      # write checkpoints
    python examples/sinusoid_comparison.py --checkpoint-dir ckpt --resume  # after a crash

``--early-stopping`` validates every ``--validation-every`` meta-iterations on 100 tasks
drawn once (R^2 of their query points after adaptation), stops after
``--n-iter-no-change`` validations without improvement and keeps the best
initialisation.

Each run starts afresh: its table and figures hold the learners of this run only, and
``<out>/results.json`` is rewritten after each learner (so a run that is stopped keeps
what it finished), with each fitted learner saved beside it (``<out>/<name>.pt``,
``sklmeta.persistence``). Resuming is explicit: with ``--resume``, a learner whose row
in ``<out>/results.json`` finished with the same settings (hyper-parameters, test tasks,
early stopping) and whose saved model is there is kept, not meta-trained again (the
script says which); the other learners are meta-trained, and with ``--checkpoint-dir``
each resumes from its checkpoint where a crash left it. (A checkpoint that had
*finished* continues for ``--max-iter`` more iterations, as ``warm_start`` does: the
iterations column shows it; delete the checkpoint to start that learner afresh.)
Without ``--resume``, an existing checkpoint is overwritten, with a warning.

Full-budget numbers (``docs/results.md``: ``--max-iter 70000``, one CPU thread; MAML,
FOMAML, Reptile, pre-trained), 5-shot query MSE::

    learner      1 step            5 steps           10 steps          paper (1/5/10)
    MAML         0.596 +/- 0.054   0.362 +/- 0.048   0.318 +/- 0.041   0.67 / 0.38 / 0.35
    FOMAML       0.619 +/- 0.060   0.361 +/- 0.047   0.309 +/- 0.038   -
    Reptile      1.020 +/- 0.107   0.630 +/- 0.081   0.577 +/- 0.073   -
    pre-trained  2.406 +/- 0.193   2.088 +/- 0.181   1.979 +/- 0.186   2.41 / 2.23 / 2.19

and at 10,000 iterations (``--only MAML Meta-SGD ANIL --max-iter 10000``), 5-shot after
1 step: MAML 0.749 +/- 0.069, Meta-SGD 0.447 +/- 0.051 (it diverges with 5 or 10
steps: its learned rates are meta-learned for one), ANIL 1.293 +/- 0.137.
``--quick`` (100 iterations, 20 test tasks) only checks that the script runs: its
errors are far above these.
"""

import argparse
import json
import pathlib
import tempfile
import time

import numpy as np

PAPER = {  # Finn et al. (2017), figure 2 / section 5.1, 5-shot
    ("MAML", 5): {1: 0.67, 5: 0.38, 10: 0.35},
    ("pretrained", 5): {1: 2.41, 5: 2.23, 10: 2.19},
}
STEPS = (1, 5, 10)
NAMES = ("MAML", "FOMAML", "Meta-SGD", "ANIL", "Reptile", "pretrained")
# hyper-parameters that may differ between a kept row and this run
RUN_ONLY_PARAMS = {"verbose", "checkpoint_path", "warm_start", "checkpoint_every", "device"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a small budget (100 meta-iterations, 20 test tasks, output in "
                             "a new temporary folder) that runs in well under a minute on one "
                             "CPU thread; its numbers are not the paper's")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="meta-iterations per learner (default: 20000; 100 with --quick)")
    parser.add_argument("--n-test-tasks", type=int, default=None,
                        help="new tasks per K (default: 600; 20 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=NAMES, help="run only these learners")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="folder for results.json, the models and the figures "
                             "(default: results/sinusoid; a new temporary folder with --quick)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the learners that <out>/results.json holds as finished with "
                             "the same settings, and resume the others from --checkpoint-dir")
    parser.add_argument("--early-stopping", action="store_true")
    parser.add_argument("--validation-every", type=int, default=250)
    parser.add_argument("--n-iter-no-change", type=int, default=10)
    parser.add_argument("--checkpoint-dir", type=pathlib.Path, default=None,
                        help="write checkpoints there (resumed from with --resume)")
    args = parser.parse_args(argv)
    if args.max_iter is None:
        args.max_iter = 100 if args.quick else 20000
    if args.n_test_tasks is None:
        args.n_test_tasks = 20 if args.quick else 600
    if args.out is None:
        # --quick writes to a fresh temporary folder: a check run leaves nothing behind
        # (the docs' gallery runs every example with --quick from inside examples/)
        args.out = (pathlib.Path(tempfile.mkdtemp(prefix="sinusoid_quick_")) if args.quick
                    else pathlib.Path("results/sinusoid"))
    return args


def learners(max_iter, seed, long_run=None):
    from sklmeta import MAMLRegressor, PretrainedRegressor, ReptileRegressor

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


def comparable_params(est):
    """The estimator's hyper-parameters as results.json stores them (JSON types)."""
    params = {k: str(v) if k == "checkpoint_path" else v
              for k, v in est.get_params().items() if k != "module"}
    return json.loads(json.dumps(params))


def same_settings(row, est, args):
    """Whether a results.json row was made by a finished run with this run's settings."""
    ours = comparable_params(est)
    theirs = row.get("params", {})
    keys = (set(ours) | set(theirs)) - RUN_ONLY_PARAMS
    return (not row.get("interrupted", True) and row.get("n_test_tasks") == args.n_test_tasks
            and all(ours.get(k) == theirs.get(k) for k in keys))


def query_errors(est, tasks, steps):
    est.set_params(adapt_steps=steps)
    return np.array([
        np.mean((est.adapt(t.X_support, t.y_support).predict(t.X_query) - t.y_query) ** 2)
        for t in tasks
    ])


def one_sided_task(k_shot, seed):
    """A task whose support points all lie on x in [0, 5] (query covers [-5, 5])."""
    from sklmeta.tasks import SinusoidTasks, Task

    dist = SinusoidTasks(k_support=k_shot, k_query=200)
    amplitude, phase = dist.sample_functions(1, random_state=seed)
    rng = np.random.default_rng(seed)
    xs = rng.uniform(0, 5, size=(k_shot, 1)).astype(np.float32)
    xq = np.linspace(-5, 5, 200, dtype=np.float32)[:, None]
    wave = lambda x: dist.wave(x[:, 0], amplitude[0], phase[0]).astype(np.float32)  # noqa: E731
    return Task(xs, wave(xs), xq, wave(xq))


def main(argv=None):
    args = parse_args(argv)
    # imported here, after the arguments, so that --help answers at once
    from sklmeta.persistence import load, save
    from sklmeta.tasks import SinusoidTasks

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    previous = {}
    if args.resume and results_path.exists():
        previous = json.loads(results_path.read_text())
    elif args.resume:
        print(f"--resume: {results_path} does not exist; every learner is meta-trained")

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
        long_run.update(warm_start=args.resume, checkpoint_every=500)
    chosen = [name for name in NAMES if not args.only or name in args.only]
    print(f"{len(chosen)} learners, {args.max_iter} meta-iterations each"
          + (" (--quick: not the paper's budget)" if args.quick else "")
          + f"; evaluated on {args.n_test_tasks} new tasks per K after 0-10 steps; "
          f"output in {out}/", flush=True)
    results, fitted, kept = {}, {}, []
    for name, est in learners(args.max_iter, args.seed, long_run).items():
        if name not in chosen:
            continue
        if args.checkpoint_dir is not None:
            # a str, not a Path: sklmeta.persistence files hold plain data only
            est.set_params(checkpoint_path=str(args.checkpoint_dir / f"{name}.ckpt"))
        model_path = out / f"{name}.pt"
        row = previous.get(name)
        if row is not None and same_settings(row, est, args) and model_path.exists():
            results[name], fitted[name] = row, load(model_path)
            kept.append(name)
            print(f"\n{name}: kept from {results_path} (--resume: finished earlier with the "
                  f"same settings, {row['iterations']} iterations in {row['seconds']:.0f} s)")
            results_path.write_text(json.dumps(results, indent=1))
            continue
        if row is not None:
            why = ("has no saved model" if same_settings(row, est, args) else
                   "did not finish" if row.get("interrupted", True) else
                   "was made with other settings")
            print(f"\n{name}: its row in {results_path} {why}; meta-training it again")
        print(f"\n{name}: meta-training", flush=True)
        start = time.perf_counter()
        est.meta_fit(train)
        seconds = time.perf_counter() - start
        entry = {"iterations": int(est.n_iter_), "seconds": seconds,
                 "n_test_tasks": args.n_test_tasks,
                 "interrupted": bool(est.meta_interrupted_),
                 "params": comparable_params(est)}
        if args.early_stopping:
            entry.update(best_iter=int(est.best_iter_),
                         best_validation_score=float(est.best_validation_score_))
        stop = (f", best validation R^2 {est.best_validation_score_:.4f} at iteration "
                f"{est.best_iter_} (kept)" if args.early_stopping else "")
        print(f"{name}: {est.n_iter_} iterations in {seconds:.0f} s{stop}; evaluating on "
              f"2 x {args.n_test_tasks} new tasks after 0-10 steps", flush=True)
        for k, tasks in test.items():
            curve = {}
            for steps in range(0, 11):
                errors = query_errors(est, tasks, steps)
                curve[str(steps)] = [float(errors.mean()),
                                     float(1.96 * errors.std(ddof=1) / np.sqrt(len(errors)))]
            entry[f"{k}-shot"] = curve
        results[name] = entry
        fitted[name] = est
        save(est, model_path)
        results_path.write_text(json.dumps(results, indent=1))

    print_table(results, kept)
    plot(results, fitted, out, args)


def print_table(results, kept):
    n_tasks = next(iter(results.values()))["n_test_tasks"] if results else 0
    for k in (5, 10):
        print(f"\n{k}-shot query MSE, {n_tasks} new tasks (mean +/- 95% interval)")
        print(f"{'learner':<11}{'iters':>7}{'time':>7}"
              + "".join(f"{'1 step' if s == 1 else f'{s} steps':>18}" for s in STEPS)
              + "   paper (1/5/10)")
        for name, entry in results.items():
            curve = entry[f"{k}-shot"]
            cells = "".join(f"{curve[str(s)][0]:>10.3f} +/- {curve[str(s)][1]:.3f}"
                            for s in STEPS)
            paper = PAPER.get((name, k))
            ref = " / ".join(f"{paper[s]:.2f}" for s in STEPS) if paper else "-"
            print(f"{name:<11}{entry['iterations']:>7}{entry['seconds']:>6.0f}s{cells}   {ref}")
    if kept:
        print(f"\nKept from an earlier run (--resume): {', '.join(kept)}")


def steps_label(steps):
    return f"{steps} step" if steps == 1 else f"{steps} steps"


def plot(results, fitted, out, args):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install sklmeta[plot]); no figures saved")
        return

    budget = f"{args.max_iter} meta-iterations" + (", --quick budget" if args.quick else "")
    # a learner that diverges (Meta-SGD after more steps than it was meta-trained for)
    # leaves the chart rather than squashing the others: the top is 10x the worst error
    # before adaptation
    top = 10 * max((entry[f"{k}-shot"]["0"][0] for entry in results.values()
                    for k in (5, 10)), default=10.0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.3), sharey=True, layout="constrained")
    for ax, k in zip(axes, (5, 10)):
        for name, entry in results.items():
            curve = entry[f"{k}-shot"]
            steps = sorted(int(s) for s in curve)
            mean = np.array([curve[str(s)][0] for s in steps])
            ci = np.array([curve[str(s)][1] for s in steps])
            off = not np.all(np.isfinite(mean)) or mean.max() > top
            ax.errorbar(steps, mean, yerr=ci, marker="o", capsize=2,
                        label=f"{name} (diverges off the chart)" if off else name)
        ax.set(title=f"{k}-shot sinusoid regression", xlabel="adaptation steps",
               ylabel="query MSE (mean, 95% interval)", yscale="log")
        ax.set_ylim(top=top)
        ax.legend(fontsize=8)
    fig.suptitle(f"Query MSE on {args.n_test_tasks} new tasks after adaptation, {budget}")
    fig.savefig(out / "mse_vs_steps.png", dpi=120, bbox_inches="tight")

    if fitted:
        task = one_sided_task(5, seed=3)
        # at most three panels a row, so that each stays readable
        n_cols = min(3, len(fitted))
        n_rows = -(-len(fitted) // n_cols)
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(4 * n_cols + 1, 3.4 * n_rows + 0.8),
                                 sharey=True, squeeze=False, layout="constrained")
        for ax in axes.ravel()[len(fitted):]:
            ax.set_visible(False)
        axes = axes.ravel()
        for ax, (name, est) in zip(axes, fitted.items()):
            ax.plot(task.X_query[:, 0], task.y_query, "k-", lw=2, label="true function")
            for steps in (0, 1, 10):
                est.set_params(adapt_steps=steps).adapt(task.X_support, task.y_support)
                ax.plot(task.X_query[:, 0], est.predict(task.X_query), label=steps_label(steps))
            ax.plot(task.X_support[:, 0], task.y_support, "^", color="purple", ms=8,
                    label=f"{len(task.X_support)} support points")
            ax.set(title=name, xlabel="x")
        for ax in axes[::n_cols]:
            ax.set_ylabel("y")
        axes[0].legend(fontsize=8)
        fig.suptitle("Fit to one new sine from 5 support points on x in [0, 5],\nafter 0, 1 "
                     f"and 10 adaptation steps; {budget}")
        fig.savefig(out / "one_sided_fit.png", dpi=120, bbox_inches="tight")
    print(f"figures saved in {out}/")
    plt.show()


if __name__ == "__main__":
    main()
