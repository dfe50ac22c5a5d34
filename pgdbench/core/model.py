"""The network being trained: layer sizes, initial parameters, and the FLOP model.

Everything a backend needs to start from exactly the same point as every other
backend lives here, so that cross-backend comparisons are comparisons of the
implementations and nothing else.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pgdbench.core.files import atomic_write_bytes
from pgdbench.errors import UsageError

#: Presets of Kamra et al., *Parallel Gradient Descent*. Hidden widths are fixed; the input and output widths
#: follow the data set, so that on MNIST they are exactly 784-1024-10 and
#: 784-1024-1024-10 and on KDD Cup 1999 the same hidden layers are used.
PRESETS: dict[str, tuple[int, ...]] = {
    "net1h": (1024,),
    "net2h": (1024, 1024),
}

DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass(frozen=True)
class NetSpec:
    """Layer widths from input to output, e.g. (784, 1024, 10)."""

    layers: tuple[int, ...]
    name: str = ""

    def __post_init__(self):
        if len(self.layers) < 2:
            raise UsageError(f"a network needs at least an input and an output layer, got {self.layers}")
        if any(int(n) != n or n <= 0 for n in self.layers):
            raise UsageError(f"layer widths must be positive integers, got {self.layers}")
        object.__setattr__(self, "layers", tuple(int(n) for n in self.layers))
        if not self.name:
            object.__setattr__(self, "name", "-".join(map(str, self.layers)))

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(n_in, n_out) of every weight matrix, input side first."""
        return list(zip(self.layers[:-1], self.layers[1:]))

    @property
    def n_parameters(self) -> int:
        return sum(i * o + o for i, o in self.shapes)

    @property
    def n_inputs(self) -> int:
        return self.layers[0]

    @property
    def n_outputs(self) -> int:
        return self.layers[-1]

    def flops_per_example(self) -> int:
        """Multiply-adds of one training example, counted as 2 FLOPs each.

        Forward z = Wᵀa: 2·n_in·n_out per layer. Weight gradient a·δᵀ:
        2·n_in·n_out per layer. Delta propagation W·δ: 2·n_in·n_out for every
        layer but the first (no delta is needed for the input). Elementwise
        work (bias, sigmoid, σ', the update itself) is *not* counted: it is
        O(n) per layer against O(n²) and the paper counts matrix work only.
        """
        total = 0
        for k, (i, o) in enumerate(self.shapes):
            total += 2 * i * o  # forward
            total += 2 * i * o  # weight gradient
            if k > 0:
                total += 2 * i * o  # delta to the layer below
        return total

    def flops_per_epoch(self, n_examples: int) -> int:
        return self.flops_per_example() * int(n_examples)


def resolve_net(net: str | None, layers: str | Sequence[int] | None, n_inputs: int, n_outputs: int) -> NetSpec:
    """Build the NetSpec from a preset name or an explicit layer list (``net`` may be one too), checked
    against the data."""
    if layers is None and net is not None and net not in PRESETS and net[:1].isdigit():
        layers = net                       # --net 784,128,10
    if layers is not None:
        if isinstance(layers, str):
            try:
                widths = tuple(int(x) for x in layers.replace("-", ",").split(",") if x.strip())
            except ValueError:
                raise UsageError(f"--layers must be comma-separated integers like 784,300,10, got {layers!r}") from None
        else:
            widths = tuple(layers)
        spec = NetSpec(widths)
        if spec.n_inputs != n_inputs or spec.n_outputs != n_outputs:
            raise UsageError(
                f"layers {spec.name} do not match the data: it has {n_inputs} inputs and "
                f"{n_outputs} classes, so the first width must be {n_inputs} and the last {n_outputs}"
            )
        return spec
    net = net or "net1h"
    if net not in PRESETS:
        raise UsageError(f"unknown net {net!r}; presets are {', '.join(PRESETS)} (or give --layers)")
    return NetSpec((n_inputs, *PRESETS[net], n_outputs), name=net if (n_inputs, n_outputs) == (784, 10) else "")


@dataclass
class Parameters:
    """Weights W_l of shape (n_in, n_out) and biases b_l of shape (n_out,), input side first.

    z_l = W_lᵀ a_{l-1} + b_l as in Kamra et al., *Parallel Gradient Descent*; with examples as rows this is
    Z = A W + b.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray] = field(default_factory=list)

    def copy(self, dtype=None) -> "Parameters":
        return Parameters([np.array(w, dtype=dtype or w.dtype, order="C") for w in self.weights],
                          [np.array(b, dtype=dtype or b.dtype) for b in self.biases])

    def arrays(self) -> list[np.ndarray]:
        """All arrays, weights then biases layer by layer: W1, b1, W2, b2, ..."""
        out = []
        for w, b in zip(self.weights, self.biases):
            out += [w, b]
        return out

    def max_abs_diff(self, other: "Parameters") -> float:
        return max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                   for a, b in zip(self.arrays(), other.arrays()))

    def check_against(self, spec: NetSpec) -> None:
        shapes = [w.shape for w in self.weights]
        if shapes != spec.shapes or [b.shape for b in self.biases] != [(o,) for _, o in spec.shapes]:
            raise UsageError(f"parameters have shapes {shapes}, the network {spec.name} needs {spec.shapes}")

    def save(self, path) -> None:
        buf = io.BytesIO()
        np.savez(buf, **{f"W{k}": w for k, w in enumerate(self.weights, 1)},
                 **{f"b{k}": b for k, b in enumerate(self.biases, 1)})
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> "Parameters":
        with np.load(path) as f:
            n = len([k for k in f.files if k.startswith("W")])
            return cls([f[f"W{k}"] for k in range(1, n + 1)], [f[f"b{k}"] for k in range(1, n + 1)])


def sigmoid_(z: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """z ← σ(z + bias) in place, as 1 / (1 + exp(−(z + bias))); returns z.

    Written as five passes of NumPy ufuncs rather than ``scipy.special.expit``
    because NumPy's ``exp`` is SIMD-vectorised and expit is not: on 512×1024
    float32 this takes about 1.5 ms against expit's 4 ms, and in a Net-2h step
    at batch 512 the sigmoid was a sixth of the time. Where z + bias < −88
    (float32) exp overflows to inf and 1 / (1 + inf) = 0 is the correct limit,
    so that overflow (and the underflow at the other end) is not reported.
    """
    if bias is not None:
        z += bias
    np.negative(z, out=z)
    with np.errstate(over="ignore", under="ignore"):
        np.exp(z, out=z)
    z += 1
    np.reciprocal(z, out=z)
    return z


def glorot_uniform(spec: NetSpec, seed: int = 0, dtype=np.float32) -> Parameters:
    """Glorot-uniform weights U(±sqrt(6/(n_in+n_out))) and zero biases.

    Drawn in float64 from one seeded generator and only then cast, so float32
    and float64 runs start from the same numbers (up to the cast).
    """
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for n_in, n_out in spec.shapes:
        limit = np.sqrt(6.0 / (n_in + n_out))
        weights.append(rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype))
        biases.append(np.zeros(n_out, dtype=dtype))
    return Parameters(weights, biases)


def epoch_order(n_examples: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order in which examples are visited in one epoch, the same for every backend."""
    if not shuffle:
        return np.arange(n_examples, dtype=np.int64)
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    return rng.permutation(n_examples).astype(np.int64)


def batch_bounds(n_examples: int, batch_size: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) slices of an epoch's order; the last batch may be smaller."""
    return [(s, min(s + batch_size, n_examples)) for s in range(0, n_examples, batch_size)]
