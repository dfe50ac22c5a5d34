"""The machine's peak: the best GEMM any BLAS the suite can call reaches here, and the cores' physical limit.

``pgdbench peak`` gives, per dtype and thread count:

* the **measured peak**: square GEMMs (n = 2048 by default, best of several
  repeats) through every BLAS the suite can call -- NumPy's bundled OpenBLAS,
  oneMKL where it is installed (:mod:`pgdbench.core.gemm`), and ``torch.mm``
  where PyTorch is -- and the best of them, with its name. A backend that runs
  on a faster BLAS than NumPy's then cannot show more than 100 % of a peak that
  only NumPy's set (what issue 12 saw: 101-104 %);
* the **theoretical limit**: threads (at most the physical cores) × vector
  lanes × FMA units per core × 2 (an FMA is two FLOPs) × clock. Vector width
  comes from the CPU's flags, FMA units per core from a small table of
  microarchitectures (each entry says where it comes from); the clock is
  measured with a chain of dependent FMAs (each waits for the previous one,
  so the chain runs at one FMA per FMA *latency*: cycles = FMAs × latency,
  timed on the thread's CPU clock so that time-slicing by other processes
  does not count) where numba is installed, and otherwise read from the CPU
  (``/sys/.../cpuinfo_max_freq``, else ``/proc/cpuinfo``'s "cpu MHz"). The
  higher of measured and read is used, so that the limit is an upper bound.
  Nothing can run above it; the gap between the measured peak and it is the
  BLAS's (and the memory system's) share.

The figures are stored in the user cache with the machine they were measured
on (host, CPU model, cores), the date and the load average at the time (a
busy machine gives a low peak). :func:`fraction_fields` gives every benchmark
record its peak with that provenance, and says so when the stored peak comes
from another machine or when there is none.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Optional

import numpy as np

from pgdbench.core import gemm
from pgdbench.core.files import atomic_write_text
from pgdbench.core.protocol import usable_cpus
from pgdbench.data.sources import cache_dir
from pgdbench.harness.machine import cpu_model

DTYPES = ("float32", "float64")


# -- the CPU ----------------------------------------------------------------------

def cpu_facts() -> dict:
    """Vendor, family, model, model name and flags of CPU 0 (/proc/cpuinfo), and the physical cores."""
    import psutil

    facts = {"vendor": "", "family": None, "model": None, "model_name": cpu_model(), "flags": set(),
             "cores": psutil.cpu_count(logical=False) or os.cpu_count() or 1}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return facts
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "vendor_id":
            facts["vendor"] = value
        elif key == "cpu family":
            facts["family"] = int(value)
        elif key == "model":
            facts["model"] = int(value)
        elif key == "flags":
            facts["flags"] = set(value.split())
        elif key == "cpu MHz":
            facts["mhz"] = float(value)
    return facts


def vector_units(facts: dict) -> dict:
    """Vector width (bits), FMA units per core, FMA latency (cycles) and where these come from.

    Public microarchitecture data, by vendor and family: AMD Zen 1 executes 256-bit FMAs as two halves (one
    256-bit FMA per cycle), Zen 2 and Zen 3 have two 256-bit FMA pipes, Zen 4 runs AVX-512 on them (one 512-bit
    FMA per cycle); Intel cores with AVX2 have two 256-bit FMA ports, AVX-512 server cores two 512-bit ports
    except Xeon Bronze, Silver and Gold 5xxx before Sapphire Rapids (one). FMA latency: 5 cycles on Haswell,
    Broadwell and Zen 1-2, 4 on later cores.
    """
    flags, vendor, family, model = facts["flags"], facts["vendor"], facts["family"], facts["model"] or 0
    name = facts["model_name"]
    avx512, avx2 = "avx512f" in flags, "avx2" in flags and "fma" in flags
    if vendor == "AuthenticAMD" and family == 0x17:
        zen1 = model < 0x30
        return {"vector_bits": 256, "fma_units": 1 if zen1 else 2, "fma_latency": 5,
                "source": f"AMD family 17h model {model:#x}: Zen {'1' if zen1 else '2'}"}
    if vendor == "AuthenticAMD" and family == 0x19:
        return ({"vector_bits": 512, "fma_units": 1, "fma_latency": 4,
                 "source": "AMD family 19h with AVX-512: Zen 4 (512-bit FMAs on two 256-bit pipes)"} if avx512 else
                {"vector_bits": 256, "fma_units": 2, "fma_latency": 4, "source": "AMD family 19h: Zen 3"})
    if vendor == "AuthenticAMD" and family == 0x1A:
        return {"vector_bits": 512 if avx512 else 256, "fma_units": 2, "fma_latency": 4,
                "source": "AMD family 1Ah: Zen 5 (assumed two full-width FMA pipes)"}
    if vendor == "GenuineIntel" and avx512:
        one_port = any(s in name for s in ("Bronze", "Silver", "Gold 5")) and "Gold 5" + "4" not in name
        return {"vector_bits": 512, "fma_units": 1 if one_port else 2, "fma_latency": 4,
                "source": "Intel with AVX-512: " + ("one FMA port (Bronze/Silver/Gold 5xxx)" if one_port else
                                                    "two FMA ports (assumed: the server cores' usual count)")}
    if avx2:
        haswell = vendor == "GenuineIntel" and family == 6 and model in (0x3C, 0x3F, 0x45, 0x46, 0x3D, 0x47, 0x4F,
                                                                         0x56)
        return {"vector_bits": 256, "fma_units": 2, "fma_latency": 5 if haswell else 4,
                "source": f"{vendor or 'x86'} with AVX2 and FMA: two 256-bit FMA units (assumed)"}
    return {"vector_bits": 128, "fma_units": 1, "fma_latency": 4,
            "source": "no AVX2/FMA flags: 128-bit vectors, one multiply-add per cycle (assumed)"}


def read_clock_ghz(facts: dict) -> tuple[Optional[float], str]:
    """The clock the CPU or the kernel reports: cpufreq's maximum where there is one, else /proc/cpuinfo."""
    try:
        khz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text())
        return khz / 1e6, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    if facts.get("mhz"):
        return facts["mhz"] / 1000, "/proc/cpuinfo cpu MHz"
    return None, "not reported"


def measured_clock_ghz(latency: int, repeats: int = 5) -> Optional[float]:
    """The core's clock from a chain of dependent FMAs (numba; None without it): the fastest of ``repeats``."""
    try:
        from pgdbench.harness import fma_clock
    except ImportError:
        return None
    return fma_clock.clock_ghz(latency, repeats)


def theoretical(facts: Optional[dict] = None, measure_clock: bool = True) -> dict:
    """The cores' limit per dtype and per thread: GFLOP/s per core, with the clock and where each number comes
    from."""
    facts = facts or cpu_facts()
    units = vector_units(facts)
    read, read_source = read_clock_ghz(facts)
    measured = measured_clock_ghz(units["fma_latency"]) if measure_clock else None
    candidates = [c for c in (measured, read) if c]
    clock = max(candidates) if candidates else None
    if measured and (not read or measured >= read):
        source = f"dependent-FMA chain ({units['fma_latency']}-cycle latency), measured"
    else:
        source = f"read: {read_source}" + (f" (the FMA chain gave {measured:.2f} GHz)" if measured else "")
    per_core = {}
    for dtype, bits in (("float32", 32), ("float64", 64)):
        flops_per_cycle = units["vector_bits"] // bits * units["fma_units"] * 2
        per_core[dtype] = {"flops_per_cycle": flops_per_cycle, "gflops": flops_per_cycle * clock if clock else None}
    return {**units, "clock_ghz": clock, "clock_source": source, "clock_measured_ghz": measured,
            "clock_read_ghz": read, "cores": facts["cores"], "per_core": per_core}


# -- GEMM through every BLAS ------------------------------------------------------

def gemm_providers() -> dict:
    """name → a function(n, dtype, threads, repeats) giving GFLOP/s, for every BLAS the suite can call here."""
    out = {}
    for name in ("openblas", "mkl"):
        if gemm.available()[name] is None:
            out[name] = lambda n, dtype, threads, repeats, p=gemm.get(name): _time_provider(p, n, dtype, threads,
                                                                                              repeats)
    if "openblas" not in out:      # NumPy links something else: time its matmul
        out["numpy"] = lambda n, dtype, threads, repeats: _time_provider(gemm.get("numpy"), n, dtype, threads,
                                                                         repeats)
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        out["torch"] = _time_torch
    return out


def _best_time(run, repeats: int) -> float:
    run()   # start the library's threads and touch the memory
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _time_provider(provider, n: int, dtype, threads: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n)).astype(dtype), rng.random((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    with provider.limit(threads):
        return 2.0 * n ** 3 / _best_time(lambda: provider.matmul(a, b, c), repeats) / 1e9


def _time_torch(n: int, dtype, threads: int, repeats: int) -> float:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
        g = torch.Generator().manual_seed(0)
        a, b = torch.rand((n, n), generator=g, dtype=tdtype), torch.rand((n, n), generator=g, dtype=tdtype)
        c = torch.empty((n, n), dtype=tdtype)
        return 2.0 * n ** 3 / _best_time(lambda: torch.mm(a, b, out=c), repeats) / 1e9
    finally:
        torch.set_num_threads(before)


def gemm_gflops(n: int, dtype, threads: int, repeats: int = 5) -> float:
    """NumPy's own matmul (kept for callers of the old interface)."""
    return _time_provider(gemm.get("numpy"), n, dtype, threads, repeats)


# -- measuring and storing --------------------------------------------------------

def this_machine() -> dict:
    facts = cpu_facts()
    return {"host": platform.node(), "cpu_model": facts["model_name"], "cores": facts["cores"],
            "cpus_usable": usable_cpus()}


def measure(threads: list[int], size: int = 2048, repeats: int = 5, providers: Optional[list[str]] = None,
            measure_clock: bool = True) -> dict:
    """Every provider's GEMM per dtype and thread count, the best of them, and the theoretical limit."""
    timers = gemm_providers()
    if providers:
        timers = {k: v for k, v in timers.items() if k in providers}
    limit = theoretical(measure_clock=measure_clock)
    results = {"size": size, "repeats": repeats, "machine": this_machine(),
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
               "theoretical": limit, "gemm": {}, "gflops": {}, "best": {}, "theoretical_gflops": {}}
    for dtype in DTYPES:
        for t in threads:
            key = f"{dtype}/{t}"
            rates = {name: timer(size, np.dtype(dtype), t, repeats) for name, timer in timers.items()}
            best = max(rates, key=rates.get)
            results["gemm"][key] = rates
            results["gflops"][key] = rates[best]
            results["best"][key] = best
            per_core = limit["per_core"][dtype]["gflops"]
            results["theoretical_gflops"][key] = per_core * min(t, limit["cores"]) if per_core else None
    return results


def peak_file() -> Path:
    return cache_dir() / "peak.json"


def machine_key() -> str:
    return f"{platform.node()}|{cpu_model()}"


def save(results: dict) -> Path:
    path = peak_file()
    stored = load_all()
    stored[machine_key()] = results
    atomic_write_text(path, json.dumps(stored, indent=1))
    return path


def load_all() -> dict:
    try:
        return json.loads(peak_file().read_text())
    except (OSError, ValueError):
        return {}


def stored_entry() -> tuple[Optional[dict], str]:
    """(stored peak, how it relates to this machine): this host's own; else one measured on another host with
    the same CPU model and cores ("same CPU model, host X"); else none."""
    stored = load_all()
    entry = stored.get(machine_key())
    if entry is not None:
        return entry, "this machine"
    here = this_machine()
    for key, other in stored.items():
        m = other.get("machine") or {}
        if m.get("cpu_model") == here["cpu_model"] and m.get("cores") == here["cores"]:
            return other, f"another host with the same CPU model and cores ({key.split('|')[0]})"
    return None, "none"


def lookup(dtype: str, threads: int) -> float | None:
    """Stored peak GFLOP/s for this machine, or None if `pgdbench peak` has not been run here."""
    entry, _ = stored_entry()
    return entry["gflops"].get(f"{dtype}/{threads}") if entry else None


def fraction_fields(gflops: float, dtype: str, threads: int) -> dict:
    """A benchmark record's fields about the peak: the stored measured peak for this dtype and thread count
    (which BLAS set it, where and when it was measured) and the theoretical limit, with the fractions of both.
    A measured fraction above 1 means the stored peak is low (measured on a busy machine, or with fewer
    BLAS libraries than the backend used): it is kept, and ``peak_note`` says so."""
    entry, relation = stored_entry()
    key = f"{dtype}/{threads}"
    if entry is None or key not in entry.get("gflops", {}):
        return {"peak_gflops": None, "fraction_of_peak": None,
                "peak_note": "no peak measured on this machine for this dtype and thread count (pgdbench peak)"}
    peak = entry["gflops"][key]
    theo = (entry.get("theoretical_gflops") or {}).get(key)
    machine = entry.get("machine") or {}
    out = {"peak_gflops": peak, "fraction_of_peak": gflops / peak if peak else None,
           "peak_provider": (entry.get("best") or {}).get(key, "numpy (pgdbench < 0.2 measured NumPy's only)"),
           "peak_date": entry.get("date"), "peak_machine": machine.get("cpu_model") or entry.get("machine"),
           "peak_from": relation, "theoretical_gflops": theo,
           "fraction_of_theoretical": gflops / theo if theo else None}
    notes = []
    if relation != "this machine":
        notes.append(f"peak measured on {relation}")
    if peak and gflops > peak:
        notes.append("above the stored GEMM peak, which must have been measured low (a busy machine?): "
                     "run pgdbench peak again")
    if notes:
        out["peak_note"] = "; ".join(notes)
    return out
