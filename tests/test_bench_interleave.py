"""bench --interleave: configurations measured in one process, epoch by epoch in turn, and ratios paired by round."""
from __future__ import annotations

import json

import pytest

from pgdbench.data import load_dataset
from pgdbench.harness.grid import Config, interleave_groups, measure_interleaved
from pgdbench.harness.speedups import paired_ratios
from tests.test_cli import pgdbench

NET = "784,16,10"


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic:300", seed=0)


def test_every_configuration_gets_one_epoch_per_round_in_rotated_order(data):
    configs = [Config("numpy", NET, 50, 1), Config("threads", NET, 50, 1), Config("numpy", NET, 50, 2)]
    seen = []
    records = measure_interleaved(configs, data, rounds=3, on_epoch=lambda c, r, s: seen.append((r, c.backend,
                                                                                                  c.threads)))
    assert [r["status"] for r in records] == ["ok"] * 3
    assert [(r["backend"], r["threads"]) for r in records] == [("numpy", 1), ("threads", 1), ("numpy", 2)]
    assert all(r["interleaved"] and len(r["epoch_seconds"]) == 3 and r["epochs"] == 3 for r in records)
    # round r starts one configuration later than round r - 1
    assert seen == [(1, "numpy", 1), (1, "threads", 1), (1, "numpy", 2),
                    (2, "threads", 1), (2, "numpy", 2), (2, "numpy", 1),
                    (3, "numpy", 2), (3, "numpy", 1), (3, "threads", 1)]


def test_a_failing_configuration_is_recorded_and_the_others_still_run(data):
    configs = [Config("numpy", NET, 50, 1), Config("threads", NET, 50, 1, options=(("reduce", "nowhere"),))]
    records = measure_interleaved(configs, data, rounds=2)
    assert records[0]["status"] == "ok"
    assert records[1]["status"] == "error" and "reduce" in records[1]["reason"]


def test_paired_ratios_are_taken_round_by_round():
    def rec(backend, times, interleaved=True):
        return {"status": "ok", "backend": backend, "net": "n", "batch_size": 8, "threads": 2, "dtype": "float32",
                "options": {}, "epoch_seconds": times, "seconds_per_epoch": sorted(times)[len(times) // 2],
                "interleaved": interleaved}

    base, fast = rec("torch-nn", [2.0, 4.0, 3.0]), rec("numpy", [1.0, 2.0, 1.0])
    paired_ratios([base, fast], "torch-nn")
    assert fast["ratio_vs"]["torch-nn"] == 2.0 and fast["ratio_vs_range"]["torch-nn"] == (2.0, 3.0)
    assert base["ratio_vs"]["torch-nn"] == 1.0 and base["ratio_vs_range"]["torch-nn"] == (1.0, 1.0)
    # not interleaved: the ratio of the medians, and no range
    base, slow = rec("torch-nn", [2.0], False), rec("numpy", [4.0], False)
    paired_ratios([base, slow], "torch-nn")
    assert slow["ratio_vs"]["torch-nn"] == 0.5 and slow["ratio_vs_range"]["torch-nn"] is None


def test_groups_are_net_batch_and_dtype():
    configs = [Config("numpy", "a", 8, 1), Config("numpy", "a", 16, 1), Config("threads", "a", 8, 2),
               Config("numpy", "a", 8, 1, "float64")]
    assert interleave_groups(configs) == [[configs[0], configs[2]], [configs[1]], [configs[3]]]


def test_bench_interleave_prints_the_ratio_to_the_baseline(tmp_path):
    results = tmp_path / "b.jsonl"
    out = pgdbench("bench", "--interleave", "--epochs", "2", "--baseline", "threads", "--dataset", "synthetic:300",
                   "--net", NET, "--batch-size", "50", "--threads", "1", "--results", str(results), "--quiet").stdout
    assert "interleaved in 2 rounds" in out and "× threads" in out
    bench = [json.loads(line) for line in results.read_text().splitlines()]
    bench = [r for r in bench if r["kind"] == "bench"]
    assert {r["backend"] for r in bench} == {"numpy", "threads"}
    assert all(r["interleaved"] and len(r["epoch_seconds"]) == 2 for r in bench)


def test_each_backend_of_a_run_gets_the_options_it_declares():
    from pgdbench.errors import UsageError
    from pgdbench.harness.grid import expand

    configs = expand(["numpy", "torch-nn"], ["net1h"], [32], [2], options={"gemm": "numpy"})
    assert Config("numpy", "net1h", 32, 2, options=(("gemm", "numpy"),)) in configs
    assert Config("torch-nn", "net1h", 32, 2) in configs          # torch-nn has no gemm option: runs as it is
    with pytest.raises(UsageError, match="no backend among numpy has option colour"):
        expand(["numpy"], ["net1h"], [32], [1], options={"colour": "red"})


def test_a_backend_can_carry_options_of_its_own():
    from pgdbench.errors import UsageError
    from pgdbench.harness.grid import expand, split_backend

    assert split_backend("threads[reduce=rows, gemm=numpy]") == ("threads", {"reduce": "rows", "gemm": "numpy"})
    configs = expand(["numpy", "numpy[gemm=numpy,elementwise=numpy]"], ["net1h"], [32], [2],
                     options={"elementwise": "numba"})
    assert Config("numpy", "net1h", 32, 2, options=(("elementwise", "numba"),)) in configs
    assert Config("numpy", "net1h", 32, 2, options=(("elementwise", "numpy"), ("gemm", "numpy"))) in configs
    for bad in ("numpy[gemm]", "numpy[gemm=numpy", "numpy[tile=3]"):
        with pytest.raises(UsageError):
            expand([bad], ["net1h"], [32], [1])


def test_the_report_tabulates_series_against_the_baselines():
    from pgdbench.reporting.summary import comparison_tables

    def rec(backend, gflops, times, options=None):
        return {"backend": backend, "net": "net1h", "batch_size": 32, "threads": 2, "dtype": "float32",
                "options": options or {}, "gflops": gflops, "epoch_seconds": times, "interleaved": True,
                "seconds_per_epoch": sorted(times)[1], "status": "ok"}

    rows = [rec("torch-nn", 100, [2, 2, 2]), rec("torch", 150, [1.5, 1.4, 1.3]), rec("numpy", 200, [1, 1, 1]),
            rec("numpy", 120, [1.8, 1.6, 1.7], {"gemm": "numpy"})]
    text = "\n".join(comparison_tables(rows, ["torch-nn", "torch"]))
    assert "### 2 threads, float32" in text and "`numpy [gemm=numpy]`" in text
    assert "| net1h | 32 | 100 (1.00, 0.70) | 150 (1.43, 1.00) | 200 (2.00, 1.40) | 120 (1.18, 0.83) |" in text
    assert comparison_tables(rows, ["jax"]) == []
