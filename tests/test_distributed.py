"""Data-parallel meta-training under torchrun (gloo, 2 processes on the CPU)."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist

from sklmeta._distributed import Processes
from sklmeta.tasks import SinusoidTasks

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
from data_parallel_meta_fit import make  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def test_processes_share_a_meta_batch_in_contiguous_slices():
    for n_tasks, world in [(5, 2), (4, 4), (25, 3)]:
        shares = [Processes(r, world).share(n_tasks) for r in range(world)]
        assert [i for s in shares for i in range(n_tasks)[s]] == list(range(n_tasks))
    with pytest.raises(ValueError, match="meta_batch_size"):
        Processes(0, 3).share(2)


def test_two_processes_end_with_identical_parameters_equal_to_one_process(tmp_path):
    names = ["MAMLRegressor", "ReptileRegressor"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(SCRIPTS / "data_parallel_meta_fit.py"), str(tmp_path), ",".join(names),
         str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tasks = SinusoidTasks(k_support=5, k_query=5)
    for name in names:
        ranks = [torch.load(tmp_path / f"{name}-rank{r}.pt", weights_only=False)
                 for r in (0, 1)]
        assert [r["world_size"] for r in ranks] == [2, 2]
        for k, v in ranks[0]["meta_params"].items():  # bit for bit across processes
            assert torch.equal(v, ranks[1]["meta_params"][k]), (name, k)
        # and a single process with the same random_state and meta-batch, up to the
        # order of the floating-point sums (the tasks are split 2 + 3)
        single = make(name).meta_fit(tasks)
        assert single.world_size_ == 1
        for k, v in single.meta_params_.items():
            torch.testing.assert_close(ranks[0]["meta_params"][k], v, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ranks[0]["meta_loss"], single.meta_history_["meta_loss"],
                                   rtol=1e-5)
        # only rank 0 writes the checkpoint; it is the final state
        payload = torch.load(tmp_path / f"{name}.ckpt", weights_only=True)
        assert payload["n_iter"] == 12
        for k, v in ranks[0]["meta_params"].items():
            assert torch.equal(payload["meta_params"][k], v)
