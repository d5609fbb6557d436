"""Meta-fit under torchrun and save what each process ends with (tests/test_distributed.py).

Usage: torchrun --nproc_per_node=N data_parallel_meta_fit.py OUT_DIR ESTIMATOR[,ESTIMATOR...]
[CHECKPOINT_DIR]
"""

import os
import sys

import torch

import sklmeta
from sklmeta.tasks import SinusoidTasks


def make(name, **kwargs):
    extra = {"meta_step_size_final": 0.0} if name.startswith("Reptile") else {}
    return getattr(sklmeta, name)(
        hidden_layer_sizes=(16, 16), max_iter=12, meta_batch_size=5, random_state=0,
        device="cpu", **extra, **kwargs)


if __name__ == "__main__":
    out, names = sys.argv[1], sys.argv[2].split(",")
    rank = int(os.environ.get("RANK", 0))
    for name in names:
        kwargs = ({"checkpoint_path": os.path.join(sys.argv[3], f"{name}.ckpt"),
                   "checkpoint_every": 5} if len(sys.argv) > 3 else {})
        est = make(name, **kwargs).meta_fit(SinusoidTasks(k_support=5, k_query=5))
        torch.save({"meta_params": est.meta_params_, "meta_loss": est.meta_history_["meta_loss"],
                    "world_size": est.world_size_, "n_iter": est.n_iter_},
                   os.path.join(out, f"{name}-rank{rank}.pt"))
