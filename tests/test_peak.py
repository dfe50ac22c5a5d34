"""pgdbench peak: every BLAS measured, the best named, the cores' theoretical limit, and the peak's provenance."""
from __future__ import annotations

import json

import pytest

from pgdbench.harness import peak


def facts(vendor, family, model, flags, name="x", cores=2):
    return {"vendor": vendor, "family": family, "model": model, "flags": set(flags.split()), "model_name": name,
            "cores": cores}


@pytest.mark.parametrize("f, bits, units, latency", [
    (facts("AuthenticAMD", 0x19, 0x01, "avx2 fma"), 256, 2, 4),                       # Zen 3 (this machine)
    (facts("AuthenticAMD", 0x19, 0x11, "avx2 fma avx512f"), 512, 1, 4),               # Zen 4
    (facts("AuthenticAMD", 0x17, 0x01, "avx2 fma"), 256, 1, 5),                       # Zen 1
    (facts("AuthenticAMD", 0x17, 0x31, "avx2 fma"), 256, 2, 5),                       # Zen 2
    (facts("GenuineIntel", 6, 0x8F, "avx2 fma avx512f", "Intel(R) Xeon(R) Processor"), 512, 2, 4),  # SPR
    (facts("GenuineIntel", 6, 0x55, "avx2 fma avx512f", "Intel(R) Xeon(R) Silver 4114"), 512, 1, 4),
    (facts("GenuineIntel", 6, 0x3F, "avx2 fma", "Intel(R) Xeon(R) E5-2680 v3"), 256, 2, 5),        # Haswell
    (facts("GenuineIntel", 6, 0x0F, "sse2"), 128, 1, 4),
])
def test_vector_units_by_microarchitecture(f, bits, units, latency):
    u = peak.vector_units(f)
    assert (u["vector_bits"], u["fma_units"], u["fma_latency"]) == (bits, units, latency) and u["source"]


def test_theoretical_limit_is_lanes_times_units_times_two_times_clock(monkeypatch):
    f = {**facts("AuthenticAMD", 0x19, 0x01, "avx2 fma"), "mhz": 2500.0}
    monkeypatch.setattr(peak, "measured_clock_ghz", lambda latency, repeats=5: 3.0)
    t = peak.theoretical(f)
    assert t["clock_ghz"] == 3.0 and "measured" in t["clock_source"]
    assert t["per_core"]["float32"]["gflops"] == 8 * 2 * 2 * 3.0
    assert t["per_core"]["float64"]["gflops"] == 4 * 2 * 2 * 3.0
    # the higher clock is the bound: read above measured (a chain slowed down) → read, and said so
    monkeypatch.setattr(peak, "measured_clock_ghz", lambda latency, repeats=5: 2.0)
    monkeypatch.setattr(peak, "read_clock_ghz", lambda f: (2.5, "/proc/cpuinfo cpu MHz"))
    t = peak.theoretical(f)
    assert t["clock_ghz"] == 2.5 and t["clock_source"].startswith("read: /proc/cpuinfo")


def test_measure_names_the_best_blas_and_stays_under_the_limit():
    r = peak.measure([1], size=192, repeats=2)
    rates = r["gemm"]["float32/1"]
    assert "openblas" in rates or "numpy" in rates
    assert r["best"]["float32/1"] == max(rates, key=rates.get) and r["gflops"]["float32/1"] == max(rates.values())
    assert r["gflops"]["float32/1"] <= r["theoretical_gflops"]["float32/1"]
    assert r["machine"]["cpu_model"] and r["machine"]["cores"] >= 1 and r["date"]


def _store(tmp_path, monkeypatch, key, machine, gflops=100.0):
    monkeypatch.setenv("PGDBENCH_CACHE", str(tmp_path))
    entry = {"machine": machine, "date": "2026-12-01T00:00:00+00:00", "gflops": {"float32/2": gflops},
             "best": {"float32/2": "mkl"}, "theoretical_gflops": {"float32/2": 200.0}}
    (tmp_path / "peak.json").write_text(json.dumps({key: entry}))


def test_a_record_carries_its_peak_and_where_it_comes_from(tmp_path, monkeypatch):
    here = peak.this_machine()
    _store(tmp_path, monkeypatch, peak.machine_key(), here)
    f = peak.fraction_fields(50.0, "float32", 2)
    assert f["fraction_of_peak"] == 0.5 and f["fraction_of_theoretical"] == 0.25
    assert f["peak_provider"] == "mkl" and f["peak_from"] == "this machine" and "peak_note" not in f
    f = peak.fraction_fields(120.0, "float32", 2)
    assert f["fraction_of_peak"] == 1.2 and "measured low" in f["peak_note"]


def test_a_peak_from_another_host_or_none_is_said(tmp_path, monkeypatch):
    here = peak.this_machine()
    _store(tmp_path, monkeypatch, "elsewhere|" + here["cpu_model"], {**here, "host": "elsewhere"})
    f = peak.fraction_fields(50.0, "float32", 2)
    assert f["fraction_of_peak"] == 0.5 and "another host with the same CPU model" in f["peak_note"]
    _store(tmp_path, monkeypatch, "elsewhere|Other CPU", {"host": "elsewhere", "cpu_model": "Other CPU", "cores": 64})
    f = peak.fraction_fields(50.0, "float32", 2)
    assert f["fraction_of_peak"] is None and "no peak measured on this machine" in f["peak_note"]


def test_the_report_says_where_the_peak_comes_from():
    from pgdbench.reporting.summary import peak_lines

    assert any("No peak" in line for line in peak_lines([{"net": "n"}]))
    rows = [{"peak_gflops": 100, "peak_machine": "AMD EPYC", "peak_date": "2026-12-01", "peak_from":
             "another host with the same CPU model and cores (h)", "peak_provider": "mkl", "fraction_of_peak": 1.1}]
    text = "\n".join(peak_lines(rows))
    assert "best BLAS: mkl" in text and "from another host" in text and "(!)" in text
