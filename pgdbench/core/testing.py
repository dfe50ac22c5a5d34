"""The conformance kit: the checks every backend must pass, importable by anyone.

In the spirit of scikit-learn's ``check_estimator``. The project's own tests
run it on every registered backend; a third-party plugin can run it in its own
test suite::

    from pgdbench import check_backend
    def test_my_backend():
        check_backend(MyTrainer)          # raises AssertionError on the first failure

and ``pgdbench check NAME`` runs it from the command line with a report.

The oracle is :mod:`pgdbench.core.reference`, a plain float64 transcription of
Kamra et al.'s (*Parallel Gradient Descent*) algorithms, itself checked against finite differences.

Tolerances (the reasons are in each check's docstring):

* gradients, float64: relative error ‖g − g_fd‖ / (‖g‖ + ‖g_fd‖) < 1e-6
* training steps, float64: max |θ − θ_ref| < 1e-10 after 3 epochs of 6 minibatches
* training steps, float32: max |θ − θ_ref| < FLOAT32_TOLERANCE (1e-5) on the same run
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

from pgdbench.core import reference
from pgdbench.core.model import NetSpec, Parameters, epoch_order, glorot_uniform
from pgdbench.core.protocol import Availability, Parallelism, Trainer, usable_cpus
from pgdbench.core.training import Settings, fit
from pgdbench.data.dataset import Dataset
from pgdbench.data.embedded import load_mnist_sample
from pgdbench.errors import UsageError

GRADIENT_TOLERANCE = 1e-6
FLOAT64_TOLERANCE = 1e-10
#: float32 keeps ~7 significant digits. Over the check's 21 steps the numpy
#: backend ends 2e-7 from the float64 reference; 1e-5 leaves a factor of 50 for
#: other summation orders (threads, tiles, devices), while a real bug (a wrong
#: index, a missed bias, a stale weight) shows up as 1e-2 or more, and even
#: activations rounded to 3 decimals show up as 8e-5 (tests/test_kit_detects_bugs.py).
FLOAT32_TOLERANCE = 1e-5

#: Widths chosen to be awkward: not multiples of any tile or vector width,
#: an output layer of 3, a batch of 7 and a last batch of 2.
SMALL_SPEC = NetSpec((13, 9, 6, 3))
SMALL_EXAMPLES = 44
SMALL_BATCH = 7


class CheckSkipped(Exception):
    """A check that does not apply to this backend (with the reason)."""


@dataclass
class CheckResult:
    name: str
    status: str  # "passed", "failed", "skipped"
    detail: str = ""


def small_problem(seed: int = 0, spec: NetSpec = SMALL_SPEC, n: int = SMALL_EXAMPLES):
    rng = np.random.default_rng([seed, 17])
    X = rng.random((n, spec.n_inputs))
    Y = np.eye(spec.n_outputs)[rng.integers(0, spec.n_outputs, n)]
    return spec, glorot_uniform(spec, seed, np.float64), X, Y


def make(cls: type, spec: NetSpec, params: Parameters, dtype=np.float64, threads: int = 1,
         options: Optional[dict] = None) -> Trainer:
    return cls(spec, params.copy(dtype), dtype=dtype, threads=threads, options=options)


def thread_counts(cls: type) -> list[int]:
    """1 and, where the backend uses threads and the machine has them, 2 (uneven splits show up at 2)."""
    return [1, 2] if cls.uses_threads and usable_cpus() >= 2 else [1]


# -- the checks ------------------------------------------------------------

def check_protocol(cls: type) -> None:
    """Declared facts are well formed; state round-trips; bad input is refused with UsageError."""
    assert isinstance(cls, type) and issubclass(cls, Trainer), f"{cls} is not a pgdbench Trainer"
    assert cls.name and isinstance(cls.name, str), "name must be a non-empty string"
    assert isinstance(cls.parallelism, Parallelism), "parallelism must be a Parallelism member"
    assert cls.serial_counterpart, "serial_counterpart must name a backend (itself if it is serial)"
    assert cls.device in ("cpu", "gpu", "cluster"), f"device must be cpu, gpu or cluster, not {cls.device!r}"
    assert isinstance(cls.options, dict)
    avail = cls.availability()
    assert isinstance(avail, Availability), "availability() must return an Availability"
    if not avail:
        raise CheckSkipped(f"unavailable here: {avail.reason}")
    spec, params, X, Y = small_problem()
    with make(cls, spec, params, options=cls.reference_options or {}) as t:
        got = t.get_weights()
        assert got.max_abs_diff(params) == 0.0, "get_weights() must return the initial parameters exactly"
        got.weights[0][...] = 123.0
        assert t.get_weights().max_abs_diff(params) == 0.0, "get_weights() must return a copy"
        moved = params.copy()
        moved.weights[-1] += 0.5
        t.set_weights(moved)
        assert t.get_weights().max_abs_diff(moved) == 0.0, "set_weights() then get_weights() must round-trip"
        t.load_data(X, Y)
        out = t.predict(X[:5])
        assert out.shape == (5, spec.n_outputs), f"predict() shape {out.shape}, expected (5, {spec.n_outputs})"
        np.testing.assert_allclose(out, reference.forward(moved, X[:5])[-1], rtol=1e-10, atol=1e-12,
                                   err_msg="predict() must equal the reference forward pass")
        for bad in (lambda: t.load_data(X[:, :-1], Y), lambda: t.load_data(X, Y[:-1])):
            try:
                bad()
            except UsageError:
                pass
            else:
                raise AssertionError("load_data() with wrong shapes must raise UsageError")
    for bad_threads in (0, -1):
        try:
            make(cls, spec, params, threads=bad_threads)
        except UsageError:
            pass
        else:
            raise AssertionError(f"threads={bad_threads} must raise UsageError")


def check_gradients(cls: type, threads: int = 1) -> None:
    """Loss equals the definition and gradients equal central finite differences (float64)."""
    spec, params, X, Y = small_problem(seed=1)
    with make(cls, spec, params, threads=threads, options=cls.reference_options or {}) as t:
        t.load_data(X, Y)
        loss, grads = t.loss_and_gradients(X[:SMALL_BATCH + 4], Y[:SMALL_BATCH + 4])
    Xb, Yb = X[:SMALL_BATCH + 4], Y[:SMALL_BATCH + 4]
    expected_loss = reference.loss(params, Xb, Yb)
    assert abs(loss - expected_loss) <= 1e-12 * max(1.0, abs(expected_loss)), \
        f"loss {loss!r} differs from the definition {expected_loss!r}"
    fd = reference.finite_difference_gradients(lambda p: reference.loss(p, Xb, Yb), params)
    g, f = np.concatenate([a.ravel() for a in grads.arrays()]), np.concatenate([a.ravel() for a in fd.arrays()])
    assert g.shape == f.shape, f"gradient has {g.size} entries, expected {f.size}"
    rel = np.linalg.norm(g - f) / max(np.linalg.norm(g) + np.linalg.norm(f), 1e-300)
    assert rel < GRADIENT_TOLERANCE, f"relative error of gradients vs finite differences {rel:.2e} ≥ {GRADIENT_TOLERANCE}"


def check_training_steps(cls: type, threads: int = 1, dtype=np.float64, epochs: int = 3) -> None:
    """Parameters after whole epochs of minibatch GD equal the float64 reference's.

    Same initial parameters, same shuffled order, batches of 7 with a last
    batch of 2; learning rate 0.5 so that the parameters move visibly.
    """
    if cls.reference_options is None:
        raise CheckSkipped("the backend declares no options under which it is plain minibatch GD")
    dtype = np.dtype(dtype)
    spec, params, X, Y = small_problem(seed=2)
    expected = params.copy(np.float64)
    with make(cls, spec, params, dtype=dtype, threads=threads, options=cls.reference_options) as t:
        t.load_data(X.astype(dtype), Y.astype(dtype))
        for epoch in range(epochs):
            order = epoch_order(len(X), seed=2, epoch=epoch)
            t.train_epoch(order, SMALL_BATCH, 0.5)
            expected = reference.train_epoch(expected, X, Y, order, SMALL_BATCH, 0.5)
        got = t.get_weights()
    for a in got.arrays():
        assert a.dtype == dtype, f"get_weights() returned {a.dtype} arrays for a {dtype} trainer"
    moved = expected.max_abs_diff(params)
    assert moved > 1e-2, f"the reference moved only {moved}: the check would be vacuous"
    tol = FLOAT64_TOLERANCE if dtype == np.float64 else FLOAT32_TOLERANCE
    diff = got.max_abs_diff(expected)
    assert diff < tol, f"{dtype.name} parameters differ from the reference by {diff:.3e} ≥ {tol} after {epochs} epochs"


def downsampled_digits(seed: int = 0):
    """The embedded digits pooled 2×2 to 14×14: real digits, small enough for the pure-Python backend."""

    d = load_mnist_sample(seed)

    def pool(X):
        return X.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4))

    return Dataset("mnist-sample-14x14", pool(d.X_train[:1000]).reshape(-1, 196), d.y_train[:1000],
                   pool(d.X_val).reshape(-1, 196), d.y_val, pool(d.X_test).reshape(-1, 196), d.y_test,
                   n_classes=10, source=d.source + " (2×2 mean-pooled, first 1,000 training digits)")


def check_convergence(cls: type, threads: int = 1, min_accuracy: float = 0.80) -> float:
    """On real handwritten digits a small net clearly learns: validation accuracy ≥ 80 % (chance is 10 %).

    Fast backends: the embedded 4,000 digits, 784-64-10, 4 epochs of batch 20.
    Backends marked ``projected`` (too slow for that): the digits pooled to
    14×14, 1,000 of them, 196-24-10, 6 epochs of batch 10 at rate 3.0 (with
    batch 20 at 2.0, as for the fast backends, even the float64 reference
    reaches only 78-79 % there; batch 10 at 3.0 gives 85-87 % over seeds 0-2).
    """

    if cls.projected:
        data, spec, epochs, batch, rate = downsampled_digits(), NetSpec((196, 24, 10)), 6, 10, 3.0
    else:
        data, spec, epochs, batch, rate = load_mnist_sample(), NetSpec((784, 64, 10)), 4, 20, 2.0
    settings = Settings(batch, rate, threads, options=cls.reference_options or {})
    result = fit(cls, spec, data, settings, epochs=epochs, evaluate_every_epoch=False)
    acc = result.epochs[-1].val_accuracy
    assert acc >= min_accuracy, f"validation accuracy {acc:.3f} < {min_accuracy} on {data.name} after {epochs} epochs"
    return acc


# -- running them all ------------------------------------------------------

def with_options(cls: type, options: dict) -> type:
    """``cls`` held to the kit under ``options`` (say a GEMM provider or an elementwise strategy): a subclass whose
    reference options are the backend's own updated by ``options`` (they must not turn off plain minibatch GD:
    the kit cannot tell)."""
    if not options:
        return cls
    return type(cls.__name__, (cls,), {"name": cls.name, "__module__": cls.__module__,
                                       "reference_options": {**(cls.reference_options or {}), **options}})


def checks_for(cls: type) -> list[tuple[str, Callable[[], object]]]:
    """(name, thunk) of every check that applies to ``cls``, in the order they should run."""
    out = [("protocol", lambda: check_protocol(cls))]
    for t in thread_counts(cls):
        out.append((f"gradients[threads={t}]", lambda t=t: check_gradients(cls, t)))
    for t in thread_counts(cls):
        for dt in (np.float64, np.float32):
            out.append((f"training-steps[{np.dtype(dt).name},threads={t}]",
                        lambda t=t, dt=dt: check_training_steps(cls, t, dt)))
    out.append(("convergence", lambda: check_convergence(cls, thread_counts(cls)[-1])))
    return out


def run_checks(cls: type, only: Optional[Iterable[str]] = None) -> list[CheckResult]:
    """Run every check, catching failures, for a readable report."""
    results = []
    avail = cls.availability()
    for name, thunk in checks_for(cls):
        if only and not any(name.startswith(o) for o in only):
            continue
        if not avail and name != "protocol":
            results.append(CheckResult(name, "skipped", f"unavailable here: {avail.reason}"))
            continue
        try:
            value = thunk()
            results.append(CheckResult(name, "passed", f"{value:.3f}" if isinstance(value, float) else ""))
        except CheckSkipped as exc:
            results.append(CheckResult(name, "skipped", str(exc)))
        except AssertionError as exc:
            results.append(CheckResult(name, "failed", str(exc) or "assertion failed"))
        except Exception as exc:
            results.append(CheckResult(name, "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
    return results


def check_backend(cls: type) -> None:
    """Run every check and raise AssertionError naming the first failure (for third-party test suites)."""
    failures = [r for r in run_checks(cls) if r.status == "failed"]
    if failures:
        raise AssertionError("; ".join(f"{r.name}: {r.detail}" for r in failures))
