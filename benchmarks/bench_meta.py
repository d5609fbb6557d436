"""Meta-training throughput and memory: sklmeta's engine against the usual ways of
writing MAML, on identical weights and task batches, in one process.

Implementations compared on every configuration:

- ``sklmeta-vmap`` / ``sklmeta-loop``: :func:`sklmeta._engine.maml_meta_gradient` (or
  ``reptile_direction``) with each strategy; the table marks the one ``strategy="auto"``
  picks;
- ``plain-loop``: a per-task Python loop with ``torch.autograd.grad(create_graph=True)``,
  how most MAML code is written (the baseline of the ratios);
- ``higher``: the ``higher.innerloop_ctx`` way, when the package is importable.

Each repetition runs every implementation once, in rotating order, so slow phases of a
shared machine hit all of them; the table reports the median tasks/s and the ratio to
the plain loop measured in the same process, and the largest absolute difference of
each implementation's meta-gradient from the plain loop's.

    python benchmarks/bench_meta.py            # all configurations (~5 min on 2 cores)
    python benchmarks/bench_meta.py --quick    # small configurations only (~30 s)
    python benchmarks/bench_meta.py --memory   # also peak memory, one subprocess per cell
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from sklmeta import _engine
from sklmeta.networks import MLP, Conv4

CONFIGS = {
    # name: (network, inner steps, first order, algorithm, meta-batch)
    "mlp-1step-2nd": ("mlp", 1, False, "maml", 25),
    "mlp-5step-2nd": ("mlp", 5, False, "maml", 25),
    "mlp-1step-1st": ("mlp", 1, True, "maml", 25),
    "mlp-5step-1st": ("mlp", 5, True, "maml", 25),
    "mlp-reptile-5step": ("mlp", 5, True, "reptile", 25),
    "conv4-5w1s-2nd": ("conv", 1, False, "maml", 32),
    "mlp-batch-1": ("mlp", 1, False, "maml", 1),
    "mlp-batch-4": ("mlp", 1, False, "maml", 4),
    "mlp-batch-16": ("mlp", 1, False, "maml", 16),
    "mlp-batch-64": ("mlp", 1, False, "maml", 64),
    "mlp-batch-256": ("mlp", 1, False, "maml", 256),
}
QUICK = ["mlp-1step-2nd", "mlp-1step-1st", "mlp-reptile-5step", "mlp-batch-4"]
INNER_LR = {"mlp": 0.01, "conv": 0.4}


def make_problem(config, seed=0):
    """Module, initial parameters and one task batch, identical for every implementation."""
    net_kind, steps, first_order, algorithm, n_tasks = CONFIGS[config]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if net_kind == "mlp":  # sinusoid regression, K = 10 support and 10 query points
        module = MLP(1, 1, (40, 40))
        amp = torch.rand(n_tasks, 1, 1, generator=gen) * 4.9 + 0.1
        phase = torch.rand(n_tasks, 1, 1, generator=gen) * torch.pi
        x = torch.rand(n_tasks, 20, 1, generator=gen) * 10 - 5
        y = amp * torch.sin(x - phase)
        batch = (x[:, :10], y[:, :10], x[:, 10:], y[:, 10:])
        loss_fn = F.mse_loss
    else:  # Omniglot-sized 5-way 1-shot, 15 query per class; random images time the same
        module = Conv4(1, 5, image_size=28)
        xs = torch.rand(n_tasks, 5, 1, 28, 28, generator=gen)
        xq = torch.rand(n_tasks, 75, 1, 28, 28, generator=gen)
        ys = torch.arange(5).repeat(n_tasks, 1)
        yq = torch.arange(5).repeat_interleave(15).repeat(n_tasks, 1)
        batch = (xs, ys, xq, yq)
        loss_fn = F.cross_entropy
    params = {k: v.detach().clone() for k, v in module.named_parameters()}
    config = _engine.InnerLoop(INNER_LR[net_kind], steps, first_order)
    return module, params, batch, loss_fn, config, algorithm


# ---------------------------------------------------------------- implementations


def run_sklmeta(problem, strategy):
    module, params, batch, loss_fn, config, algorithm = problem
    loss = _engine.make_loss(module, loss_fn)
    if algorithm == "reptile":
        return _engine.reptile_direction(loss, params, {}, batch, config, strategy)[0]
    return _engine.maml_meta_gradient(loss, params, {}, batch, config, strategy)[0]


def run_plain_loop(problem):
    module, params, batch, loss_fn, config, algorithm = problem
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    n_tasks = batch[0].shape[0]
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for t in range(n_tasks):
        Xs, ys, Xq, yq = (b[t] for b in batch)
        fast = dict(p)
        for _ in range(config.steps):
            out = torch.func.functional_call(module, fast, (Xs,))
            grads = torch.autograd.grad(
                loss_fn(out, ys), list(fast.values()),
                create_graph=algorithm == "maml" and not config.first_order,
            )
            fast = {k: w - config.lr * g for (k, w), g in zip(fast.items(), grads)}
        if algorithm == "reptile":
            for k in total:
                total[k] += (fast[k] - p[k]).detach()
            continue
        query_loss = loss_fn(torch.func.functional_call(module, fast, (Xq,)), yq) / n_tasks
        for k, g in zip(p, torch.autograd.grad(query_loss, list(p.values()))):
            total[k] += g
    if algorithm == "reptile":
        return {k: v / n_tasks for k, v in total.items()}
    return total


def run_higher(problem):
    import higher

    module, params, batch, loss_fn, config, algorithm = problem
    model = module
    with torch.no_grad():
        for k, v in model.named_parameters():
            v.copy_(params[k])
    model.zero_grad()
    inner_opt = torch.optim.SGD(model.parameters(), lr=config.lr)
    n_tasks = batch[0].shape[0]
    for t in range(n_tasks):
        Xs, ys, Xq, yq = (b[t] for b in batch)
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False,
                                  track_higher_grads=not config.first_order) as (fmodel, diffopt):
            for _ in range(config.steps):
                diffopt.step(loss_fn(fmodel(Xs), ys))
            if config.first_order:  # FOMAML: gradient at the adapted weights, applied to the init
                query_loss = loss_fn(fmodel(Xq), yq) / n_tasks
                grads = torch.autograd.grad(query_loss, fmodel.parameters(time=-1))
                for w, g in zip(model.parameters(), grads):
                    w.grad = g if w.grad is None else w.grad + g
            else:
                (loss_fn(fmodel(Xq), yq) / n_tasks).backward()
    return {k: v.grad.detach().clone() for k, v in model.named_parameters()}


def implementations(config):
    impls = {
        "sklmeta-vmap": lambda p: run_sklmeta(p, "vmap"),
        "sklmeta-loop": lambda p: run_sklmeta(p, "loop"),
        "plain-loop": run_plain_loop,
    }
    try:
        import higher  # noqa: F401

        if CONFIGS[config][3] == "maml":
            impls["higher"] = run_higher
    except ImportError:
        pass
    return impls


# ---------------------------------------------------------------- measurement


def gradient_flops(problem, fn):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(problem)
    return counter.get_total_flops()


def time_config(config, reps):
    problem = make_problem(config)
    n_tasks = CONFIGS[config][4]
    impls = implementations(config)
    reference = run_plain_loop(problem)
    diffs = {}
    for name, fn in impls.items():  # warm-up, and the gradient check
        grads = fn(problem)
        diffs[name] = max((grads[k] - reference[k]).abs().max().item() for k in reference)
    times = {name: [] for name in impls}
    names = list(impls)
    for rep in range(reps):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            start = time.perf_counter()
            impls[name](problem)
            times[name].append(time.perf_counter() - start)
    module = problem[0]
    auto = _engine.choose_strategy("auto", module, torch.device("cpu"),
                                   second_order=not problem[4].first_order)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    row = {
        "config": config, "n_tasks": n_tasks, "auto": f"sklmeta-{auto}",
        "tasks_per_s": {n: n_tasks / t for n, t in median.items()},
        "ratio_vs_plain_loop": {n: median["plain-loop"] / t for n, t in median.items()},
        "max_abs_grad_diff": diffs,
        "spread": {n: (max(ts) - min(ts)) / statistics.median(ts) for n, ts in times.items()},
    }
    if CONFIGS[config][0] == "conv":
        flops = gradient_flops(problem, impls[row["auto"]])
        row["gflops_per_s_auto"] = flops / median[row["auto"]] / 1e9
    return row


def memory_cell(config, impl):
    """Peak RSS added by one implementation's step, measured in a fresh subprocess."""
    code = (
        "import resource, sys; sys.path.insert(0, 'benchmarks')\n"
        "import bench_meta as b\n"
        f"p = b.make_problem({config!r}); fn = b.implementations({config!r})[{impl!r}]\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "fn(p); fn(p)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # MiB (ru_maxrss is KiB on Linux)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--configs", nargs="*", choices=sorted(CONFIGS))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    configs = args.configs or (QUICK if args.quick else list(CONFIGS))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    rows = []
    for config in configs:
        reps = max(2, args.reps // 2) if CONFIGS[config][0] == "conv" else args.reps
        row = time_config(config, reps)
        if args.memory:
            row["peak_mib"] = {impl: memory_cell(config, impl) for impl in row["tasks_per_s"]}
        rows.append(row)
        print_row(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def print_row(row):
    print(f"\n{row['config']} ({row['n_tasks']} tasks; auto picks {row['auto']})")
    for name, tps in row["tasks_per_s"].items():
        mem = f"  peak +{row['peak_mib'][name]:7.0f} MiB" if "peak_mib" in row else ""
        mark = " <- auto" if name == row["auto"] else ""
        print(f"  {name:<13} {tps:9.1f} tasks/s  x{row['ratio_vs_plain_loop'][name]:5.2f}"
              f"  max|dgrad| {row['max_abs_grad_diff'][name]:.1e}"
              f"  spread {row['spread'][name]:4.0%}{mem}{mark}")
    if "gflops_per_s_auto" in row:
        print(f"  auto path: {row['gflops_per_s_auto']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
