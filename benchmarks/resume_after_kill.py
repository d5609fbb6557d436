"""A meta-training run killed with SIGKILL and resumed from its checkpoint, against the
same run uninterrupted.

Three child processes run the same script: one uninterrupted, one killed with SIGKILL
(no chance to clean up) part-way, and one rerun with ``warm_start=True`` that resumes
from the checkpoint the killed one left. Prints the iteration the checkpoint held, the
largest absolute difference between the resumed and the uninterrupted parameters, and
whether they are bit-for-bit equal.

    python benchmarks/resume_after_kill.py                       # MAML, sinusoid
    python benchmarks/resume_after_kill.py --estimator MAMLPlusPlusRegressor
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def train(args):
    import sklmeta
    from sklmeta.tasks import SinusoidTasks

    torch.set_num_threads(1)
    est = getattr(sklmeta, args.estimator)(
        max_iter=args.max_iter, meta_batch_size=25, random_state=0, device="cpu",
        checkpoint_path=args.checkpoint, checkpoint_every=args.checkpoint_every,
        warm_start=args.resume, early_stopping=args.early_stopping,
    )
    est.meta_fit(SinusoidTasks(k_support=5, k_query=10))
    torch.save({"meta_params": est.meta_params_, "n_iter": est.n_iter_,
                "meta_loss": torch.as_tensor(est.meta_history_["meta_loss"])}, args.out)


def child(args, checkpoint, out, resume=False):
    cmd = [sys.executable, __file__, "--child", "--estimator", args.estimator,
           "--max-iter", str(args.max_iter), "--checkpoint-every", str(args.checkpoint_every),
           "--checkpoint", checkpoint, "--out", out]
    cmd += ["--resume"] if resume else []
    cmd += ["--early-stopping"] if args.early_stopping else []
    return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})


def main(args):
    folder = tempfile.mkdtemp()
    ckpt = lambda name: os.path.join(folder, name)  # noqa: E731
    start = time.perf_counter()
    child(args, ckpt("whole.ckpt"), ckpt("whole.pt")).wait()
    uninterrupted = time.perf_counter() - start
    killed = child(args, ckpt("run.ckpt"), ckpt("killed.pt"))
    time.sleep(args.kill_at * uninterrupted)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run ended before it was killed"
    at = torch.load(ckpt("run.ckpt"), weights_only=True)["n_iter"]
    leftovers = [f for f in os.listdir(folder) if f.endswith(".part")]
    assert child(args, ckpt("run.ckpt"), ckpt("resumed.pt"), resume=True).wait() == 0
    whole = torch.load(ckpt("whole.pt"), weights_only=True)
    resumed = torch.load(ckpt("resumed.pt"), weights_only=True)
    diff = max((resumed["meta_params"][k] - v).abs().max().item()
               for k, v in whole["meta_params"].items())
    equal = all(torch.equal(resumed["meta_params"][k], v) for k, v in whole["meta_params"].items())
    print(f"{args.estimator}, sinusoid, max_iter={args.max_iter}, "
          f"checkpoint_every={args.checkpoint_every}"
          + (", early_stopping" if args.early_stopping else ""))
    print(f"uninterrupted run: {uninterrupted:.1f} s, {whole['n_iter']} iterations")
    print(f"killed (SIGKILL) after {args.kill_at * uninterrupted:.1f} s; its checkpoint held "
          f"iteration {at}; temporary files left: {len(leftovers)}")
    print(f"resumed run ends at iteration {resumed['n_iter']}: max |difference| = {diff:.3g}, "
          f"bit for bit: {equal}, meta-loss history equal: "
          f"{torch.equal(resumed['meta_loss'], whole['meta_loss'])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimator", default="MAMLRegressor")
    parser.add_argument("--max-iter", type=int, default=3000)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--kill-at", type=float, default=0.6,
                        help="kill after this share of the uninterrupted run's time")
    parser.add_argument("--early-stopping", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    train(args) if args.child else main(args)
