"""Which benchmark points the regression gate and the asv history measure: data, in ``points.toml``.

The file (``pgdbench/harness/points.toml``; ``pgdbench gate --points FILE``
reads another) has one table per use, ``[gate]`` and ``[history]``, each
with the axes of a grid::

    [gate]
    backends = "available"        # every backend registered in either revision, or a list of names
    nets = ["net1h"]              # presets (net1h, net2h) or widths such as "784-32-10"
    batch_sizes = [32, 512]
    threads = [1, "all"]          # "all": every CPU this process may use
    sample_seconds = 0.03         # one timing covers whole batches lasting about this long

    [gate.backend.python]         # per-backend replacements of any axis
    nets = ["784-32-10"]
    batch_sizes = [4]

Serial backends (those that refuse T > 1) are measured at 1 thread only; a
backend registered but unusable here is kept, and the gate says why it was
skipped.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Union

from pgdbench.errors import UsageError
from pgdbench.harness.probe import Point, expand_table, layers_of

DEFAULT_FILE = Path(__file__).with_name("points.toml")
AXES = ("backends", "nets", "batch_sizes", "threads")


@dataclass(frozen=True)
class PointSet:
    backends: Union[str, tuple] = "available"
    nets: tuple = ("net1h",)
    batch_sizes: tuple = (32, 512)
    threads: tuple = (1, "all")
    dtype: str = "float32"
    sample_seconds: float = 0.03
    per_backend: dict = field(default_factory=dict)   # backend -> {axis: values}

    def restricted(self, backends=None, nets=None, batch_sizes=None, threads=None) -> "PointSet":
        """The same set with some general axes replaced (command-line options); a backend's own table still
        applies to it (the pure-Python backend measured on Net-1h would take minutes a timing)."""
        given = {"backends": backends, "nets": nets, "batch_sizes": batch_sizes, "threads": threads}
        return replace(self, **{k: tuple(v) for k, v in given.items() if v})


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise UsageError(f"reading {path} needs Python ≥ 3.11 or the tomli package") from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"point set file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None


def load_point_set(path: Optional[Path] = None, table: str = "gate") -> PointSet:
    """The ``[table]`` of a points file (default: the one shipped with pgdbench), checked."""
    path = Path(path) if path else DEFAULT_FILE
    data = _toml(path).get(table)
    if data is None:
        raise UsageError(f"{path} has no [{table}] table")
    known = set(AXES) | {"dtype", "sample_seconds", "backend"}
    unknown = set(data) - known
    if unknown:
        raise UsageError(f"[{table}] in {path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    where = f"[{table}] in {path}"
    for key in AXES[1:]:
        if key in data and not isinstance(data[key], list):
            raise UsageError(f"{where}: {key} must be a list, got {data[key]!r}")
    per_backend = {}
    tables = data.get("backend", {})
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        raise UsageError(f"{where}: backend must hold tables such as [{table}.backend.python], got {tables!r}")
    for name, axes in tables.items():
        bad = set(axes) - set(AXES[1:])
        if bad:
            raise UsageError(f"[{table}.backend.{name}] in {path}: unknown key(s) {', '.join(sorted(bad))}")
        if not all(isinstance(v, list) for v in axes.values()):
            raise UsageError(f"[{table}.backend.{name}] in {path}: every value must be a list")
        per_backend[name] = {k: tuple(v) for k, v in axes.items()}
    backends = data.get("backends", "available")
    if not isinstance(backends, (str, list)):
        raise UsageError(f"{where}: backends must be \"available\" or a list of names, got {backends!r}")
    point_set = PointSet(backends=backends if isinstance(backends, str) else tuple(backends),
                         **{k: tuple(data[k]) for k in AXES[1:] if k in data},
                         dtype=data.get("dtype", "float32"), sample_seconds=float(data.get("sample_seconds", 0.03)),
                         per_backend=per_backend)
    check_point_set(point_set, f"[{table}] in {path}")
    return point_set


def check_point_set(s: PointSet, where: str = "the point set") -> None:
    if isinstance(s.backends, str) and s.backends != "available":
        raise UsageError(f"{where}: backends must be \"available\" or a list of names, got {s.backends!r}")
    for axes in [vars(s), *s.per_backend.values()]:
        for net in axes.get("nets", ()):
            try:
                layers_of(net)
            except ValueError as exc:
                raise UsageError(f"{where}: {exc}") from None
        for b in axes.get("batch_sizes", ()):
            if isinstance(b, bool) or not isinstance(b, int) or b <= 0:
                raise UsageError(f"{where}: batch sizes must be positive integers, got {b!r}")
        for t in axes.get("threads", ()):
            if t != "all" and (isinstance(t, bool) or not isinstance(t, int) or t <= 0):
                raise UsageError(f"{where}: threads must be positive integers or \"all\", got {t!r}")
    if s.dtype not in ("float32", "float64"):
        raise UsageError(f"{where}: dtype must be float32 or float64, got {s.dtype!r}")
    if not 0 < s.sample_seconds <= 10:
        raise UsageError(f"{where}: sample_seconds must be in (0, 10], got {s.sample_seconds}")


def expand_points(s: PointSet, registered: list[str], cpus: int) -> list[Point]:
    """Every point of the set (:func:`pgdbench.harness.probe.expand_table`, with the set's axes).

    ``registered`` are the backends the revisions declare; a named backend
    that neither declares is kept (the gate then says it is not registered).
    """
    table = {"backends": s.backends if isinstance(s.backends, str) else list(s.backends),
             **{k: list(getattr(s, k)) for k in AXES[1:]}, "dtype": s.dtype,
             "backend": {b: {k: list(v) for k, v in axes.items()} for b, axes in s.per_backend.items()}}
    return expand_table(table, registered, cpus)
