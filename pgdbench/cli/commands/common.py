"""Arguments and helpers shared by several subcommands."""
from __future__ import annotations

import argparse
import math
import sys

from pgdbench.core import registry
from pgdbench.core.files import check_output
from pgdbench.core.model import DTYPES, resolve_net
from pgdbench.core.mpi import is_root
from pgdbench.core.protocol import check_threads, resolve_options
from pgdbench.data import load_dataset
from pgdbench.errors import UsageError


def count(n: int, noun: str, plural: str = "") -> str:
    """``1 configuration``, ``2 configurations``: a number and its noun, agreeing."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def record_config(args, *leave_out: str) -> dict:
    """A command's arguments as stored in its results file's run_start record (not the handler itself)."""
    return {k: v for k, v in vars(args).items() if k not in ("run", *leave_out)}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def seed(text: str) -> int:
    """A random seed: NumPy's generators take non-negative integers only (-1 ended in a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed must be 0 or positive, got {value}")
    return value


def seed_list(text: str) -> list[int]:
    values = [seed(t) for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated seeds, got {text!r}")
    return values


def int_list(text: str) -> list[int]:
    return [positive_int(t) for t in text.split(",") if t.strip()]


def float_list(text: str) -> list[float]:
    return [positive_float(t) for t in text.split(",") if t.strip()]


def add_data_arguments(p: argparse.ArgumentParser, default: str = "mnist-sample") -> None:
    p.add_argument("--dataset", default=default,
                   help="mnist-sample (embedded, offline), mnist, synthetic[:N], kddcup99[:types|:categories], "
                        f"npz:PATH (default {default})")
    p.add_argument("--data-dir", help="folder holding the data files (else $PGDBENCH_DATA, the cache, a download)")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--net", default=None,
                   help="preset: net1h (784-1024-10) or net2h (784-1024-1024-10) (default net1h)")
    p.add_argument("--layers", help="explicit widths, e.g. 784,300,10 (overrides --net)")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the initial weights and the example order, 0 or positive (default 0)")
    p.add_argument("--no-shuffle", action="store_true", help="visit the examples in file order every epoch")


def add_option_argument(p: argparse.ArgumentParser, extra_help: str = "") -> None:
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend-specific option (repeatable); `pgdbench list -v` shows them" + extra_help)


def parse_options(items: list[str]) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--option expects KEY=VALUE, got {item!r}")
        options[key.strip()] = value.strip()
    return options


def load_data(args):
    return load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed)


def resolve_spec(args, dataset, net=None):
    return resolve_net(net if net is not None else args.net, args.layers, dataset.n_features, dataset.n_classes)


class EpochBars:
    """A progress_factory for training.fit: one bar per epoch, with time left, gone once the epoch's examples are
    done, so that the line printed for the epoch starts on a clean line (the bar writes to stderr, the epoch
    line to stdout, and on a terminal both land on the same line). :meth:`close` removes a bar still shown."""

    def __init__(self, label: str):
        self.label, self.bar = label, None

    def __call__(self, epoch: int, total: int):
        from tqdm import tqdm

        self.close()
        self.bar = tqdm(total=total, desc=f"{self.label} epoch {epoch}", unit="ex", unit_scale=True, leave=False,
                        file=sys.stderr, mininterval=0.5)

        def update(n: int = 1) -> None:
            if self.bar is not None:
                self.bar.update(n)
                if self.bar.n >= self.bar.total:
                    self.close()
        return update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def tqdm_progress(enabled: bool, label: str) -> EpochBars | None:
    """Per-epoch progress bars for training.fit, or None (no bars) when not ``enabled``."""
    return EpochBars(label) if enabled else None


class _Lines:
    """Stand-in for the overall bar when there is no terminal: plain lines, same interface."""

    def write(self, text: str) -> None:
        print(text, flush=True)

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _Bar(_Lines):
    def __init__(self, total: int):
        from tqdm import tqdm
        self.bar = tqdm(total=total, desc="grid", unit="config", file=sys.stderr, position=0, leave=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining} left]")

    def write(self, text: str) -> None:
        self.bar.write(text, file=sys.stdout)
        sys.stdout.flush()

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def grid_progress(enabled: bool, total: int):
    """Overall progress of a grid (configurations done, time left), or plain lines without a terminal."""
    return _Bar(total) if enabled else _Lines()


def check_outputs(results=None, save=None, out=None) -> None:
    """The files a command will write (``--results`` appended to, ``--save`` replaced, ``--out`` a folder),
    checked before the work, so that none is lost for want of a place to put it. Under mpiexec only rank 0
    writes, and only it checks."""
    if not is_root():
        return
    if results:
        check_output(results, "--results", replace=False)
    if save:
        check_output(save, "--save")
    if out:
        check_output(out, "--out", folder=True)


def prepare_run(args):
    """The backend class, its options, the data set and the net of a single-backend command (train, tune, ...).

    Everything that can be checked without the data is checked first (outputs, backend, threads, options), so
    that a mistake costs no data loading."""

    check_outputs(results=getattr(args, "results", None), save=getattr(args, "save", None))
    cls = registry.get_available(args.backend)
    check_threads(args.threads, cls.uses_threads, cls.name)
    options = parse_options(args.option)
    resolve_options(cls, options)
    dataset = load_data(args)
    return cls, options, dataset, resolve_spec(args, dataset)
