from __future__ import annotations

import numpy as np
import pytest

from pgdbench.core.model import NetSpec, Parameters, batch_bounds, epoch_order, glorot_uniform, resolve_net, sigmoid_
from pgdbench.errors import UsageError


def test_presets_on_mnist_are_the_papers_nets():
    assert resolve_net("net1h", None, 784, 10).layers == (784, 1024, 10)
    assert resolve_net("net2h", None, 784, 10).layers == (784, 1024, 1024, 10)
    assert resolve_net("net1h", None, 784, 10).name == "net1h"


def test_parameter_counts_match_the_paper():
    assert NetSpec((784, 1024, 10)).n_parameters == 814_090            # "~0.8 M"
    assert NetSpec((784, 1024, 1024, 10)).n_parameters == 1_863_690    # "~1.86 M"


def test_flop_model():
    # forward + weight gradient on both layers, delta propagation on the second only
    assert NetSpec((784, 1024, 10)).flops_per_example() == 2 * (2 * 784 * 1024 + 3 * 1024 * 10)
    assert NetSpec((3, 2)).flops_per_example() == 2 * 2 * 3 * 2
    assert NetSpec((784, 1024, 10)).flops_per_epoch(50_000) == 50_000 * NetSpec((784, 1024, 10)).flops_per_example()


@pytest.mark.parametrize("layers,match", [("784,10,3", "do not match"), ("784,x,10", "comma-separated"),
                                          ("784,0,10", "positive"), ("784", "at least")])
def test_bad_layers(layers, match):
    with pytest.raises(UsageError, match=match):
        resolve_net(None, layers, 784, 10)


def test_unknown_preset():
    with pytest.raises(UsageError, match="unknown net 'net3h'"):
        resolve_net("net3h", None, 784, 10)


def test_epoch_order_is_a_seeded_permutation():
    a, b = epoch_order(100, 0, 1), epoch_order(100, 0, 1)
    assert np.array_equal(a, b) and sorted(a) == list(range(100))
    assert not np.array_equal(a, epoch_order(100, 0, 2))
    assert np.array_equal(epoch_order(5, 0, 1, shuffle=False), np.arange(5))


def test_batch_bounds_keep_the_remainder():
    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_bounds(8, 4) == [(0, 4), (4, 8)]


def test_parameters_save_load_roundtrip(tmp_path):
    p = glorot_uniform(NetSpec((5, 4, 3)), seed=2)
    p.save(tmp_path / "p.npz")
    assert Parameters.load(tmp_path / "p.npz").max_abs_diff(p) == 0
    assert [f.name for f in tmp_path.iterdir()] == ["p.npz"]  # no temporary left behind


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-15), (np.float32, 5e-7)])
def test_sigmoid_in_place_matches_the_float64_formula_and_saturates_quietly(dtype, rtol):
    z = np.linspace(-30, 30, 600).astype(dtype).reshape(3, -1)
    bias = np.linspace(-1, 1, z.shape[1]).astype(dtype)
    want = 1 / (1 + np.exp(-(z + bias).astype(np.float64)))     # the same rounded argument
    out = sigmoid_(z, bias)
    assert out is z and z.dtype == dtype
    np.testing.assert_allclose(z, want, rtol=rtol, atol=0)
    with np.errstate(all="raise"):          # exp's overflow at the far left is not reported
        extreme = sigmoid_(np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype))
    np.testing.assert_array_equal(extreme[[0, 2, 4]], [0.0, 0.5, 1.0])
    assert 0 <= extreme[1] < 1e-40 and extreme[3] == 1.0
