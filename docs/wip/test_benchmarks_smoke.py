"""Smoke test of the benchmark scripts: they run, and their gradient checks pass.

Timings are not asserted (DESIGN.md: speed is measured in benchmarks/, not tested).
"""

import importlib.util
import math
import pathlib

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load("bench_meta")


def test_smallest_configuration_runs_and_all_implementations_agree(bench):
    row = bench.time_config("mlp-batch-1", reps=1, min_time=0.0)
    names = set(row["tasks_per_s"])
    assert {"sklmeta-vmap", "sklmeta-loop", "sklmeta-func-vmap", "plain-loop"} <= names
    assert row["auto"] == "sklmeta-vmap"
    assert row["ratio_vs_plain_loop"]["plain-loop"] == pytest.approx(1.0)
    for name, diff in row["max_abs_grad_diff"].items():  # float32, same weights and tasks
        assert diff < 1e-4, (name, diff)
    assert all(t > 0 for t in row["tasks_per_s"].values())
    assert row["gflop_per_batch"] > 0


def test_reptile_configuration_runs(bench):
    row = bench.time_config("mlp-reptile-5step", reps=1, min_time=0.0)
    assert max(row["max_abs_grad_diff"].values()) < 1e-4


def test_memory_cell_in_a_subprocess(bench):
    mib = bench.memory_cell("mlp-batch-1", "sklmeta-vmap", "cpu")
    assert math.isfinite(mib) and mib >= 0


def test_engine_paths_agree_with_the_float64_oracle():
    checks = load("check_gradients")
    rows, ok = checks.run_checks(verbose=False, only=("mlp",))
    assert ok, [r for r in rows if r[2] >= checks.TOL]
    assert {path for _, path, _, _ in rows} >= {"vmap", "loop", "vmap (torch.func fallback)"}
