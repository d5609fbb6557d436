"""Meta-training throughput and memory: sklmeta's engine against the usual ways of
writing MAML, on identical weights and task batches, in one process.

Implementations compared on every configuration:

- ``sklmeta-vmap`` / ``sklmeta-loop``: :func:`sklmeta._engine.maml_meta_gradient` (or
  ``reptile_direction``) with each eager strategy; ``<- auto`` marks the one
  ``strategy="auto"`` picks;
- ``sklmeta-func-vmap``: the same meta-gradient as ``grad`` of ``vmap`` of ``grad``
  (nested ``torch.func`` transforms, the engine's form before 0.2 and its fallback
  inside transforms), on the MLP configurations;
- ``plain-loop``: a per-task Python loop with ``torch.autograd.grad(create_graph=True)``,
  how most MAML code is written: the baseline of the ratios;
- ``higher``: the ``higher.innerloop_ctx`` way, when the package is importable;
- with ``--compile``: ``sklmeta-vmap+compile`` (MLP) / ``sklmeta-loop+compile`` (Conv4),
  the opt-in compiled strategies; compilation time is reported apart.

Protocol: every implementation first runs once (warm-up; its meta-gradient is compared
with the plain loop's: ``max|dgrad|``). Then each repetition times every implementation
in a rotating order, so slow phases of a shared machine hit all of them; a timing is the
mean over enough calls to last ~0.2 s. Tables give the median over repetitions, the
ratio to the plain loop's median measured in the same process, and the spread
(max - min) / median of the repetitions.

Peak memory is measured per (configuration, implementation) in a fresh subprocess:
after a warm-up call, the process's high-water mark of resident memory is reset
(``/proc/self/clear_refs``), one more call runs, and the table gives VmHWM minus the
resident memory before the call, with glibc's malloc told to return every block of
64 KiB or more to the system on free (``MALLOC_MMAP_THRESHOLD_``), so that resident
memory follows live tensors. On CUDA: ``torch.cuda.max_memory_allocated``.

    python benchmarks/bench_meta.py              # everything (~8 min on 2 CPU cores)
    python benchmarks/bench_meta.py --quick      # small configurations (~1 min)
    python benchmarks/bench_meta.py --compile    # add the compiled strategies (+3-5 min)
    python benchmarks/bench_meta.py --device cuda
"""

import argparse
import dataclasses
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sklmeta import _engine  # noqa: E402
from sklmeta.networks import MLP, Conv4  # noqa: E402

CONFIGS = {
    # name: (network, inner steps, first order, algorithm, meta-batch)
    "mlp-1step-2nd": ("mlp", 1, False, "maml", 25),
    "mlp-5step-2nd": ("mlp", 5, False, "maml", 25),
    "mlp-1step-1st": ("mlp", 1, True, "maml", 25),
    "mlp-5step-1st": ("mlp", 5, True, "maml", 25),
    "mlp-reptile-5step": ("mlp", 5, True, "reptile", 25),
    "conv4-5w1s-2nd": ("conv", 1, False, "maml", 32),
    "conv4-5w1s-1st": ("conv", 1, True, "maml", 32),
    "conv4-reptile-5step": ("conv", 5, True, "reptile", 32),
    "mlp-batch-1": ("mlp", 1, False, "maml", 1),
    "mlp-batch-2": ("mlp", 1, False, "maml", 2),
    "mlp-batch-4": ("mlp", 1, False, "maml", 4),
    "mlp-batch-16": ("mlp", 1, False, "maml", 16),
    "mlp-batch-64": ("mlp", 1, False, "maml", 64),
    "mlp-batch-256": ("mlp", 1, False, "maml", 256),
}
QUICK = ["mlp-1step-2nd", "mlp-1step-1st", "mlp-reptile-5step", "mlp-batch-4"]
SCALING = ["mlp-batch-1", "mlp-batch-2", "mlp-batch-4", "mlp-batch-16", "mlp-1step-2nd", "mlp-batch-64",
           "mlp-batch-256"]
# memory against inner steps (second order keeps every step's graph)
MEMORY_STEPS = {"mlp": (1, 5, 10), "conv": (1, 2, 5)}
INNER_LR = {"mlp": 0.01, "conv": 0.4}
# glibc malloc: serve blocks up to 1 GiB from the heap and keep up to 2 GiB of freed
# memory, so that an eager step's ~15 MB activations reuse pages instead of being mapped
# (and zeroed by page faults) afresh on every call
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**31)}
MATMUL_REFERENCE_GFLOPS = 120  # fp32 matmul on this 2-core CPU (measured again in the run)


def make_problem(config, seed=0, device="cpu", steps=None, first_order=None):
    """Module, initial parameters and one task batch, identical for every implementation."""
    net_kind, default_steps, default_fo, algorithm, n_tasks = CONFIGS[config]
    steps = default_steps if steps is None else steps
    first_order = default_fo if first_order is None else first_order
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
    module = module.to(device).eval()
    batch = tuple(b.contiguous().to(device) for b in batch)
    params = {k: v.detach().clone() for k, v in module.named_parameters()}
    config = _engine.InnerLoop(INNER_LR[net_kind], steps, first_order)
    return module, params, batch, loss_fn, config, algorithm


# ---------------------------------------------------------------- implementations


class TextbookConv4(torch.nn.Module):
    """Finn et al.'s Conv4 as most MAML code writes it: ``torch.nn.BatchNorm2d`` with
    batch statistics, ReLU, then max-pooling, in the default memory format. Its
    parameters have the names of :class:`sklmeta.networks.Conv4`'s, so both run on
    the same weights. The baselines (plain loop, higher) use it; sklmeta uses its own
    Conv4 (same function and gradients, tested in tests/test_networks.py)."""

    def __init__(self, n_outputs=5, image_size=28, n_filters=64):
        super().__init__()
        nn = torch.nn
        blocks, channels = [], 1
        for _ in range(4):
            blocks += [nn.Conv2d(channels, n_filters, 3, padding=1),
                       nn.BatchNorm2d(n_filters, track_running_stats=False),
                       nn.ReLU(), nn.MaxPool2d(2)]
            channels = n_filters
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(n_filters * (image_size // 16) ** 2, n_outputs)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


_TEXTBOOK = {}


def textbook(module):
    """The baselines' network: the MLP itself, or :class:`TextbookConv4` for Conv4."""
    if not isinstance(module, Conv4):
        return module
    if id(module) not in _TEXTBOOK:
        device = next(module.parameters()).device
        _TEXTBOOK[id(module)] = (module, TextbookConv4().to(device).eval())
    return _TEXTBOOK[id(module)][1]



def run_sklmeta(problem, strategy, batch_norm_stats="transductive", _losses={}):
    module, params, batch, loss_fn, config, algorithm = problem
    # one loss function per problem, as the estimators do (the compiled paths cache on it)
    key = (id(module), loss_fn, batch_norm_stats)
    if key not in _losses:
        # engines before 0.2 have no batch_norm_stats (always transductive)
        extra = () if batch_norm_stats == "transductive" else (batch_norm_stats,)
        _losses[key] = _engine.make_loss(module, loss_fn, *extra)
    loss = _losses[key]
    if algorithm == "reptile":
        return _engine.reptile_direction(loss, params, {}, batch, config, strategy)[0]
    return _engine.maml_meta_gradient(loss, params, {}, batch, config, strategy)[0]


def run_checkpointed(problem, strategy):
    """sklmeta with InnerLoop(checkpoint=True): inner steps recomputed in the backward."""
    module, params, batch, loss_fn, config, algorithm = problem
    config = dataclasses.replace(config, checkpoint=True)
    return run_sklmeta((module, params, batch, loss_fn, config, algorithm), strategy)


CHECKPOINTED = {
    "sklmeta-vmap+checkpoint": lambda p: run_checkpointed(p, "vmap"),
    "sklmeta-loop+checkpoint": lambda p: run_checkpointed(p, "loop"),
}


def run_func_vmap(problem):
    """The nested-transform form: grad(vmap(grad)) (the 0.1 engine's "vmap")."""
    module, params, batch, loss_fn, config, algorithm = problem
    loss = _engine.make_loss(module, loss_fn)
    return _engine._functional_meta_gradient(loss, params, {}, batch, config)[0]


def run_plain_loop(problem):
    module, params, batch, loss_fn, config, algorithm = problem
    module = textbook(module)
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
            with torch.no_grad():  # the query loss the engine reports (meta_loss)
                loss_fn(torch.func.functional_call(module, fast, (Xq,)), yq)
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
    module = textbook(module)
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


def higher_available():
    try:
        import higher  # noqa: F401
    except ImportError:
        return False
    return True


SUPPORT_STATS = "sklmeta-loop, support statistics"


def implementations(config, compile=False):
    net_kind, _, _, algorithm, _ = CONFIGS[config]
    impls = {
        "sklmeta-vmap": lambda p: run_sklmeta(p, "vmap"),
        "sklmeta-loop": lambda p: run_sklmeta(p, "loop"),
    }
    # engines before 0.2 have neither: their "vmap" is the nested form, no compilation
    if net_kind == "mlp" and algorithm == "maml" and hasattr(_engine, "_functional_meta_gradient"):
        impls["sklmeta-func-vmap"] = run_func_vmap
    if compile and "vmap+compile" in getattr(_engine, "STRATEGIES", ()):
        strategy = "vmap+compile" if net_kind == "mlp" else "loop+compile"
        impls[f"sklmeta-{strategy}"] = lambda p: run_sklmeta(p, strategy)
    if net_kind == "conv" and hasattr(_engine, "TaskLoss"):
        # the estimators' default since 0.2: query images normalised with the support
        # set's BatchNorm statistics (another objective: its gradient is not comparable)
        impls[SUPPORT_STATS] = lambda p: run_sklmeta(p, "loop", "support")
    impls["plain-loop"] = run_plain_loop
    if algorithm == "maml" and higher_available():
        impls["higher"] = run_higher
    return impls


# ---------------------------------------------------------------- measurement


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def count_flops(problem, fn):
    """FLOPs of one meta-batch (matmuls and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(problem)
    return counter.get_total_flops()


def matmul_gflops(device, n=1024, reps=10):
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def _timed(fn, problem, device, calls):
    sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn(problem)
    sync(device)
    return (time.perf_counter() - start) / calls


def time_config(config, reps, device="cpu", compile=False, min_time=0.2):
    problem = make_problem(config, device=device)
    n_tasks = CONFIGS[config][4]
    impls = implementations(config, compile)
    reference = run_plain_loop(problem)
    diffs, warmup, calls = {}, {}, {}
    for name, fn in impls.items():  # warm-up (compilation), and the gradient check
        start = time.perf_counter()
        grads = fn(problem)
        sync(device)
        warmup[name] = time.perf_counter() - start
        diffs[name] = max((grads[k] - reference[k]).abs().max().item() for k in reference)
        once = _timed(fn, problem, device, 1)
        calls[name] = max(1, min(50, int(min_time / max(once, 1e-6))))
    # Paths that strategy="auto" rejects for this network and that hold GBs (vmapped
    # convolutions) are timed after the others: their allocations change the state of
    # the C allocator for whatever runs next, which would bias the interleaved timings.
    late = [n for n in impls if n == "sklmeta-vmap" and CONFIGS[config][0] == "conv"]
    times = {name: [] for name in impls}
    names = [n for n in impls if n not in late]
    for rep in range(reps):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            times[name].append(_timed(impls[name], problem, device, calls[name]))
    for name in late:
        for rep in range(2):
            times[name].append(_timed(impls[name], problem, device, calls[name]))
    module = problem[0]
    auto = _engine.choose_strategy("auto", module, torch.device(device),
                                   second_order=not problem[4].first_order, n_tasks=n_tasks)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    flops = count_flops(problem, run_plain_loop)
    row = {
        "config": config, "n_tasks": n_tasks, "auto": f"sklmeta-{auto}",
        "ms_per_batch": {n: 1e3 * t for n, t in median.items()},
        "tasks_per_s": {n: n_tasks / t for n, t in median.items()},
        "ratio_vs_plain_loop": {n: median["plain-loop"] / t for n, t in median.items()},
        "max_abs_grad_diff": diffs,
        "spread": {n: (max(ts) - min(ts)) / statistics.median(ts) for n, ts in times.items()},
        "gflop_per_batch": flops / 1e9,
        "gflops_per_s": {n: flops / t / 1e9 for n, t in median.items()},
        "first_call_s": {n: warmup[n] for n in impls if n.endswith("compile")},
        "timed_after": late,
    }
    return row


# ---------------------------------------------------------------- memory (subprocess)


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


def memory_cell_here(config, impl, device, steps=None, first_order=None, compile=False):
    """Peak memory (MiB) of one call beyond what is resident before it; run in a fresh process."""
    problem = make_problem(config, device=device, steps=steps, first_order=first_order)
    fn = {**implementations(config, compile), **CHECKPOINTED}[impl]
    fn(problem)  # warm-up: caches, compilation
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn(problem)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        base = _rss_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark VmHWM to the current RSS
        fn(problem)
        return (_rss_kib("VmHWM") - base) / 1024
    except OSError:  # no /proc: peak RSS of the whole process (includes the warm-up)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_cell(config, impl, device, steps=None, first_order=None, compile=False):
    args = [sys.executable, os.path.abspath(__file__), "--_memory-cell", config, impl,
            "--device", device, "--threads", str(torch.get_num_threads())]
    if steps is not None:
        args += ["--_steps", str(steps)]
    if first_order is not None:
        args += ["--_first-order", str(int(first_order))]
    if compile:
        args.append("--compile")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return float("nan")
    return float(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- estimator overhead


def estimator_overhead(n_small=20, n_large=220, reps=3):
    """Per-iteration time of MAMLRegressor.meta_fit against the bare engine call."""
    import numpy as np

    from sklmeta import MAMLRegressor
    from sklmeta.tasks import SinusoidTasks

    def fit(n):
        start = time.perf_counter()
        MAMLRegressor(max_iter=n, device="cpu", random_state=0).meta_fit(SinusoidTasks())
        return time.perf_counter() - start

    problem = make_problem("mlp-1step-2nd")
    module, params, batch, loss_fn, config, _ = problem
    loss = _engine.make_loss(module, loss_fn)
    p = {k: v.clone() for k, v in params.items()}
    optimizer = torch.optim.Adam(list(p.values()), lr=1e-3)
    tasks, rng = SinusoidTasks(), np.random.default_rng(0)

    def engine_iteration():
        grads, losses, norms = _engine.maml_meta_gradient(loss, p, {}, batch, config, "vmap")
        for k, v in p.items():
            v.grad = grads[k]
        optimizer.step()

    def sample_iteration():
        b = tasks.sample(25, random_state=rng)
        tuple(torch.as_tensor(np.asarray(a)) for a in b.arrays())

    rows = {"meta_fit": [], "engine + Adam": [], "sampling + to tensors": []}
    fit(n_small)
    for _ in range(reps):
        rows["meta_fit"].append((fit(n_large) - fit(n_small)) / (n_large - n_small))
        for name, fn in (("engine + Adam", engine_iteration),
                         ("sampling + to tensors", sample_iteration)):
            start = time.perf_counter()
            for _ in range(n_large - n_small):
                fn()
            rows[name].append((time.perf_counter() - start) / (n_large - n_small))
    return {k: 1e3 * statistics.median(v) for k, v in rows.items()}


# ---------------------------------------------------------------- report


def print_row(row):
    print(f"\n#### {row['config']} ({row['n_tasks']} tasks, {row['gflop_per_batch']:.3g} "
          f"GFLOP per meta-batch; auto picks {row['auto']})\n")
    mem = "peak_mib" in row
    print("| implementation | ms / batch | tasks/s | vs plain loop | GFLOP/s | max abs dgrad "
          "| spread |" + (" peak MiB |" if mem else ""))
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if mem else ""))
    for name, tps in row["tasks_per_s"].items():
        label = f"**{name}** (auto)" if name == row["auto"] else name
        if name in row.get("timed_after", ()):
            label += " (timed after the others, 2 reps)"
        cells = [label, f"{row['ms_per_batch'][name]:.2f}", f"{tps:,.1f}",
                 f"{row['ratio_vs_plain_loop'][name]:.2f}x",
                 f"{row['gflops_per_s'][name]:.3g}",
                 "other objective" if name == SUPPORT_STATS
                 else f"{row['max_abs_grad_diff'][name]:.1e}",
                 f"{row['spread'][name]:.0%}"]
        if mem:
            cells.append(f"{row['peak_mib'].get(name, float('nan')):,.1f}")
        print("| " + " | ".join(cells) + " |")
    for name, seconds in row["first_call_s"].items():
        print(f"\n{name}: first call (compilation) {seconds:.1f} s")


def print_scaling(rows):
    rows = [r for r in rows if r["config"] in SCALING]
    if len(rows) < 2:
        return
    rows.sort(key=lambda r: r["n_tasks"])
    print("\n### Meta-batch scaling (sinusoid MLP, 1 step, second order): ms per meta-batch\n")
    names = [n for n in rows[0]["ms_per_batch"] if not n.endswith("compile")]
    print("| tasks | " + " | ".join(names) + " | vmap tasks/s | vmap vs plain loop |")
    print("|---:|" + "---:|" * (len(names) + 2))
    for r in rows:
        cells = [str(r["n_tasks"])] + [f"{r['ms_per_batch'][n]:.2f}" for n in names]
        cells += [f"{r['tasks_per_s']['sklmeta-vmap']:,.0f}",
                  f"{r['ratio_vs_plain_loop']['sklmeta-vmap']:.2f}x"]
        print("| " + " | ".join(cells) + " |")


def print_auto_check(rows):
    print("\n### Does strategy='auto' pick the faster eager path?\n")
    print("| configuration | vmap tasks/s | loop tasks/s | auto | faster | ok |")
    print("|---|---:|---:|---|---|---|")
    for r in rows:
        v, lo = r["tasks_per_s"]["sklmeta-vmap"], r["tasks_per_s"]["sklmeta-loop"]
        faster = "sklmeta-vmap" if v >= lo else "sklmeta-loop"
        close = min(v, lo) / max(v, lo) > 0.9  # within noise
        ok = "yes" if faster == r["auto"] else ("within 10%" if close else "NO")
        print(f"| {r['config']} | {v:,.1f} | {lo:,.1f} | {r['auto'][8:]} | {faster[8:]} | {ok} |")


def print_memory_steps(table):
    print("\n### Peak memory (MiB) against inner steps, one meta-batch\n")
    print("| configuration | strategy | order | " + " | ".join(
        f"{s} steps" for s in sorted({s for (_, _, _, s) in table})) + " |")
    keys = sorted({k[:3] for k in table})
    steps = sorted({s for (_, _, _, s) in table})
    print("|---|---|---|" + "---:|" * len(steps))
    for key in keys:
        cells = [f"{table.get(key + (s,), float('nan')):,.1f}" for s in steps]
        print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small configurations only")
    parser.add_argument("--configs", nargs="*", choices=sorted(CONFIGS))
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 7, 3 quick)")
    parser.add_argument("--compile", action="store_true", help="add the +compile strategies")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)  # the default
    parser.add_argument("--no-estimator", action="store_true", help="skip meta_fit overhead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--tuned-malloc", action="store_true",
                        help="rerun under glibc malloc settings that keep freed memory "
                        "for reuse (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_)")
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument("--_memory-cell", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_first-order", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tuned_malloc and os.environ.get("MALLOC_MMAP_THRESHOLD_") != TUNED_MALLOC[
            "MALLOC_MMAP_THRESHOLD_"]:
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **TUNED_MALLOC))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._memory_cell:
        fo = None if args._first_order is None else bool(args._first_order)
        print(memory_cell_here(*args._memory_cell, args.device, args._steps, fo, args.compile))
        return

    configs = args.configs or (QUICK if args.quick else list(CONFIGS))
    reps = args.reps or (3 if args.quick else 7)
    started = time.perf_counter()
    load_before = os.getloadavg()
    ref = matmul_gflops(args.device)
    print(f"## bench_meta: torch {torch.__version__}, {args.device}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, higher {'yes' if higher_available() else 'not installed'}")
    malloc = {k: os.environ[k] for k in TUNED_MALLOC if k in os.environ}
    print(f"\nfp32 1024x1024 matmul: {ref:.0f} GFLOP/s; load average at start "
          f"{load_before[0]:.2f}; malloc settings {malloc or 'default'}")
    results = {"device": args.device, "torch": torch.__version__, "malloc": malloc,
               "threads": torch.get_num_threads(), "matmul_gflops": ref, "rows": []}
    for config in configs:
        conv = CONFIGS[config][0] == "conv"
        row = time_config(config, max(3, reps // 2) if conv else reps, args.device,
                          args.compile and (config in ("mlp-1step-2nd", "mlp-5step-2nd",
                                                       "mlp-1step-1st", "conv4-5w1s-2nd")))
        if not args.no_memory and config not in SCALING[:3]:
            row["peak_mib"] = {
                impl: memory_cell(config, impl, args.device, compile=impl.endswith("compile"))
                for impl in row["tasks_per_s"]
            }
        results["rows"].append(row)
        print_row(row)
    print_scaling(results["rows"])
    print_auto_check(results["rows"])

    if not args.no_memory and not args.quick:
        table = {}
        for kind, config, strategy in (("mlp", "mlp-1step-2nd", "sklmeta-vmap"),
                                       ("mlp", "mlp-1step-2nd", "sklmeta-vmap+checkpoint"),
                                       ("mlp", "mlp-1step-2nd", "plain-loop"),
                                       ("conv", "conv4-5w1s-2nd", "sklmeta-loop"),
                                       ("conv", "conv4-5w1s-2nd", "sklmeta-loop+checkpoint"),
                                       ("conv", "conv4-5w1s-2nd", "plain-loop")):
            if config not in configs:
                continue
            # checkpointing only changes second-order meta-gradients
            for first_order in (False,) if "checkpoint" in strategy else (False, True):
                for steps in MEMORY_STEPS[kind]:
                    table[(config.split("-")[0], strategy, "1st" if first_order else "2nd",
                           steps)] = memory_cell(config, strategy, args.device, steps,
                                                 first_order)
        if table:
            print_memory_steps(table)
            results["memory_vs_steps"] = {"|".join(map(str, k)): v for k, v in table.items()}

    if not args.no_estimator and args.device == "cpu":
        overhead = estimator_overhead(n_large=120 if args.quick else 220)
        results["estimator_ms_per_iteration"] = overhead
        print("\n### MAMLRegressor.meta_fit against the bare engine (sinusoid, 25 tasks, "
              "1 step, 2nd order)\n")
        print("| per meta-iteration | ms |")
        print("|---|---:|")
        for name, ms in overhead.items():
            print(f"| {name} | {ms:.2f} |")

    load_after = os.getloadavg()
    print(f"\nload average at end {load_after[0]:.2f}; total {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
