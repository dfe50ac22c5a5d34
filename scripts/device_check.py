"""The device check's measurements, in order, within a time budget; called by scripts/device-check.sh.

Each phase runs in a process of its own (a crash loses that phase only) with
a deadline from its share of the budget; a phase cut short keeps what it
measured. In order of what matters most:

1. ``gemm``: every product of a step, tiled kernels against cuBLAS and
   torch.mm, B = 4096 … 128 (scripts/gemm_bench.py);
2. whole epochs on the main data set (MNIST when carried, else the embedded
   sample) of ``cupy-tiled``, ``cupy`` and ``torch`` (on CUDA), Net-1h and
   Net-2h, B = 32 … 4096, then the serial ``numpy`` on part of an epoch
   (scripts/epoch_bench.py); then ``pycuda`` once its build, started in the
   background by the shell script, has finished;
3. the same on the embedded sample (when MNIST was the main set);
4. the GPU tests (the conformance kit on the GPU backends, nvcc and NVRTC).

Then ``device-check.json`` (everything, with the per-product ratios to
cuBLAS, the whole-step ratios to ``cupy`` and torch, the speedups over serial
``numpy`` and the issue's three targets), ``summary.md`` and a ``pgdbench
report`` per data set. ``--cpu-dry-run`` runs every phase on PoCL / NumPy /
the CPU with tiny sizes: it checks the code paths, it measures nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"

GPU_BACKENDS = ["cupy-tiled", "cupy", "torch"]
DRY_BACKENDS = ["opencl", "cupy-tiled", "cupy", "torch"]
TILED = ("cupy-tiled", "pycuda", "opencl")
NETS = ["net1h", "net2h"]
GPU_BATCHES = "4096,2048,1024,512,256,128,64,32"   # largest first: a budget cut loses the small ones
SERIAL_EXAMPLES = 4096          # numpy at 1 thread times this many examples per epoch (projected)
TARGET_CUBLAS = 0.70            # the issue's targets
TARGET_SPEEDUP = 25.0
TARGET_SECONDS = 360.0
LARGE = 512                     # "large GEMMs": both output sides and the inner dimension at least this
PACKAGES = ["numpy", "scipy", "cupy-cuda13x", "torch", "pycuda", "pyopencl", "pytools", "pgdbench"]


class Budget:
    def __init__(self, start: float, seconds: float, reserve: float):
        self.start, self.end, self.reserve = start, start + seconds, reserve

    def left(self) -> float:
        return self.end - self.reserve - time.time()

    def deadline(self, share: float) -> float:
        """Now + share of the whole budget, never past what the last steps need."""
        return min(time.time() + share * (self.end - self.start), self.end - self.reserve)


def run_phase(name: str, cmd: list, deadline: float, out: Path, results: dict, grace: float = 20.0) -> bool:
    """Run ``cmd`` (which stops starting work at ``deadline``) and kill it ``grace`` s later; log and record."""
    log = out / "logs" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    started = time.time()
    entry = {"command": " ".join(map(str, cmd)), "log": str(log.relative_to(out))}
    if deadline - started < 3:
        entry.update(status="skipped", reason="device-check budget spent")
        results["phases"][name] = entry
        print(f"[{name}] skipped: budget spent", flush=True)
        return False
    print(f"[{name}] {entry['command']}", flush=True)
    with open(log, "w") as f:
        try:
            rc = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                timeout=max(1.0, deadline - started + grace)).returncode
            entry["status"] = "ok" if rc == 0 else f"failed (exit status {rc})"
        except subprocess.TimeoutExpired:
            entry["status"] = "cut (timeout: what it wrote before is kept)"
    entry["seconds"] = round(time.time() - started, 1)
    results["phases"][name] = entry
    print(f"[{name}] {entry['status']} in {entry['seconds']} s; last lines of {log.name}:", flush=True)
    print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-6:]), flush=True)
    return entry["status"] == "ok"


def environment(out: Path, dry: bool) -> dict:
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    env = {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.node(),
           "cpus": os.cpu_count(), "packages": versions,
           "tf32": {k: os.environ.get(k) for k in ("NVIDIA_TF32_OVERRIDE", "CUPY_TF32")}}
    env["tf32"]["torch"] = "allow_tf32 False, float32 matmul precision 'highest' (set by gemm_bench; PyTorch's defaults)"
    csv = out / "gpu.csv"
    if csv.exists():
        lines = [line.strip() for line in csv.read_text().splitlines() if line.strip()]
        if len(lines) >= 2 and "," in lines[0]:
            env["gpu"] = dict(zip([h.strip() for h in lines[0].split(",")], [v.strip() for v in lines[1].split(",")]))
        else:
            env["gpu"] = {"nvidia-smi": " ".join(lines)[:300]}
    elif dry:
        env["gpu"] = {"note": "dry run: no GPU"}
    return env


# -- summaries ---------------------------------------------------------------------------------------

def gemm_table(gemm: dict) -> tuple[list, dict]:
    """Rows per product and the first target: the plan's time ratio to cuBLAS on the large GEMMs at B >= 512."""
    rows = []
    for r in gemm.get("products", []):
        plan = next((v for v in r["variants"] if v["name"] == "plan"), {})
        best = min((v for v in r["variants"] if v.get("seconds")), key=lambda v: v["seconds"], default={})
        base = r["baselines"]
        cub = base.get("cublas") or base.get("numpy") or {}
        rows.append({"batch": r["batch"], "product": r["product"], "plan": plan.get("choice"),
                     "plan_ms": _ms(plan.get("seconds")), "best": f"{best.get('name')} ({best.get('choice')})",
                     "best_ms": _ms(best.get("seconds")), "cublas_ms": _ms(cub.get("seconds")),
                     "torch_ms": _ms((base.get("torch") or {}).get("seconds")),
                     "plan_vs_cublas": r.get("plan_vs_cublas"), "best_vs_cublas": r.get("best_vs_cublas"),
                     "plan_gflops": plan.get("gflops"), "cublas_gflops": cub.get("gflops"),
                     "max_error": r["max_error"],
                     "large": r["batch"] >= LARGE and min(r["m"], r["n"]) >= LARGE and r["k"] >= LARGE})
    large = [x for x in rows if x["large"] and x["plan_vs_cublas"]]
    target = {"target": f"tiled kernels >= {TARGET_CUBLAS:.0%} of cuBLAS FP32 (TF32 off) on the large GEMMs at B >= 512",
              "measured": len(large)}
    if large:
        worst = min(large, key=lambda x: x["plan_vs_cublas"])
        target.update(worst=f"{worst['product']} at B={worst['batch']}: {worst['plan_vs_cublas']:.0%}",
                      geometric_mean=_gmean([x["plan_vs_cublas"] for x in large]),
                      best_configuration_worst=min(x["best_vs_cublas"] for x in large),
                      met=worst["plan_vs_cublas"] >= TARGET_CUBLAS)
    return rows, target


def epoch_records(paths) -> list[dict]:
    out = []
    for p in paths:
        if not Path(p).exists():
            continue
        for line in Path(p).read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("kind") == "bench" and r.get("status") == "ok":
                out.append(r)
    return out


def ran_on_gpu(record: dict) -> bool:
    """What the run used, from the backend's metadata: torch falls back to the CPU without CUDA, opencl runs on PoCL."""
    meta = record.get("backend_metadata") or {}
    return meta.get("device_kind") == "gpu" or str(meta.get("device", "")).startswith("cuda") \
        or "cuda_runtime" in meta


def epoch_table(records: list[dict]) -> tuple[list, dict]:
    """Time per epoch per (data set, net, batch) and backend; tiled vs cupy and torch; speedups over numpy."""
    tpe, on_gpu = defaultdict(dict), set()
    for r in records:
        tpe[(r["dataset"], r["net"], r["batch_size"])][r["backend"]] = r["seconds_per_epoch"]
        if ran_on_gpu(r):
            on_gpu.add((r["dataset"], r["net"], r["batch_size"], r["backend"]))
    rows, speedups = [], []
    for (ds, net, b), t in sorted(tpe.items()):
        row = {"dataset": ds, "net": net, "batch": b, **{f"{k}_s": v for k, v in t.items()}}
        tiled = min((t[k] for k in TILED if k in t), default=None)
        if tiled:
            row["tiled_vs_cupy"] = t["cupy"] / tiled if "cupy" in t else None
            row["tiled_vs_torch"] = t["torch"] / tiled if "torch" in t else None
        serial = t.get("numpy")
        for k, v in t.items():
            if k != "numpy" and serial:
                row[f"{k}_vs_numpy"] = serial / v
                if (ds, net, b, k) in on_gpu:
                    speedups.append((serial / v, k, ds, net, b))
        rows.append(row)
    gpu = speedups
    target = {"target": f"best GPU backend >= {TARGET_SPEEDUP:.0f}x the numpy serial counterpart (same data, net, batch)",
              "measured": len(gpu)}
    if gpu:
        best = max(gpu)
        target.update(best=f"{best[1]} {best[3]} B={best[4]} on {best[2]}: {best[0]:.1f}x", speedup=best[0],
                      met=best[0] >= TARGET_SPEEDUP)
    return rows, target


def _ms(s):
    return None if s is None else s * 1e3


def _gmean(xs):
    import math
    return math.exp(statistics.mean(math.log(x) for x in xs))


def _fmt(v, spec=".3g"):
    return "-" if v is None else (format(v, spec) if isinstance(v, float) else str(v))


def markdown(result: dict) -> str:
    dry = result["dry_run"]
    lines = ["# Device check" + (" (CPU dry run: nothing here is a GPU measurement)" if dry else ""), ""]
    gpu = result["environment"].get("gpu", {})
    lines += [f"GPU: {gpu}", f"Duration: {result.get('duration_seconds')} s of a {result['budget_seconds']} s budget.",
              f"TF32: {result['environment']['tf32']}", ""]
    lines += ["## Targets", ""]
    for t in result["targets"].values():
        verdict = {True: "met", False: "NOT met"}.get(t.get("met"), "not measured")
        detail = t.get("worst") or t.get("best") or t.get("measured")
        lines.append(f"- {t['target']}: **{verdict}** ({detail})")
    lines += ["", "## Each product of a step (ms, device time): tiled plan vs cuBLAS", "",
              "| B | product | plan | plan ms | best variant | best ms | cuBLAS ms | torch ms | plan/cuBLAS | best/cuBLAS | max err |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["gemm_table"]:
        lines.append(f"| {r['batch']} | {r['product']} | {r['plan']} | {_fmt(r['plan_ms'])} | {r['best']} | "
                     f"{_fmt(r['best_ms'])} | {_fmt(r['cublas_ms'])} | {_fmt(r['torch_ms'])} | "
                     f"{_fmt(r['plan_vs_cublas'], '.0%')} | {_fmt(r['best_vs_cublas'], '.0%')} | {r['max_error']:.1e} |")
    lines += ["", "(ratio = cuBLAS time / tiled time: above 100 % the tiled kernel is faster)", "",
              "## Whole epochs (s): tiled vs cupy and torch, speedup over serial numpy", ""]
    backends = sorted({k[:-2] for r in result["epoch_table"] for k in r if k.endswith("_s")})
    lines += ["| data | net | B | " + " | ".join(backends) + " | tiled/cupy | tiled/torch | best vs numpy |",
              "|---|---|---|" + "---|" * len(backends) + "---|---|---|"]
    for r in result["epoch_table"]:
        best = max((v for k, v in r.items() if k.endswith("_vs_numpy")), default=None)
        lines.append(f"| {r['dataset']} | {r['net']} | {r['batch']} | "
                     + " | ".join(_fmt(r.get(f"{b}_s"), ".4g") for b in backends)
                     + f" | {_fmt(r.get('tiled_vs_cupy'), '.2f')} | {_fmt(r.get('tiled_vs_torch'), '.2f')} | "
                       f"{_fmt(best, '.1f')} |")
    lines += ["", "numpy: 1 thread, projected from part of an epoch; tiled: the faster of cupy-tiled and pycuda.",
              "", "## Phases", ""]
    for name, p in result["phases"].items():
        lines.append(f"- {name}: {p['status']} ({p.get('seconds', 0)} s)")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--budget", type=float, default=330)
    p.add_argument("--start", type=float, help="UNIX time the budget counts from (default: now)")
    p.add_argument("--cpu-dry-run", action="store_true")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files")
    p.add_argument("--pycuda-rc", help="file where the background PyCUDA build writes its exit status")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    dry = args.cpu_dry_run
    start = args.start or time.time()
    budget = Budget(start, args.budget, reserve=12 if dry else 25)
    py = sys.executable
    result = {"kind": "device-check", "version": 1, "dry_run": dry, "budget_seconds": args.budget,
              "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start)), "phases": {},
              "environment": environment(out, dry)}
    print(f"device check ({'CPU dry run' if dry else 'GPU'}), budget {args.budget:.0f} s, "
          f"{time.time() - start:.0f} s spent on setup", flush=True)

    d = budget.deadline(0.3 if dry else 0.2)
    run_phase("gemm", [py, SCRIPTS / "gemm_bench.py", "--out", out / "gemm.json", "--deadline", d]
              + (["--cpu-dry-run"] if dry else []), d, out, result)

    mnist = args.data_dir and Path(args.data_dir, "train-images-idx3-ubyte.gz").is_file()
    datasets = (["mnist"] if mnist else []) + ["mnist-sample"]
    if dry:
        grid = {"batches": "64", "epochs": "1", "gpu_examples": ["--max-examples", "256"], "serial_examples": "256"}
    else:
        grid = {"batches": GPU_BATCHES, "epochs": "3", "gpu_examples": [], "serial_examples": str(SERIAL_EXAMPLES)}
    shares = {"gpu": 0.24, "numpy": 0.10, "pycuda": 0.08} if len(datasets) == 1 or dry else \
        {"gpu": 0.20, "numpy": 0.08, "pycuda": 0.07}
    epoch_files = {}
    for i, ds in enumerate(datasets):
        results_file = out / f"epochs-{ds}.jsonl"
        epoch_files[ds] = results_file
        base = [py, SCRIPTS / "epoch_bench.py", "--dataset", ds, "--results", results_file,
                "--batch-size", grid["batches"]] + [a for n in (NETS if not dry else NETS[:1]) for a in ("--net", n)] \
            + (["--data-dir", args.data_dir] if ds == "mnist" else [])
        backends = DRY_BACKENDS if dry else GPU_BACKENDS
        scale = 1.0 if i == 0 else 0.6           # the embedded sample's epochs are short
        d = budget.deadline(shares["gpu"] * scale)
        run_phase(f"epochs-gpu-{ds}", base + [a for b in backends for a in ("--backend", b)]
                  + ["--epochs", grid["epochs"], *grid["gpu_examples"], "--deadline", d], d, out, result)
        d = budget.deadline(shares["numpy"] * scale)
        run_phase(f"epochs-numpy-{ds}", base + ["--backend", "numpy", "--epochs", "1",
                                               "--max-examples", grid["serial_examples"], "--deadline", d], d, out, result)
        if i == 0:
            run_pycuda(args, base + ["--epochs", grid["epochs"], *grid["gpu_examples"]], budget,
                       shares["pycuda"], out, result)

    if not dry:
        pytest = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        kits = ["tests/test_gpu_kernels.py::test_kit_on_gpu", "tests/test_cupy_xp.py::test_cupy_on_gpu"]
        d = budget.deadline(0.15)
        run_phase("gpu-kit", pytest + kits, d, out, result, grace=0)
        d = budget.deadline(1.0)
        run_phase("gpu-tests", pytest + ["tests/test_gpu_kernels.py", "tests/test_gpu_runtimes.py",
                                         "-k", "not test_kit_on_gpu"], d, out, result, grace=0)

    gemm = json.loads((out / "gemm.json").read_text()) if (out / "gemm.json").exists() else {}
    result["gemm"] = gemm
    result["gemm_table"], gemm_target = gemm_table(gemm)
    records = epoch_records(epoch_files.values())
    result["epoch_table"], speed_target = epoch_table(records)
    result["duration_seconds"] = round(time.time() - start, 1)
    result["targets"] = {
        "tiled_vs_cublas": gemm_target, "speedup_vs_serial": speed_target,
        "duration": {"target": f"the device check in under {TARGET_SECONDS / 60:.0f} minutes",
                     "seconds": result["duration_seconds"], "met": result["duration_seconds"] < TARGET_SECONDS,
                     "measured": 1}}
    if dry:
        for t in result["targets"].values():
            t["met"] = None                           # a dry run decides nothing
    write(out, result)
    for ds, f in epoch_files.items():
        if f.exists():
            run_report(py, [f, out / "device-check.json"], out / f"report-{ds}", f"Device check: {ds}", out, result)
    result["duration_seconds"] = round(time.time() - start, 1)
    result["targets"]["duration"].update(seconds=result["duration_seconds"],
                                         met=None if dry else result["duration_seconds"] < TARGET_SECONDS)
    write(out, result)
    print((out / "summary.md").read_text(), flush=True)
    return 0


def run_pycuda(args, cmd, budget, share, out, result) -> None:
    """PyCUDA's epochs once its background build is done (waiting at most half its share), if it built.
    The dry run has no build: the phase then records pycuda as unavailable, as on any machine without it."""
    if not args.cpu_dry_run and args.pycuda_rc:
        rc_file = Path(args.pycuda_rc)
        wait_until = budget.deadline(share / 2)
        while not rc_file.exists() and time.time() < wait_until:
            time.sleep(2)
        status = rc_file.read_text().strip() if rc_file.exists() else None
        if status != "0":
            why = "still building" if status is None else f"build failed (exit status {status})"
            result["phases"]["epochs-pycuda"] = {"status": "skipped", "reason": f"PyCUDA {why}: see pycuda-build.log"}
            print(f"[epochs-pycuda] skipped: PyCUDA {why}", flush=True)
            return
    d = budget.deadline(share)
    run_phase("epochs-pycuda", cmd + ["--backend", "pycuda", "--deadline", d], d, out, result)


def run_report(py, inputs, folder, title, out, result) -> None:
    cmd = [py, "-c", "import sys; from pgdbench.cli import main; sys.exit(main(sys.argv[1:]))", "report",
           *inputs, "--out", folder, "--title", title]
    run_phase(folder.name, cmd, time.time() + 60, out, result, grace=0)


def write(out: Path, result: dict) -> None:
    """device-check.json (which pgdbench report reads, summary included) and summary.md."""
    result["summary_markdown"] = markdown(result)
    (out / "device-check.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "summary.md").write_text(result["summary_markdown"])


if __name__ == "__main__":
    sys.exit(main())
