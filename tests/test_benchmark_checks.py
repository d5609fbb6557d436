"""Smoke tests of benchmarks/: the float64 gradient check and the memory measurement.

``tests/test_benchmark_smoke.py`` runs the throughput tables on small configurations;
this file runs the rest of the machinery on the smallest ones. No timing is asserted
(DESIGN.md: speed is measured in benchmarks/, not in tests).
"""

import importlib.util
import math
import pathlib

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smallest_configuration_all_implementations_agree():
    bench = load("bench_meta")
    row = bench.time_config("mlp-batch-1", reps=1, min_time=0.0)
    assert row["auto"] == "sklmeta-loop"  # one task: the loop is cheaper (MIN_VMAP_TASKS)
    assert {"sklmeta-vmap", "sklmeta-loop", "plain-loop"} <= set(row["tasks_per_s"])
    for name, diff in row["max_abs_grad_diff"].items():  # float32, same weights and tasks
        assert diff < 1e-4, (name, diff)
    assert row["gflop_per_batch"] > 0


def test_memory_cell_runs_in_a_fresh_subprocess():
    bench = load("bench_meta")
    mib = bench.memory_cell("mlp-batch-1", "sklmeta-vmap", "cpu")
    assert math.isfinite(mib) and mib >= 0


def test_engine_paths_agree_with_the_float64_oracle():
    checks = load("check_gradients")
    rows, ok = checks.run_checks(verbose=False, only=("mlp", "mlp, 1 task"))
    assert ok, [row for row in rows if row[2] >= checks.TOL]
    assert {"vmap", "loop", "vmap (torch.func fallback)"} <= {row[1] for row in rows}
