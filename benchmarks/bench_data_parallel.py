"""Data-parallel meta-training under torchrun against one process, same meta-batches.

Conv4 MAML (second order, one inner step, ``strategy="loop"``) on Omniglot 5-way 1-shot
episodes (5 query images per class) of ``../shared/data/omniglot``, meta-batch 16.
Runs one process with 1 thread, then ``torchrun --nproc_per_node=N`` with 1 thread
each, and reports seconds per meta-iteration (mean over the iterations after the
first ``--warmup``, from ``meta_history_["wall_time"]``), the speed-up, and the largest
difference between the parameters the two runs end with.

    python benchmarks/bench_data_parallel.py                 # 2 processes x 1 thread
    python benchmarks/bench_data_parallel.py --nproc 4 --device cuda
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "omniglot"


def worker(args):
    from sklmeta import MAMLClassifier
    from sklmeta.datasets import load_omniglot
    from sklmeta.tasks import ImageTasks

    torch.set_num_threads(1)
    data = load_omniglot(args.data)
    tasks = ImageTasks(data.images, data.target, groups=data.alphabet)
    train, _ = tasks.split(3, by="group", random_state=0)
    est = MAMLClassifier(inner_lr=0.4, inner_steps=1, meta_lr=1e-3, strategy=args.strategy,
                         meta_batch_size=args.meta_batch, max_iter=args.max_iter,
                         device=args.device, random_state=0)
    est.meta_fit(train.subset(n_way=5, k_shot=1, k_query=5))
    if int(os.environ.get("RANK", 0)) == 0:
        torch.save({"meta_params": est.meta_params_, "world_size": est.world_size_,
                    "meta_loss": torch.as_tensor(est.meta_history_["meta_loss"]),
                    "wall_time": torch.as_tensor(est.meta_history_["wall_time"])}, args.out)


def per_iteration(result, warmup):
    wall = result["wall_time"].numpy()
    return np.diff(wall[warmup - 1:]).mean()


def main(args):
    folder = Path(tempfile.mkdtemp())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = [str(Path(__file__).resolve()), "--worker", "--data", str(args.data),
              "--max-iter", str(args.max_iter), "--meta-batch", str(args.meta_batch),
              "--device", args.device]  # --strategy comes after: the last one counts
    subprocess.run([sys.executable, *common, "--out", str(folder / "one.pt")], env=env,
                   check=True)
    # the same process count with the other eager strategy: how far apart float
    # reassociation alone takes two runs (the reference for the difference below)
    subprocess.run([sys.executable, *common, "--strategy", "vmap", "--out",
                    str(folder / "vmap.pt")], env=env, check=True)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={args.nproc}", *common, "--out",
                    str(folder / "many.pt")], env=env, check=True)
    one = torch.load(folder / "one.pt", weights_only=True)
    vmap = torch.load(folder / "vmap.pt", weights_only=True)
    many = torch.load(folder / "many.pt", weights_only=True)
    t1, tn = per_iteration(one, args.warmup), per_iteration(many, args.warmup)
    diffs = {k: ((many["meta_params"][k] - v).abs().max().item(),
                 (vmap["meta_params"][k] - v).abs().max().item())
             for k, v in one["meta_params"].items()}
    loss_diff = (many["meta_loss"] - one["meta_loss"]).abs().max().item()
    loss_diff_vmap = (vmap["meta_loss"] - one["meta_loss"]).abs().max().item()
    print(f"Conv4 MAML, Omniglot 5-way 1-shot (5 query/class), meta-batch {args.meta_batch}, "
          f"strategy=loop, device={args.device}, {args.max_iter} iterations "
          f"(timed after {args.warmup})")
    print(f"  1 process x 1 thread:  {t1:.3f} s/iteration")
    print(f"  {many['world_size']} processes x 1 thread: {tn:.3f} s/iteration "
          f"(speed-up {t1 / tn:.2f}x)")
    first = (many["meta_loss"][:3] - one["meta_loss"][:3]).abs().tolist()
    print(f"  meta-loss history, max |difference| from 1 process (loop): {args.nproc} "
          f"processes {loss_diff:.3g} (first 3 iterations: "
          + ", ".join(f"{d:.2g}" for d in first) + f"); 1 process, strategy=vmap "
          f"{loss_diff_vmap:.3g}")
    print(f"  parameters after {args.max_iter} iterations, max |difference| from 1 process "
          f"(loop):")
    print(f"    {'tensor':<24} {f'{args.nproc} processes':>12} {'vmap':>12}")
    for k, (d, dv) in diffs.items():
        print(f"    {k:<24} {d:>12.3g} {dv:>12.3g}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--meta-batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--strategy", default="loop", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    worker(args) if args.worker else main(args)
