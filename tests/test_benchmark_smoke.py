"""The benchmark script runs, and every implementation computes the same meta-gradient.

Timings are not asserted (speed is measured in benchmarks/, never in tests).
"""

import importlib.util
import pathlib

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_meta.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_meta", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("config", ["mlp-batch-4", "mlp-reptile-5step"])
def test_benchmark_runs_and_implementations_agree(bench, config):
    row = bench.time_config(config, reps=1)
    assert {"sklmeta-vmap", "sklmeta-loop", "plain-loop"} <= set(row["tasks_per_s"])
    assert row["auto"] == "sklmeta-vmap"
    for name, diff in row["max_abs_grad_diff"].items():  # float32, same weights and tasks
        assert diff < 1e-4, (name, diff)
    assert all(t > 0 for t in row["tasks_per_s"].values())
