"""
Few-shot Omniglot: MAML, first-order MAML, Reptile and MAML++ on held-out alphabets
===================================================================================

Meta-train the 4-layer conv net of Finn et al. (2017) on some Omniglot alphabets and
classify characters of alphabets it never saw, 5-way and 20-way, from 1 or 5 examples.

The data are the small Omniglot background sets in ``../shared/data/omniglot`` (the
folder ``shared/data/omniglot`` beside the repository; ``--data PATH`` for another
copy, ``--fetch`` to download the full release), with rotations by 0/90/180/270
degrees as new classes. After meta-training, the script evaluates on alphabets it
never saw: 5-way 1-shot and 5-way 5-shot with one 5-way model per algorithm, 20-way
1-shot with a 20-way model (the number of output units is fixed at meta-training).
Each setting is 600 test episodes; the table gives the mean accuracy with a 95%
interval, beside the papers'. Two figures: the accuracies, and the meta-training loss
of each model.

BatchNorm conventions (``--batch-norm-stats``, the estimators' ``batch_norm_stats``): the
models are meta-trained with "support" (the default: query images are normalised with
the support set's statistics, so an image's prediction does not depend on the other
query images) or "transductive" (the query batch's own statistics, as the reference
MAML code; the MAML paper's numbers are transductive), and each adapted model is
scored both ways: "support" and "trans." columns, the first being the convention a
model was trained with when that is "support". "Reptile paper" classifies each query
image in a batch made of the support set and that one image, the non-transductive
protocol of the Reptile paper; it is computed for Reptile (on the first 100 episodes
by default, it is slow) and, with --non-transductive, for MAML. "untrained Conv4" is
the network with no meta-training, adapted like Reptile (10 SGD steps): what
meta-learning must beat.

Commands::

    python examples/omniglot_few_shot.py                    # ~15 min on an idle 2-core CPU
    python examples/omniglot_few_shot.py --quick            # under a minute: checks it runs
    python examples/omniglot_few_shot.py --max-iter 1000 --meta-batch 8
    python examples/omniglot_few_shot.py --algorithms maml --ways 5 --timing
    python examples/omniglot_few_shot.py --fetch            # full Omniglot (downloads ~15 MB)
    python examples/omniglot_few_shot.py --batch-norm-stats transductive
    python examples/omniglot_few_shot.py --algorithms maml mamlpp --ways 20  # MAML vs MAML++
    python examples/omniglot_few_shot.py --validation-alphabets 2 --early-stopping
    python examples/omniglot_few_shot.py --checkpoint-dir ckpt       # rerun to resume

``--validation-alphabets K`` sets K of the training alphabets aside: 100 upright episodes
of them (the test protocol) are scored every ``--validation-every`` meta-iterations
(``validation_tasks`` of ``meta_fit``); with ``--early-stopping`` meta-training stops
after ``--n-iter-no-change`` validations without improvement and keeps the best
initialisation. ``--checkpoint-dir`` writes a checkpoint per model there; after a
crash, the same command resumes the unfinished model where its checkpoint left it
(a model whose checkpoint had finished continues for ``--max-iter`` more iterations, as
``warm_start`` does: use a new folder for a new run).

The papers meta-train one model per setting; here one 5-way 1-shot model serves the
5-way 1-shot and 5-shot tests, and a 20-way 1-shot model the 20-way test.

On a busy machine, ``--threads 1`` can be several times faster than torch's default:
two OpenMP threads that spin-wait for each other on cores shared with other
processes slow the small convolutions of the per-task loop down badly.

Full-budget numbers (``docs/omniglot.md``, one core per run, 600 test episodes, held-out
alphabets Korean, Latin and Tagalog; transductive models), accuracy %::

    algorithm, budget                         5-way 1-shot  5-way 5-shot  20-way 1-shot
    MAML, 5-way 3,000 x 16 (1,913 s)          95.9 +/- 0.5  97.7 +/- 0.5  -
    MAML, 5-way 1,200 x 16, 20-way 600 x 8    94.4 +/- 0.6  96.1 +/- 0.6  83.6 +/- 0.5
    first-order MAML, 5-way 3,000 x 16        86.8 +/- 0.8  95.3 +/- 0.5  -
    Reptile, 5-way 1,200 x 8, 20-way 400 x 4  76.8 +/- 0.9  93.4 +/- 0.5  47.0 +/- 0.5
    untrained Conv4, adapted like Reptile     72.4 +/- 1.0  92.8 +/- 0.6  46.0 +/- 0.5

The rows come from ``python examples/omniglot_few_shot.py --threads 1`` with these
options (``OMP_NUM_THREADS=1``, two runs side by side)::

    --algorithms maml fomaml --ways 5 --no-baseline --max-iter 3000 --meta-batch 16
    --algorithms maml --no-baseline --max-iter 1200 --meta-batch 16
    --algorithms reptile --max-iter 1200 --meta-batch 8 --max-iter-20way 400 --meta-batch-20way 4

(papers, on the full Omniglot: 98.7 / 99.9 / 95.8 for MAML). MAML meta-trained with
support statistics (the default) at the 1,200 x 16 budget: 94.1 / 95.0 / 82.7; MAML++ at
20-way 1-shot, 600 x 8: 80.2 against MAML's 82.7. ``--quick`` (MAML and the untrained
baseline, 5-way only, 20 meta-iterations of 8 tasks, 20 test episodes) only checks that
the script runs: its accuracies are far below these.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# <repository>/../shared/data/omniglot. sphinx-gallery runs examples without __file__,
# with sys.argv[0] set to the example's path.
HERE = Path(globals().get("__file__") or sys.argv[0]).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "omniglot"
# the defaults of the options that --quick changes
FULL = dict(algorithms=["maml", "fomaml", "reptile"], ways=[5, 20], max_iter=300, n_test=600)
QUICK = dict(algorithms=["maml"], ways=[5], max_iter=20, n_test=20)

SETTINGS = [  # name, n_way, k_shot, query images per class at test time
    ("5-way 1-shot", 5, 1, 5),
    ("5-way 5-shot", 5, 5, 5),
    ("20-way 1-shot", 20, 1, 5),
]

# Omniglot, 1,200 training characters of all 50 alphabets (Finn et al., 2017, table 1;
# Nichol et al., 2018, table 1). MAML's are transductive; Reptile's non-transductive
# (its transductive figures are 97.68 / 99.48 / 89.43).
PAPERS = {
    "maml": ("MAML paper", {"5-way 1-shot": 98.7, "5-way 5-shot": 99.9, "20-way 1-shot": 95.8}),
    "fomaml": ("MAML paper", {"5-way 1-shot": 98.3, "5-way 5-shot": 99.2, "20-way 1-shot": 89.4}),
    "reptile": ("Reptile paper", {"5-way 1-shot": 95.39, "5-way 5-shot": 98.90,
                                  "20-way 1-shot": 88.14}),
    # Antoniou et al. (2019), table 1 (MAML++)
    "mamlpp": ("MAML++ paper", {"5-way 1-shot": 99.47, "5-way 5-shot": 99.93,
                                "20-way 1-shot": 97.65}),
}
NAMES = {"maml": "MAML", "fomaml": "first-order MAML", "reptile": "Reptile",
         "mamlpp": "MAML++", "untrained": "untrained Conv4"}


def make_estimator(algorithm, n_way, args):
    """The estimator of one algorithm, with the papers' settings scaled to the budget."""
    from sklmeta import MAMLClassifier, MAMLPlusPlusClassifier, ReptileClassifier

    n_iter = args.max_iter if n_way == 5 else args.max_iter_20way
    batch = args.meta_batch if n_way == 5 else args.meta_batch_20way
    common = dict(max_iter=n_iter, meta_batch_size=batch, device=args.device,
                  random_state=args.seed, verbose=args.verbose,
                  batch_norm_stats=args.batch_norm_stats)
    if algorithm in ("maml", "fomaml"):
        # Finn et al.: alpha 0.4, one inner step in training, 3 (5-way) or 5 (20-way)
        # at test; Adam meta-step 1e-3. (Their 20-way runs train with 5 inner steps
        # at alpha 0.1, five times the cost; we keep one step.)
        return MAMLClassifier(inner_lr=0.4, inner_steps=1, adapt_steps=3 if n_way == 5 else 5,
                              meta_lr=1e-3, first_order=algorithm == "fomaml", **common)
    if algorithm == "mamlpp":
        # Antoniou et al.: 5 inner steps from learned per-layer per-step rates starting at
        # 0.1, per-step BatchNorm weights, the multi-step loss annealed over the first
        # tenth of training, first order for the first half (derivative-order
        # annealing), cosine-annealed meta learning rate from 1e-3
        return MAMLPlusPlusClassifier(inner_lr=0.1, inner_steps=5, adapt_steps=5,
                                      meta_lr=1e-3, multi_step_loss=max(1, n_iter // 10),
                                      first_order_iters=n_iter // 2, **common)
    # Reptile: 5 SGD steps per task on the support set, the initialisation moved
    # half-way to the mean of the adapted weights; 10 steps at test. "untrained": the
    # same adaptation from a random initialisation (meta_step_size ~ 0: no learning).
    if algorithm == "untrained":
        common.update(max_iter=1, meta_batch_size=1, verbose=0)
        return ReptileClassifier(inner_lr=0.1, inner_steps=5, adapt_steps=10,
                                 meta_step_size=1e-12, **common)
    return ReptileClassifier(inner_lr=0.1, inner_steps=5, adapt_steps=10,
                             meta_step_size=args.reptile_meta_step, **common)


def training_tasks(train, algorithm, n_way, args):
    """Meta-training episodes. MAML and FOMAML: 1 support and 1 query image per class,
    as in the MAML code for Omniglot. Reptile: ``--reptile-train-shots`` support images
    per class (the Reptile paper trains on more shots than it tests on; with 1 shot its
    meta-loss did not decrease here in 1,200 iterations: see docs/omniglot.md)."""
    if algorithm == "reptile":
        return train.subset(n_way=n_way, k_shot=args.reptile_train_shots, k_query=1)
    return train.subset(n_way=n_way, k_shot=1, k_query=1)


def predict_non_transductive(est, X_support, X_query, chunk=32):
    """Classify each query image in a batch of the support set plus that one image."""
    import torch

    shape = est.input_shape_
    xs = torch.as_tensor(X_support, dtype=torch.float32).reshape(-1, *shape)
    xq = torch.as_tensor(X_query, dtype=torch.float32).reshape(-1, *shape)
    params, buffers = est.adapted_params_, est.buffers_

    def last_logits(x):  # x: one batch [n_support + 1, *shape]
        out = torch.func.functional_call(est.module_, (params, buffers), (x,))
        return out[-1, : len(est.classes_)]

    predictions = []
    with torch.no_grad():
        for start in range(0, len(xq), chunk):
            q = xq[start : start + chunk]
            groups = torch.cat([xs.expand(len(q), *xs.shape), q[:, None]], dim=1)
            predictions.append(torch.func.vmap(last_logits)(groups).argmax(1))
    return est.classes_[torch.cat(predictions).numpy()]


def loss_change(losses, window=20):
    """'first -> last' of the meta-training loss, each a mean over up to ``window``
    iterations; windows never overlap, so a short run says what it has."""
    n = len(losses)
    w = min(window, n // 2)
    if w == 0:
        return f"query loss {np.mean(losses):.3f} ({n} iteration{'' if n == 1 else 's'})"
    span = "iteration" if w == 1 else f"{w} iterations"
    return (f"query loss {losses[:w].mean():.3f} (first {span}) -> "
            f"{losses[-w:].mean():.3f} (last {span})")


def mean_ci(values):
    values = np.asarray(values) * 100
    return values.mean(), 1.96 * values.std(ddof=1) / np.sqrt(len(values))


def evaluate(est, episodes, non_transductive, n_non_transductive=None):
    """Accuracy with support statistics and transductive, on every episode (the same
    adaptation: the support set is normalised with its own statistics either way);
    the Reptile paper's protocol on the first ``n_non_transductive`` (it classifies
    each query image in a batch of its own)."""
    trained_with = est.batch_norm_stats
    support, trans, non_trans = [], [], []
    for i, task in enumerate(episodes):
        est.adapt(task.X_support, task.y_support)
        support.append(est.set_params(batch_norm_stats="support").score(task.X_query, task.y_query))
        trans.append(est.set_params(batch_norm_stats="transductive").score(task.X_query,
                                                                            task.y_query))
        if non_transductive and (n_non_transductive is None or i < n_non_transductive):
            pred = predict_non_transductive(est, task.X_support, task.X_query)
            non_trans.append(np.mean(pred == task.y_query))
    est.set_params(batch_norm_stats=trained_with)
    return mean_ci(support), mean_ci(trans), (mean_ci(non_trans) if non_transductive else None)


def time_iterations(train, args):
    """Sampling time per meta-batch and engine time per meta-iteration, meta-batch 32."""
    tasks = train.subset(n_way=5, k_shot=1, k_query=15)
    rng = np.random.default_rng(0)
    tasks.sample(32, rng)
    start = time.perf_counter()
    for _ in range(100):
        tasks.sample(32, rng)
    sampling = (time.perf_counter() - start) / 100
    print("\nTiming, 5-way 1-shot, 15 query images per class, meta-batch 32:")
    print(f"  sampling a meta-batch (ImageTasks.sample): {sampling * 1e3:.2f} ms")
    for algorithm in args.algorithms:
        est = make_estimator(algorithm, 5, args).set_params(
            max_iter=4, meta_batch_size=32, verbose=0)
        est.meta_fit(tasks)
        per_iter = np.diff(est.meta_history_["wall_time"]).mean()  # the first is warm-up
        print(f"  {NAMES[algorithm]:<17} {per_iter:6.2f} s per meta-iteration "
              f"({32 / per_iter:.1f} tasks/s, strategy={est.strategy_}); sampling is "
              f"{100 * sampling / per_iter:.3f}% of it")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a small budget (MAML and the untrained baseline, 5-way only, "
                             "20 meta-iterations, 20 test episodes per setting) that runs in "
                             "under a minute on one CPU thread; its accuracies are not the "
                             "papers' nor those of docs/omniglot.md")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder or zip files in the Omniglot layout (default: %(default)s)")
    parser.add_argument("--fetch", action="store_true",
                        help="use fetch_omniglot() (the full release, downloaded once)")
    parser.add_argument("--test-alphabets", type=int, default=3,
                        help="alphabets held out for testing (default: %(default)s)")
    parser.add_argument("--algorithms", nargs="*", default=None,
                        choices=["maml", "fomaml", "reptile", "mamlpp"],
                        help="meta-learners to run (default: maml fomaml reptile; maml with "
                             "--quick)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="meta-iterations of the 5-way models (default: 300; 20 with "
                             "--quick)")
    parser.add_argument("--meta-batch", type=int, default=8,
                        help="tasks per meta-iteration, 5-way models (default: %(default)s)")
    parser.add_argument("--max-iter-20way", type=int, default=None,
                        help="meta-iterations of the 20-way models (default: max-iter / 2)")
    parser.add_argument("--meta-batch-20way", type=int, default=None,
                        help="tasks per meta-iteration, 20-way models (default: meta-batch / 2)")
    parser.add_argument("--reptile-train-shots", type=int, default=5,
                        help="support images per class in Reptile's meta-training "
                             "episodes (default: %(default)s)")
    parser.add_argument("--reptile-meta-step", type=float, default=1.0,
                        help="Reptile's meta_step_size (default: %(default)s)")
    parser.add_argument("--n-test", type=int, default=None,
                        help="test episodes per setting (default: 600; 20 with --quick)")
    parser.add_argument("--non-transductive", action="store_true",
                        help="also score MAML non-transductively (always done for Reptile)")
    parser.add_argument("--non-transductive-episodes", type=int, default=100,
                        help="score non-transductively only the first N test episodes "
                             "(it is slow: one batch per query image; default: %(default)s)")
    parser.add_argument("--ways", type=int, nargs="+", default=None, choices=[5, 20],
                        help="which models to meta-train: 5-way (5-way 1- and 5-shot "
                             "tests), 20-way (20-way 1-shot test) (default: 5 20; 5 with "
                             "--quick)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the untrained Conv4 adapted like Reptile (no meta-learning)")
    parser.add_argument("--timing", action="store_true",
                        help="also time meta-iterations at meta-batch 32")
    parser.add_argument("--batch-norm-stats", choices=["support", "transductive"],
                        default="support",
                        help="BatchNorm statistics of query images at meta-training "
                             "(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--validation-alphabets", type=int, default=0,
                        help="training alphabets set aside to validate on")
    parser.add_argument("--early-stopping", action="store_true",
                        help="stop on the validation alphabets' accuracy")
    parser.add_argument("--validation-every", type=int, default=100)
    parser.add_argument("--n-iter-no-change", type=int, default=3)
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="write checkpoints there, and resume from them (a finished one "
                             "continues for --max-iter more iterations)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1,
                        help="1: a progress bar per meta-training, 0: none (default: "
                             "%(default)s)")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.max_iter_20way is None:
        args.max_iter_20way = max(1, args.max_iter // 2)
    if args.meta_batch_20way is None:
        args.meta_batch_20way = max(1, args.meta_batch // 2)
    if args.early_stopping and not args.validation_alphabets:
        parser.error("--early-stopping needs --validation-alphabets K (K >= 1)")
    return args


def main(argv=None):
    args = parse_args(argv)
    # imported here, after the arguments, so that --help answers at once
    import torch

    from sklmeta.datasets import fetch_omniglot, load_omniglot
    from sklmeta.tasks import ImageTasks

    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    if args.fetch:
        data = fetch_omniglot()
    elif args.data.exists():
        data = load_omniglot(args.data)
    else:
        # an exception, not parser.error: sphinx-gallery reports it as a failed example
        # (a SystemExit would stop the whole documentation build)
        raise FileNotFoundError(
            f"Omniglot not found: {args.data} does not exist. This example reads the small "
            "Omniglot background sets (images_background_small1.zip and "
            "images_background_small2.zip) from ../shared/data/omniglot, the folder "
            "shared/data/omniglot beside the repository. Pass --data PATH (a folder or zip "
            "files in the Omniglot layout) or --fetch (downloads the full release, ~15 MB).")
    tasks = ImageTasks(data.images, data.target, groups=data.alphabet)
    train, test = tasks.split(args.test_alphabets, by="group", random_state=args.seed)
    test = test.subset(rotations=(0,))  # new alphabets, upright, as in the Reptile code
    validation = None
    if args.validation_alphabets:
        train, validation = train.split(args.validation_alphabets, by="group",
                                        random_state=args.seed)
        validation = validation.subset(rotations=(0,))
    print(f"{len(data.target_names)} characters of {len(data.alphabet_names)} alphabets; "
          f"meta-training on {len(train.classes_)} characters x 4 rotations of "
          f"{data.alphabet_names[train.groups_].tolist()}, testing on {len(test.classes_)} "
          f"characters of {data.alphabet_names[test.groups_].tolist()}. "
          f"torch threads: {torch.get_num_threads()}.")
    if args.timing:
        time_iterations(train, args)

    episodes = {
        name: test.subset(n_way=n_way, k_shot=k_shot, k_query=k_query).sample(
            args.n_test, random_state=10_000 + i)
        for i, (name, n_way, k_shot, k_query) in enumerate(SETTINGS) if n_way in args.ways
    }
    runs = list(args.algorithms) + (["untrained"] if args.baseline else [])
    results, budget, histories = {}, {}, {}
    for algorithm in runs:
        # Reptile's numbers in its paper are non-transductive: compute both for it
        non_transductive = args.non_transductive or algorithm == "reptile"
        for n_way in args.ways:
            est = make_estimator(algorithm, n_way, args)
            fit_params = {}
            if validation is not None and algorithm != "untrained":
                fit_params["validation_tasks"] = validation.subset(
                    n_way=n_way, k_shot=1, k_query=5).sample(100, random_state=20_000 + n_way)
                est.set_params(early_stopping=args.early_stopping,
                               validation_every=args.validation_every,
                               n_iter_no_change=args.n_iter_no_change)
            if args.checkpoint_dir is not None and algorithm != "untrained":
                args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
                est.set_params(warm_start=True, checkpoint_every=50,
                               checkpoint_path=args.checkpoint_dir / f"{algorithm}-{n_way}way.ckpt")
            if algorithm != "untrained":
                print(f"\nmeta-training {NAMES[algorithm]}, {n_way}-way: {est.max_iter} "
                      f"iterations of {est.meta_batch_size} tasks"
                      + (" (--quick: not the papers' budget)" if args.quick else ""), flush=True)
            start = time.perf_counter()
            est.meta_fit(training_tasks(train, algorithm, n_way, args), **fit_params)
            elapsed = time.perf_counter() - start
            if algorithm != "untrained":
                budget[algorithm, n_way] = (est.n_iter_, est.meta_batch_size, elapsed)
                history = est.meta_history_["meta_loss"]
                print(f"\n{NAMES[algorithm]}, {n_way}-way: {est.n_iter_} meta-iterations of "
                      f"{est.meta_batch_size} tasks in {elapsed:.0f} s "
                      f"({elapsed / est.n_iter_:.2f} s/iteration, strategy={est.strategy_}); "
                      f"{loss_change(history)}", flush=True)
                histories[f"{NAMES[algorithm]}, {n_way}-way"] = history
                if "validation_tasks" in fit_params:
                    scores = est.meta_history_["validation_score"]
                    done = np.flatnonzero(~np.isnan(scores))
                    print("  validation accuracy: " + ", ".join(
                        f"{scores[i] * 100:.1f}% @{i + 1}" for i in done)
                        + (f"; kept iteration {est.best_iter_}" if args.early_stopping else ""),
                        flush=True)
            else:
                print(f"\n{NAMES[algorithm]}, {n_way} outputs: no meta-training", flush=True)
            for name, way, _, k_query in SETTINGS:
                if way == n_way:
                    print(f"  {name}: evaluating on {len(episodes[name])} episodes...",
                          flush=True)
                    start = time.perf_counter()
                    results[algorithm, name] = evaluate(est, episodes[name], non_transductive,
                                                        args.non_transductive_episodes)
                    (ms, cs), (m, c), nt = results[algorithm, name]
                    n_nt = min(args.n_test, args.non_transductive_episodes or args.n_test)
                    nt = "" if nt is None else (f", {nt[0]:.1f} +/- {nt[1]:.1f}% "
                                                f"Reptile paper's protocol ({n_nt} episodes)")
                    print(f"  {name} ({k_query} query images per class): {ms:.1f} +/- {cs:.1f}% "
                          f"support statistics, {m:.1f} +/- {c:.1f}% transductive{nt} "
                          f"({time.perf_counter() - start:.0f} s)", flush=True)

    print(f"\nAccuracy on {args.n_test} episodes per setting from held-out alphabets "
          f"(mean +/- 95% interval, %); meta-trained with batch_norm_stats="
          f"{args.batch_norm_stats!r}")
    header = (f"{'':<17}{'setting':<15}{'support':>14}{'trans.':>14}{'Reptile prot.':>16}"
              "   paper (full Omniglot)")
    print(header)
    print("-" * len(header))
    for algorithm in runs:
        paper_name, paper = PAPERS.get(algorithm, ("", {}))
        for name, n_way, _, _ in SETTINGS:
            if (algorithm, name) not in results:
                continue
            (ms, cs), (m, c), nt = results[algorithm, name]
            nt = f"{'-':>16}" if nt is None else f"{nt[0]:>9.1f} +/- {nt[1]:<4.1f}"
            ref = f"{paper[name]:5.1f} ({paper_name})" if name in paper else "-"
            print(f"{NAMES[algorithm]:<17}{name:<15}{ms:>7.1f} +/- {cs:<4.1f}"
                  f"{m:>7.1f} +/- {c:<4.1f}{nt}   {ref}")
    print("\nMeta-training budgets: " + "; ".join(
        f"{NAMES[a]} {w}-way {i} it x {b} tasks ({s:.0f} s)"
        for (a, w), (i, b, s) in budget.items()))
    print(f"Total wall time: {time.perf_counter() - t_start:.0f} s")
    plot(results, histories, runs, args)


def plot(results, histories, runs, args):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install sklmeta[plot]): no figures")
        return
    quick = ", --quick budget" if args.quick else ""
    convention = 0 if args.batch_norm_stats == "support" else 1  # the column trained with
    settings = [name for name, n_way, _, _ in SETTINGS if n_way in args.ways]
    fig, ax = plt.subplots(figsize=(max(6, 2.5 * len(settings)), 4), layout="constrained")
    width = 0.8 / len(runs)
    for j, algorithm in enumerate(runs):
        x = [i + (j - (len(runs) - 1) / 2) * width for i, name in enumerate(settings)
             if (algorithm, name) in results]
        cells = [results[algorithm, name][convention] for name in settings
                 if (algorithm, name) in results]
        ax.bar(x, [m for m, _ in cells], width, yerr=[c for _, c in cells], capsize=3,
               label=NAMES[algorithm])
    for i, name in enumerate(settings):
        chance = 100 / (20 if name.startswith("20") else 5)
        ax.hlines(chance, i - 0.45, i + 0.45, colors="k", linestyles="--", lw=1,
                  label="chance" if i == 0 else None)
    ax.set_xticks(range(len(settings)), settings)
    ax.set(ylim=(0, 100), ylabel="accuracy, % (mean, 95% interval)")
    # a figure title: the layout keeps it inside the figure, beside the outer legend
    fig.suptitle(f"Omniglot, held-out alphabets: {args.n_test} episodes per setting\n"
                 f"BatchNorm statistics: {args.batch_norm_stats} (as meta-trained){quick}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))

    if histories:
        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
        shown = []
        for label, losses in histories.items():
            window = max(1, min(50, len(losses) // 10))
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window, len(losses) + 1), smooth, label=label)
            shown.append(smooth)
        shown = np.concatenate(shown)
        ax.set(title=f"Meta-training on the training alphabets{quick}",
               xlabel="meta-iteration", ylabel="query loss after adaptation\n(moving average)",
               yscale="log" if np.nanmax(shown) > 10 * np.nanmin(shown) else "linear")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    plt.show()


if __name__ == "__main__":
    main()
