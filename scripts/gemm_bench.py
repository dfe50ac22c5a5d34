"""Times each product of a training step: the tiled kernels against cuBLAS (``cupy.matmul``) and ``torch.mm``.

Part of the device check (scripts/device-check.sh), which runs it as
``python scripts/gemm_bench.py --out gemm.json``. For every batch size and
every product of a Net-2h step -- which holds every product shape of Net-1h
too -- it times the launch plan's kernels, the plan without its split,
each tile configuration forced, and the plain float32 GEMM of the same shape
through cuBLAS and through PyTorch; every result is checked against a float64
product computed on the device from the same inputs. A few awkward shapes
(widths 1, 31, 33, 36; batches 1 and 31) are checked without being timed.

On a GPU the tiled kernels run through ``cupy-tiled`` (CuPy's RawModule); each
time is the median of three blocks of back-to-back calls between two CUDA
events, the calls queued behind a short spin kernel so that the host's launch
cost stays out of the measurement. With ``--cpu-dry-run`` the same code runs
the tiled kernels on PoCL (``opencl``) and the baselines with NumPy and
PyTorch on the CPU, timed by the wall clock: a check that the code runs,
never a measurement of a GPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from anywhere, installed or not

from implementations.tiled_plan import Planner  # noqa: E402
from implementations.tiled_kernels import tile_configs  # noqa: E402
from pgdbench.core.model import NetSpec, glorot_uniform  # noqa: E402

NET2H = (784, 1024, 1024, 10)
GPU_BATCHES = (4096, 2048, 1024, 512, 256, 128)   # largest first: the budget may end the loop
DRY_BATCHES = (16,)
AWKWARD = [((33, 31, 10), 31), ((784, 36, 10), 1), ((36, 33, 260, 10), 31)]   # (layers, batch): checked only
SCALE = 1e-3          # learning rate / B of the timed weight updates: small, so repeated updates stay sane

# busy-waits on the device's global nanosecond timer: the launches to be timed queue up behind it
SPIN_SOURCE = r'''
extern "C" __global__ void spin(unsigned long long ns)
{
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - t0 < ns);
}
'''


def relative_error(got, ref, xp) -> float:
    scale = float(xp.max(xp.abs(ref))) or 1.0
    return float(xp.max(xp.abs(got.astype(xp.float64) - ref))) / scale


class GpuRuntime:
    """CuPy: tiled kernels through cupy-tiled, cuBLAS through cupy.matmul, PyTorch on CUDA; CUDA events."""

    name = "cupy-tiled (NVRTC) on CUDA"
    dry = False

    def __init__(self, repeats=10, blocks=3, spin_seconds=0.002):
        import cupy

        from implementations.cupy_tiled import CupyTiledTrainer

        self.cp = self.xp = cupy
        self.trainer_cls = CupyTiledTrainer
        self.repeats, self.blocks, self.spin_ns = repeats, blocks, np.uint64(spin_seconds * 1e9)
        self._spin = cupy.RawKernel(SPIN_SOURCE, "spin")
        self.torch = _torch("cuda")

    def _time(self, fn, stream) -> float:
        cp = self.cp
        with stream:
            fn()
            stream.synchronize()
            samples = []
            for _ in range(self.blocks):
                self._spin((1,), (1,), (self.spin_ns,))
                start, end = cp.cuda.Event(), cp.cuda.Event()
                start.record(stream)
                for _ in range(self.repeats):
                    fn()
                end.record(stream)
                end.synchronize()
                samples.append(cp.cuda.get_elapsed_time(start, end) / 1e3 / self.repeats)
        return statistics.median(samples)

    def time_tiled(self, t, fn) -> float:
        return self._time(fn, t.dev.stream)

    def time_xp(self, fn) -> float:
        return self._time(fn, self.cp.cuda.get_current_stream())

    def time_torch(self, fn) -> float:
        stream = self.cp.cuda.ExternalStream(self.torch.cuda.current_stream().cuda_stream)
        return self._time(fn, stream)

    def view(self, t, buf, shape):
        """The buffer's contents as a float32 device array (no copy)."""
        n = int(np.prod(shape))
        return buf[: 4 * n].view(self.cp.float32).reshape(shape)

    def assign(self, t, buf, values) -> None:
        self.view(t, buf, values.shape)[...] = values
        self.cp.cuda.get_current_stream().synchronize()

    def finish(self, t) -> None:
        t.dev.finish()

    def to_torch(self, a):
        return self.torch.from_dlpack(a)


class CpuRuntime(GpuRuntime):
    """The dry run: tiled kernels on PoCL, NumPy for cuBLAS, PyTorch on the CPU; the wall clock."""

    name = "opencl (PoCL) on the CPU: dry run, no GPU"
    dry = True

    def __init__(self, repeats=2):
        from implementations.opencl_tiled import OpenCLTrainer

        self.xp = np
        self.trainer_cls = OpenCLTrainer
        self.repeats = repeats
        self.torch = _torch("cpu")

    def _wall(self, fn, finish) -> float:
        fn()
        finish()
        start = time.perf_counter()
        for _ in range(self.repeats):
            fn()
        finish()
        return (time.perf_counter() - start) / self.repeats

    def time_tiled(self, t, fn) -> float:
        return self._wall(fn, t.dev.finish)

    def time_xp(self, fn) -> float:
        return self._wall(fn, lambda: None)

    def time_torch(self, fn) -> float:
        return self._wall(fn, lambda: None)

    def view(self, t, buf, shape):
        out = np.empty(shape, np.float32)
        t.dev.finish()
        t.dev.download(out, buf)
        return out

    def assign(self, t, buf, values) -> None:
        t.dev.upload(buf, np.ascontiguousarray(values, np.float32))

    def to_torch(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a))


def _torch(device: str):
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False     # pinned off: both the results and the baseline change
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return torch


class Step:
    """A tiled trainer with data, activations and deltas in place, whose products can be launched one by one."""

    def __init__(self, rt, layers, n_data, options=None, seed=0):
        rng = np.random.default_rng(seed)
        self.rt, self.spec = rt, NetSpec(layers)
        self.t = rt.trainer_cls(self.spec, glorot_uniform(self.spec, seed), dtype=np.float32, options=options)
        X = rng.random((n_data, layers[0]), dtype=np.float32)
        Y = np.eye(layers[-1], dtype=np.float32)[rng.integers(0, layers[-1], n_data)]
        self.order = rng.permutation(n_data).astype(np.int32)
        self.X, self.Y = X, Y
        t = self.t
        t.load_data(X, Y)
        with t.dev.active():
            t._ensure_buffers(n_data)
            t._upload_order(self.order)
            for layer, width in enumerate(self.spec.layers[1:]):
                t.dev.upload(t._act[layer], rng.uniform(0.05, 0.95, (n_data, width)).astype(np.float32))
                t.dev.upload(t._delta[layer], rng.normal(0, 0.05, (n_data, width)).astype(np.float32))
            t.dev.finish()

    def planner(self, **options) -> Planner:
        base = {"tile": self.t.opts["tile"], "split": self.t.opts["split"], "narrow": self.t.opts["narrow"]}
        return self.t.make_planner(**{**base, **options})

    def plan(self, product, planner):
        """What ``planner`` makes of ``product`` (same shape, another choice)."""
        n_in, n_out = self.spec.shapes[product.layer]
        if product.kind == "forward":
            return planner.forward(product.layer, product.m, n_in, n_out)
        if product.kind == "backprop":
            return planner.backprop(product.layer, product.m, n_out, n_in)
        return planner.update(product.layer, n_in, n_out, product.k)

    def call(self, product, planner):
        """A callable that launches ``product`` with ``planner`` exactly as a training step does."""
        t, layer = self.t, product.layer
        last = layer == len(self.spec.shapes) - 1

        def launch():
            with t.dev.active():
                if product.kind == "forward":
                    t.forward_layer(layer, product.m, t.X, True, 0, targets=t.Y if last else None, gather_y=True,
                                    planner=planner)
                elif product.kind == "backprop":
                    t.backprop_layer(layer, product.m, planner=planner)
                else:
                    t.update_layer(layer, product.k, t.Wb[layer], SCALE, t.X, True, 0, planner=planner)

        return launch

    def inputs(self, product) -> dict:
        """The product's operands as float64 xp arrays, read from the device, and the plain GEMM's a, b."""
        rt, t, xp, layer = self.rt, self.t, self.rt.xp, product.layer
        n_in, n_out = self.spec.shapes[layer]
        B = product.k if product.kind == "update" else product.m
        with t.dev.active():
            rt.finish(t)
            Wb = xp.asarray(rt.view(t, t.Wb[layer], (n_in + 1, n_out)), dtype=xp.float64).copy()
            if layer == 0:
                A = xp.asarray(self.X[self.order[:B]], dtype=xp.float64)
            else:
                A = xp.asarray(rt.view(t, t._act[layer - 1], (B, n_in)), dtype=xp.float64).copy()
            D = xp.asarray(rt.view(t, t._delta[layer], (B, n_out)), dtype=xp.float64).copy()
        out = {"Wb": Wb, "A": A, "D": D}
        if product.kind == "forward":
            out["a"], out["b"] = A, Wb[:n_in]
        elif product.kind == "backprop":
            out["a"], out["b"] = D, Wb[:n_in].T
        else:
            out["a"], out["b"] = A.T, D
        return out

    def run_and_check(self, product, planner, ins) -> float:
        """Launch once on the state ``ins`` was read from; the largest error relative to the float64 result."""
        rt, t, xp, layer = self.rt, self.t, self.rt.xp, product.layer
        n_in, n_out = self.spec.shapes[layer]
        B = product.k if product.kind == "update" else product.m
        with t.dev.active():
            if product.kind == "update":
                rt.assign(t, t.Wb[layer], ins["Wb"].astype(xp.float32))   # the timing runs moved it
            self.call(product, planner)()
            rt.finish(t)
            if product.kind == "forward":
                z = ins["A"] @ ins["Wb"][:n_in] + ins["Wb"][n_in]
                ref = 1 / (1 + xp.exp(-z))
                got = rt.view(t, t._act[layer], (B, n_out))
                err = relative_error(got, ref, xp)
                if layer == len(self.spec.shapes) - 1:
                    y = xp.asarray(self.Y[self.order[:B]], dtype=xp.float64)
                    err = max(err, relative_error(rt.view(t, t._delta[layer], (B, n_out)),
                                                  (ref - y) * ref * (1 - ref), xp))
                return err
            if product.kind == "backprop":
                a_below = xp.asarray(rt.view(t, t._act[layer - 1], (B, n_in)), dtype=xp.float64)
                ref = (ins["D"] @ ins["Wb"][:n_in].T) * a_below * (1 - a_below)
                return relative_error(rt.view(t, t._delta[layer - 1], (B, n_in)), ref, xp)
            ones = xp.ones((B, 1))
            ref = ins["Wb"] - SCALE * xp.concatenate([ins["A"], ones], axis=1).T @ ins["D"]
            return relative_error(rt.view(t, t.Wb[layer], (n_in + 1, n_out)), ref, xp)

    def close(self):
        self.t.close()


def variants(step, product, dry: bool) -> dict:
    """name -> planner: the plan, the plan unsplit, every tile configuration (the dry run: the smallest)."""
    out = {"plan": step.t.planner}
    if product.splits > 1:
        out["plan, unsplit"] = step.planner(split="1")
    configs = tile_configs(np.float32)
    for c in (configs[-1:] if dry else configs):
        out[c.name] = step.planner(tile=c.name, narrow="off")
    return out


def baselines(rt, ins, timed: bool) -> dict:
    """The same product as one plain float32 GEMM through cuBLAS (cupy.matmul) and torch.mm, timed and checked."""
    xp = rt.xp

    def float32(x):
        """x in float32, a transposed operand still transposed (as the step's matmul sees it: no copy)."""
        if x.flags.f_contiguous and not x.flags.c_contiguous:
            return xp.ascontiguousarray(x.T.astype(xp.float32)).T
        return xp.ascontiguousarray(x.astype(xp.float32))

    a32, b32 = float32(ins["a"]), float32(ins["b"])
    ref = ins["a"] @ ins["b"]
    c = xp.empty(ref.shape, xp.float32)
    out = {}
    fn = lambda: xp.matmul(a32, b32, out=c)  # noqa: E731
    seconds = rt.time_xp(fn) if timed else None
    fn()
    out["cublas" if not rt.dry else "numpy"] = {"seconds": seconds, "error": relative_error(c, ref, xp)}
    if rt.torch is not None:
        ta, tb, tc = rt.to_torch(a32), rt.to_torch(b32), rt.to_torch(c)
        tfn = lambda: rt.torch.mm(ta, tb, out=tc)  # noqa: E731
        seconds = rt.time_torch(tfn) if timed else None
        tfn()
        if not rt.dry:
            rt.torch.cuda.synchronize()
        out["torch"] = {"seconds": seconds, "error": relative_error(c, ref, xp)}
    return out


def bench_step(rt, layers, batch, timed: bool, deadline: float) -> list[dict]:
    step = Step(rt, layers, batch)
    records = []
    try:
        for product in step.t.step_plan(batch):
            if time.time() > deadline:
                break
            ins = step.inputs(product)
            rec = {"layers": list(layers), "batch": batch, "product": product.label, "kind": product.kind,
                   "layer": product.layer + 1, "m": product.m, "n": product.n, "k": product.k,
                   "flops": product.flops, "variants": []}
            for name, planner in variants(step, product, rt.dry).items():
                chosen = step.plan(product, planner)
                fn = step.call(product, planner)
                seconds = rt.time_tiled(step.t, fn) if timed else None
                rec["variants"].append({"name": name, "choice": chosen.choice, "launches": len(chosen.launches),
                                        "seconds": seconds, "error": step.run_and_check(product, planner, ins)})
            rec["baselines"] = baselines(rt, ins, timed)
            records.append(summarise(rec))
    finally:
        step.close()
    return records


def summarise(rec: dict) -> dict:
    """GFLOP/s of every timed entry; the plan's and the best variant's time ratio to cuBLAS (> 1: faster)."""
    for entry in rec["variants"] + list(rec["baselines"].values()):
        s = entry.get("seconds")
        entry["gflops"] = rec["flops"] / s / 1e9 if s else None
    timed = [v for v in rec["variants"] if v["seconds"]]
    base = rec["baselines"].get("cublas") or rec["baselines"].get("numpy") or {}
    if timed and base.get("seconds"):
        best = min(timed, key=lambda v: v["seconds"])
        plan = next(v for v in timed if v["name"] == "plan")
        rec["best_variant"] = best["name"]
        rec["plan_vs_cublas"] = base["seconds"] / plan["seconds"]
        rec["best_vs_cublas"] = base["seconds"] / best["seconds"]
        torch_s = (rec["baselines"].get("torch") or {}).get("seconds")
        rec["plan_vs_torch"] = torch_s / plan["seconds"] if torch_s else None
    rec["max_error"] = max(e["error"] for e in rec["variants"] + list(rec["baselines"].values()))
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--cpu-dry-run", action="store_true", help="PoCL / NumPy / torch-CPU instead of a GPU")
    p.add_argument("--batch-sizes", help="comma-separated (default 4096..128; dry run 16)")
    p.add_argument("--deadline", type=float, default=float("inf"), help="UNIX time after which no product starts")
    args = p.parse_args(argv)
    rt = CpuRuntime() if args.cpu_dry_run else GpuRuntime()
    batches = ([int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes
               else list(DRY_BATCHES if rt.dry else GPU_BATCHES))
    result = {"kind": "gemm-bench", "runtime": rt.name, "dry_run": rt.dry, "net": list(NET2H),
              "batch_sizes": batches, "products": [], "checks": [], "complete": False}
    out = Path(args.out)

    def save():
        out.write_text(json.dumps(result, indent=1))

    for layers, batch in AWKWARD[:1] if rt.dry else AWKWARD:
        for rec in bench_step(rt, layers, batch, timed=False, deadline=args.deadline):
            result["checks"].append(rec)
    save()
    for batch in batches:
        result["products"] += bench_step(rt, NET2H, batch, timed=True, deadline=args.deadline)
        save()
        if time.time() > args.deadline:
            break
    else:
        result["complete"] = len(result["products"]) == len(batches) * (3 * (len(NET2H) - 1) - 1)
    errors = [r["max_error"] for r in result["products"] + result["checks"]]
    result["max_error"] = max(errors, default=None)
    result["baseline_max_error"] = max((b["error"] for r in result["products"] for b in r["baselines"].values()),
                                       default=None)
    save()
    print(f"gemm-bench: {len(result['products'])} products timed, {len(result['checks'])} checked, "
          f"largest relative error {result['max_error']:.2e}" if errors else "gemm-bench: nothing measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
