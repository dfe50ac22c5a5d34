"""Time one benchmark point of *any* revision of pgdbench: the worker the gate and the asv suite run.

The regression gate compares two revisions, and asv replays history, so the
code that measures cannot be the code being measured: a revision's own
harness may differ, or not exist yet. This module therefore imports nothing
from the project it measures but the trainer protocol, which has not changed
since the protocol's first commit: a backend class found through the
``pgdbench.implementations`` entry points, ``NetSpec`` and ``Parameters``, and
the trainer's ``__init__(spec, params, dtype=, threads=, options=)``,
``load_data``, ``train_epoch``, ``set_params``/``set_weights`` and ``close``.
It makes its own data (MNIST-shaped, from a seeded generator) and its own
initial weights (Glorot-uniform, drawn in float64 and cast), so both revisions
of a comparison train exactly the same numbers.

Two ways in:

* :class:`Point` + :func:`prepare` / :meth:`Prepared.sample`, imported by the
  asv suite (which loads this file by path, see ``benchmarks/``);
* ``python probe.py --tree DIR``: a worker process that answers JSON requests
  on stdin, one per line (``calibrate``, ``setup``, ``sample``, ``teardown``,
  ``info``), with one JSON line each on stdout. Anything the measured code
  prints goes to stderr, so it cannot corrupt the replies.

Nothing here may import from ``pgdbench`` at module level: when run as a
worker, ``pgdbench`` must resolve to the revision under test (``--tree``).
"""
from __future__ import annotations

import gc
import importlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

#: The paper's two networks: hidden widths between the 784 MNIST inputs and the 10 classes.
NETS = {"net1h": (1024,), "net2h": (1024, 1024)}
N_INPUTS, N_OUTPUTS = 784, 10
GROUP = "pgdbench.implementations"
LEARNING_RATE = 0.1
#: What a time per minibatch step is projected to: the MNIST training split of the main study.
EPOCH_EXAMPLES = 50_000
#: Untimed batches run before any timing (JIT compilation, kernel builds, thread start-up).
WARMUP_BATCHES = 2


class Skip(Exception):
    """The point cannot be measured here (backend not installed, no GPU, more threads than CPUs, ...).

    ``applies`` is False when the point makes no sense for the backend at all
    (a serial backend at T > 1): a grid lists such points, nobody meant them.
    """

    def __init__(self, reason: str, applies: bool = True):
        super().__init__(reason)
        self.applies = applies


@dataclass(frozen=True)
class Point:
    """One benchmark point: what is trained, on how many threads, and how much of it one timing covers."""

    backend: str
    net: str = "net1h"
    batch_size: int = 128
    threads: int = 1
    dtype: str = "float32"
    options: tuple = ()          # sorted (key, value) pairs
    examples: int = 0            # examples per timing: a whole number of batches (0: one batch)

    @property
    def label(self) -> str:
        opts = "".join(f",{k}={v}" for k, v in self.options)
        return f"{self.backend} {self.net} B={self.batch_size} T={self.threads}{'' if self.dtype == 'float32' else ' ' + self.dtype}{opts}"

    def layers(self) -> tuple[int, ...]:
        """Widths from input to output: a preset of :data:`NETS`, or explicit widths such as ``784-32-10``."""
        return layers_of(self.net)

    @classmethod
    def from_label(cls, label: str) -> "Point":
        """The point a :attr:`label` names (how asv stores its parameter), e.g. ``numpy net1h B=32 T=1``."""
        words = label.split()
        if len(words) < 4 or not words[2].startswith("B=") or not words[3].startswith("T="):
            raise ValueError(f"not a benchmark point label: {label!r}")
        threads, *opts = words[3][2:].split(",")
        dtype = words[4] if len(words) > 4 else "float32"
        options = tuple(tuple(o.split("=", 1)) for o in opts)
        return cls(words[0], words[1], int(words[2][2:]), int(threads), dtype, options)


def layers_of(net: str) -> tuple[int, ...]:
    if net in NETS:
        return (N_INPUTS, *NETS[net], N_OUTPUTS)
    try:
        widths = tuple(int(w) for w in net.split("-"))
    except ValueError:
        widths = ()
    if len(widths) < 2 or min(widths) <= 0:
        raise ValueError(f"net {net!r} is neither a preset ({', '.join(NETS)}) nor widths like 784-32-10")
    return widths


def read_table(path: str, table: str) -> dict:
    """One table of a points file (``pgdbench/harness/points.toml``), as written; checked by the gate, not here."""
    import tomllib

    with open(path, "rb") as f:
        return tomllib.load(f)[table]


def expand_table(table: dict, registered, cpus: int) -> list[Point]:
    """The points of a table: backends × nets × batch sizes × threads, each backend's own axes applied.

    ``backends = "available"`` means ``registered``; threads ``"all"`` means ``cpus``.
    """
    backends = list(registered) if table.get("backends", "available") == "available" else list(table["backends"])
    points = []
    for backend in backends:
        axes = {**table, **table.get("backend", {}).get(backend, {})}
        threads = sorted({cpus if t == "all" else int(t) for t in axes["threads"]})
        for net in axes["nets"]:
            for batch in axes["batch_sizes"]:
                for t in threads:
                    points.append(Point(backend, net, int(batch), t, table.get("dtype", "float32")))
    return list(dict.fromkeys(points))


# -- the revision's protocol, whatever its layout -------------------------------------------------

def registered_backends(tree: Optional[str] = None) -> list[str]:
    """The backends the revision declares (its pyproject.toml, else the installed package's entry points)."""
    return sorted(_entry_point_targets(tree))


def _entry_point_targets(tree: Optional[str]) -> dict[str, str]:
    """name → "module:Class" from the tree's pyproject.toml, else from the installed package metadata."""
    targets: dict[str, str] = {}
    if tree:
        path = os.path.join(tree, "pyproject.toml")
        try:
            import tomllib
        except ImportError:  # Python 3.10
            tomllib = None
        if tomllib is not None and os.path.isfile(path):
            with open(path, "rb") as f:
                project = tomllib.load(f).get("project", {})
            targets.update(project.get("entry-points", {}).get(GROUP, {}))
    if not targets:
        from importlib.metadata import entry_points
        targets = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    return targets


def backend_class(name: str, tree: Optional[str] = None):
    targets = _entry_point_targets(tree)
    if name not in targets:
        raise Skip(f"backend {name!r} is not registered in this revision (registered: {', '.join(sorted(targets))})")
    module, _, attr = targets[name].partition(":")
    try:
        cls = importlib.import_module(module)
        for part in attr.split("."):
            cls = getattr(cls, part)
    except ImportError as exc:
        raise Skip(f"backend {name!r} cannot be imported: {exc}") from None
    return cls


def _protocol_types():
    """NetSpec and Parameters of the revision: the package API if it has one, else the modules of older layouts."""
    for module in ("pgdbench", "pgdbench.core.model", "pgdbench.model"):
        try:
            found = importlib.import_module(module)
            return found.NetSpec, found.Parameters
        except (ImportError, AttributeError):
            continue
    raise ImportError("no NetSpec/Parameters in this revision of pgdbench")


def _skip_reason(exc: BaseException) -> Optional[str]:
    """The revision's way of saying "not here" (UsageError, BackendUnavailable), recognised by class name."""
    names = {c.__name__ for c in type(exc).__mro__}
    if names & {"UsageError", "BackendUnavailable"}:
        return str(exc)
    return None


# -- one point, ready to time ----------------------------------------------------------------------

@dataclass
class Prepared:
    point: Point
    trainer: object
    initial: object
    order: object
    setup_seconds: float
    projected: bool = False      # the backend says its epoch times are projected (too slow for whole epochs)
    _reset: object = field(repr=False, default=None)

    def reset(self) -> None:
        self._reset(self.initial)

    def sample(self) -> float:
        """Wall seconds for one pass over the point's examples, from the initial weights (reset untimed)."""
        return self.timed()[0]

    def timed(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds of the whole process) of one pass over the point's examples.

        The CPU time counts every thread of the process and nothing else: no
        time the process waited for a core that another program held, nor (in
        a VM with a paravirtual steal clock) time the host took the vCPU away.
        """
        self.reset()
        enabled = gc.isenabled()
        gc.disable()  # as timeit does: a collection would land on one timing and not its pair
        try:
            cpu, start = time.process_time(), time.perf_counter()
            self.trainer.train_epoch(self.order, self.point.batch_size, LEARNING_RATE)
            return time.perf_counter() - start, time.process_time() - cpu
        finally:
            if enabled:
                gc.enable()

    def close(self) -> None:
        self.trainer.close()


def prepare(point: Point, tree: Optional[str] = None, seed: int = 0) -> Prepared:
    """Build the trainer, hand it the data, warm it up. Raises :class:`Skip` if the point cannot run here."""
    import numpy as np

    start = time.perf_counter()
    cls = backend_class(point.backend, tree)
    availability = cls.availability()
    if not availability:
        raise Skip(getattr(availability, "reason", "") or f"backend {point.backend!r} is unavailable here")
    if not getattr(cls, "uses_threads", True) and point.threads != 1:
        raise Skip(f"{point.backend} is serial: threads={point.threads} does not apply", applies=False)
    NetSpec, Parameters = _protocol_types()
    widths = point.layers()
    spec = NetSpec(widths)
    dtype = np.dtype(point.dtype)
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        limit = math.sqrt(6.0 / (n_in + n_out))
        weights.append(rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype))
        biases.append(np.zeros(n_out, dtype=dtype))
    initial = Parameters(weights, biases)
    examples = point.examples or point.batch_size
    if examples % point.batch_size:
        raise ValueError(f"examples per timing ({examples}) must be a whole number of batches of {point.batch_size}")
    X = rng.random((examples, widths[0])).astype(dtype)
    Y = np.zeros((examples, widths[-1]), dtype)
    Y[np.arange(examples), rng.integers(0, widths[-1], examples)] = 1
    order = rng.permutation(examples).astype(np.int64)
    try:
        trainer = cls(spec, initial, dtype=dtype, threads=point.threads, options=dict(point.options))
    except Exception as exc:
        reason = _skip_reason(exc)
        if reason is not None:
            raise Skip(reason) from None
        raise
    reset = getattr(trainer, "set_weights", None) or trainer.set_params
    prepared = Prepared(point, trainer, initial, order, 0.0, bool(getattr(cls, "projected", False)), reset)
    try:
        trainer.load_data(X, Y)
        warm = order[: min(examples, WARMUP_BATCHES * point.batch_size)]
        trainer.train_epoch(warm, point.batch_size, LEARNING_RATE)  # every buffer touched: no page fault is timed
        gc.collect()   # here, not before every timing: with torch loaded a full collection takes 0.2 s
        gc.freeze()    # and what survives it is not scanned again by the next point's collection
    except BaseException:
        trainer.close()
        raise
    prepared.setup_seconds = time.perf_counter() - start
    return prepared


def calibrate(point: Point, target_seconds: float, tree: Optional[str] = None,
              max_batches: int = 64) -> tuple[int, float, float, bool]:
    """(examples per timing, wall and CPU seconds per batch, projected): the fewest whole batches that take
    at least ``target_seconds`` (at most ``max_batches``), from the best of five one-batch timings."""
    one = prepare(Point(**{**asdict(point), "examples": point.batch_size}), tree)
    try:
        timings = [one.timed() for _ in range(5)]
    finally:
        one.close()
    best = min(wall for wall, _ in timings)
    cpu = min(c for _, c in timings)   # the least disturbed of each: a wait inflates the wall time, not the CPU time
    batches = max(1, min(max_batches, math.ceil(target_seconds / max(best, 1e-9))))
    return batches * point.batch_size, best, cpu, one.projected


# -- the worker process ---------------------------------------------------------------------------

def _point(request: dict) -> Point:
    fields = {k: request[k] for k in ("backend", "net", "batch_size", "threads", "dtype", "examples") if k in request}
    return Point(**fields, options=tuple(sorted((request.get("options") or {}).items())))


def _info(tree: Optional[str]) -> dict:
    import numpy as np

    files = {}
    for package in ("pgdbench", "implementations"):
        try:
            found = importlib.import_module(package)
        except ImportError:
            continue
        files[package] = [os.path.abspath(p) for p in found.__path__]  # namespace packages have no __file__
    blas = []
    try:
        from threadpoolctl import threadpool_info
        blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for i in threadpool_info()]
    except ImportError:
        pass
    return {"files": files, "numpy": np.__version__, "python": sys.version.split()[0], "blas": blas,
            "backends": registered_backends(tree), "pid": os.getpid()}


def describe(names, tree: Optional[str] = None) -> dict:
    """What the gate must know of each backend before measuring it: can it run here, does it take threads,
    are its epoch times projected (its time per example does not depend on the batch size)."""
    out = {}
    for name in names:
        try:
            cls = backend_class(name, tree)
            availability = cls.availability()
            out[name] = {"available": bool(availability),
                         "reason": "" if availability else (getattr(availability, "reason", "") or "unavailable"),
                         "uses_threads": bool(getattr(cls, "uses_threads", True)),
                         "projected": bool(getattr(cls, "projected", False)),
                         "device": str(getattr(cls, "device", "cpu"))}
        except Skip as exc:
            out[name] = {"available": False, "reason": str(exc), "uses_threads": True, "projected": False}
        except Exception as exc:  # a plugin that fails to import is reported, the others still measured
            out[name] = {"available": False, "reason": f"{type(exc).__name__}: {exc}", "uses_threads": True,
                         "projected": False}
    return out


def serve(tree: Optional[str], requests, reply) -> None:
    """Answer each request (a JSON line) with one JSON line; the prepared point lives between setup and teardown."""
    prepared: Optional[Prepared] = None
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.get("op")
        try:
            if op == "info":
                answer = {"status": "ok", **_info(tree)}
            elif op == "describe":
                answer = {"status": "ok", "backends": describe(request["backends"], tree)}
            elif op == "calibrate":
                examples, per_batch, cpu_per_batch, projected = calibrate(_point(request),
                                                                          float(request["target_seconds"]), tree)
                answer = {"status": "ok", "examples": examples, "seconds_per_batch": per_batch,
                          "cpu_seconds_per_batch": cpu_per_batch, "projected": projected}
            elif op == "setup":
                if prepared is not None:
                    prepared.close()
                    prepared = None
                prepared = prepare(_point(request), tree, int(request.get("seed", 0)))
                answer = {"status": "ok", "setup_seconds": prepared.setup_seconds}
            elif op == "sample":
                if prepared is None:
                    raise RuntimeError("sample before setup")
                timings = [prepared.timed() for _ in range(int(request.get("count", 1)))]
                answer = {"status": "ok", "seconds": [w for w, _ in timings], "cpu_seconds": [c for _, c in timings]}
            elif op == "teardown":
                if prepared is not None:
                    prepared.close()
                    prepared = None
                answer = {"status": "ok"}
            else:
                answer = {"status": "error", "reason": f"unknown request {op!r}"}
        except Skip as exc:
            answer = {"status": "skipped", "reason": str(exc), "applies": exc.applies}
        except Exception as exc:  # the revision's bug: reported, the worker lives on
            answer = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
        reply(answer)
    if prepared is not None:
        prepared.close()


def pin_packages(tree: str, packages=("pgdbench", "implementations")) -> None:
    """Make ``packages`` resolve to the tree's copies, whatever else is installed.

    Putting the tree first on sys.path is not enough: an older revision's
    ``pgdbench/`` has no ``__init__.py``, and a namespace package takes
    portions from every entry of sys.path (an editable install's hook
    included), while an installed regular package would win outright.
    """
    import importlib.util
    from importlib.machinery import ModuleSpec

    for name in packages:
        folder = os.path.join(tree, name)
        if not os.path.isdir(folder):
            continue
        init = os.path.join(folder, "__init__.py")
        if os.path.isfile(init):
            spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[folder])
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            spec = ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [folder]
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module


def main(argv=None) -> int:
    import argparse

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # the revision's modules, not ours
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="the revision's source tree (its pyproject.toml names the backends)")
    args = parser.parse_args(argv)
    if args.tree:
        pin_packages(os.path.abspath(args.tree))
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)            # whatever the measured code prints goes to stderr, not into the replies
    sys.stdout = sys.stderr

    def reply(answer: dict) -> None:
        channel.write(json.dumps(answer) + "\n")
        channel.flush()

    serve(args.tree, sys.stdin, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
