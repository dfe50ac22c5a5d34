"""The CUDA device APIs of the tiled backends (pycuda_tiled.CudaDevice, cupy_tiled.CupyDevice) against fakes.

PyCUDA cannot be installed on a machine without the CUDA driver, and CuPy
cannot launch anything there, so these tests drive the real device-API code
and the real runner (tiled_runner) over *fake* ``pycuda.driver`` and ``cupy``
objects that record what is called and which context is current at the time.
They check the discipline that code promises -- PyCUDA: one retained primary
context per device shared by all trainers, pushed and popped around every call,
popped on exceptions too, released by the last user; CuPy: every scalar
converted to the kernel's C type -- and nothing about PyCUDA or CuPy themselves:
``test_kit_on_gpu`` (test_gpu_kernels.py) runs the real libraries on a GPU.
"""
from __future__ import annotations

import numpy as np
import pytest

from implementations.cupy_tiled import CupyDevice
from implementations.pycuda_tiled import CudaDevice, PrimaryContexts
from implementations.tiled_runner import TiledTrainer
from pgdbench.core.model import NetSpec, epoch_order, glorot_uniform
from pgdbench.errors import UsageError

SPEC = NetSpec((12, 9, 10))


# -- a fake pycuda.driver ------------------------------------------------------------------------

class FakeDriver:
    """Just enough of pycuda.driver: a context stack, primary contexts, memory, modules, events."""

    def __init__(self):
        self.stack = []          # the thread's context stack, top last
        self.retains = 0
        self.detaches = 0
        self.calls = []          # (what, context on top of the stack)
        self.fail_launch = False
        driver = self

        class Ctx:
            def __init__(self, name):
                self.name = name

            def push(self):
                driver.stack.append(self)

            def detach(self):
                driver.detaches += 1

        self.Ctx = Ctx

        class Device:
            @staticmethod
            def count():
                return 1

            def __init__(self, index):
                self.index = index

            def name(self):
                return "Fake GPU"

            def get_attribute(self, attr):
                return 132

            def retain_primary_context(self):
                driver.retains += 1
                return driver.primary

        self.Device = Device
        self.primary = Ctx("primary")

        class Context:
            @staticmethod
            def pop():
                driver.stack.pop()

            @staticmethod
            def synchronize():
                driver.record("synchronize")

        self.Context = Context

        class device_attribute:
            MULTIPROCESSOR_COUNT = "multiprocessor count"

        self.device_attribute = device_attribute

        class Event:
            def record(self):
                driver.record("event")

            def synchronize(self):
                pass

            def time_since(self, other):
                return 1.0

        self.Event = Event

    def record(self, what):
        self.calls.append((what, self.stack[-1] if self.stack else None))

    def init(self):
        pass

    def mem_alloc(self, nbytes):
        self.record("alloc")
        return bytearray(nbytes)

    def memcpy_htod(self, buf, array):
        self.record("htod")
        buf[: array.nbytes] = array.tobytes()

    def memcpy_dtoh(self, array, buf):
        self.record("dtoh")
        array.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(buf[: array.nbytes]), np.uint8)


def fake_source_module(driver, fail=False):
    class Function:
        def __init__(self, name):
            self.name = name

        def prepare(self, sig):
            self.sig = sig

        def prepared_call(self, grid, block, *args):
            driver.record(f"launch {self.name}")
            if driver.fail_launch:
                raise RuntimeError("launch failed")

    class SourceModule:
        def __init__(self, source, no_extern_c=False):
            driver.record("build")
            assert no_extern_c
            if fail:
                raise RuntimeError("nvcc failed")

        def get_function(self, name):
            return Function(name)

    return SourceModule


class FakeCudaTrainer(TiledTrainer):
    name = "fake-cuda"
    api = "cuda"
    options = {**TiledTrainer.options, "device": 0}
    driver = None
    contexts = None
    fail_build = False

    def open_device(self):
        return CudaDevice(self.opts["device"], self.dtype, drv=self.driver,
                          source_module=fake_source_module(self.driver, self.fail_build), contexts=self.contexts)


@pytest.fixture
def fake():
    driver = FakeDriver()
    contexts = PrimaryContexts()
    cls = type("T", (FakeCudaTrainer,), {"driver": driver, "contexts": contexts})
    foreign = driver.Ctx("the caller's (CuPy, torch)")
    foreign.push()                      # whatever was current before: must be current again after each call
    return driver, contexts, cls, foreign


def train_a_little(t):
    X = np.random.default_rng(0).random((40, SPEC.n_inputs))
    Y = np.eye(SPEC.n_outputs)[np.arange(40) % SPEC.n_outputs]
    t.load_data(X, Y)
    t.train_epoch(epoch_order(40, 0, 0), 16, 0.1)


def test_trainers_share_one_primary_context_pushed_around_every_call(fake):
    driver, contexts, cls, foreign = fake
    params = glorot_uniform(SPEC, 1)
    a = cls(SPEC, params)
    b = cls(SPEC, params)
    assert driver.retains == 1 and contexts.users(0) == 2          # retained once, shared
    for t in (a, b):
        train_a_little(t)
        assert driver.stack == [foreign]                            # as the caller left it
        assert t.get_weights().max_abs_diff(params) == 0             # the fake does not compute: θ unchanged
        assert driver.stack == [foreign]
    assert driver.calls and all(ctx is driver.primary for _, ctx in driver.calls), \
        [c for c in driver.calls if c[1] is not driver.primary]
    assert any(what.startswith("launch") for what, _ in driver.calls)
    a.close()
    assert driver.detaches == 0 and contexts.users(0) == 1         # b still uses it
    b.close()
    assert driver.detaches == 1 and contexts.users(0) == 0
    assert driver.stack == [foreign]


def test_an_exception_inside_a_call_still_pops(fake):
    driver, contexts, cls, foreign = fake
    t = cls(SPEC, glorot_uniform(SPEC, 1))
    driver.fail_launch = True
    with pytest.raises(RuntimeError, match="launch failed"):
        train_a_little(t)
    assert driver.stack == [foreign]
    driver.fail_launch = False
    t.close()
    assert driver.detaches == 1 and driver.stack == [foreign]


def test_a_failed_build_or_a_bad_option_gives_the_context_back(fake):
    driver, contexts, cls, foreign = fake
    with pytest.raises(UsageError, match="tile"):
        cls(SPEC, glorot_uniform(SPEC, 1), options={"tile": "3x3"})   # not a configuration: refused before opening
    assert driver.retains == 0 and driver.stack == [foreign]
    with pytest.raises(UsageError, match="tile"):                  # float32-only: the planner refuses it, after
        cls(SPEC, glorot_uniform(SPEC, 1, np.float64), dtype=np.float64, options={"tile": "128x128"})   # opening
    assert contexts.users(0) == 0 and driver.retains == 1 and driver.detaches == 1 and driver.stack == [foreign]
    failing = type("F", (cls,), {"fail_build": True})
    t = failing(SPEC, glorot_uniform(SPEC, 1))
    with pytest.raises(RuntimeError, match="nvcc failed"):           # programs are built at first launch
        train_a_little(t)
    assert driver.stack == [foreign]
    t.close()
    assert contexts.users(0) == 0 and driver.stack == [foreign]


def test_a_device_that_does_not_exist(fake):
    driver, contexts, cls, foreign = fake
    with pytest.raises(UsageError, match="does not exist"):
        cls(SPEC, glorot_uniform(SPEC, 1), options={"device": 3})
    assert driver.retains == 0 and driver.stack == [foreign]


# -- a fake cupy ---------------------------------------------------------------------------------

class FakeArray(np.ndarray):
    """A device buffer: a NumPy byte array with CuPy's set/get."""

    def set(self, a):
        self[...] = a

    def get(self, out):
        out[...] = self
        return out


class FakeCupy:
    uint8 = np.uint8

    def __init__(self):
        self.launches = []
        fake = self

        class Null:
            def __init__(self, *a, **k):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def synchronize(self):
                pass

            def record(self, stream=None):
                pass

        class Kernel:
            def __init__(self, name):
                self.name = name

            def __call__(self, grid, block, args):
                fake.launches.append((self.name, grid, block, args))

        class RawModule:
            def __init__(self, code, options):
                assert "extern \"C\"" in code and options

            def get_function(self, name):
                return Kernel(name)

        class runtime:
            @staticmethod
            def getDeviceCount():
                return 1

            @staticmethod
            def getDeviceProperties(i):
                return {"name": b"Fake GPU", "multiProcessorCount": 132}

        class cuda:
            Device = Stream = Event = Null
            get_elapsed_time = staticmethod(lambda a, b: 1.0)

        cuda.runtime = runtime
        self.cuda = cuda
        self.RawModule = RawModule

    @staticmethod
    def empty(n, dtype):
        return np.zeros(n, dtype).view(FakeArray)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_device_converts_every_scalar_to_the_kernels_type(dtype):
    fake = FakeCupy()

    class T(TiledTrainer):
        name, api, options = "fake-cupy", "cuda", {**TiledTrainer.options, "device": 0}

        def open_device(self):
            return CupyDevice(self.opts["device"], self.dtype, cupy=fake)

    params = glorot_uniform(SPEC, 1, dtype)
    with T(SPEC, params, dtype=dtype, options={"split": "2"}) as t:
        assert t.get_weights().max_abs_diff(params) == 0             # upload / download round trip
        train_a_little(t)
        meta = t.metadata()
    assert meta["compute_units"] == 132 and meta["device_name"] == "Fake GPU"
    from implementations.tiled_kernels import NARROW_SIGNATURES, SIGNATURES

    signatures = {**SIGNATURES, **NARROW_SIGNATURES}
    assert fake.launches
    for name, grid, block, args in fake.launches:
        sig = signatures.get(name) or signatures[name.rsplit("_", 1)[0]]
        assert len(grid) == 3 and len(block) == 3 and len(args) == len(sig)
        for kind, a in zip(sig, args):
            expected = {"P": FakeArray, "i": np.int32, "r": np.dtype(dtype).type}[kind]
            assert type(a) is expected, (name, kind, type(a))
    assert "apply_partials" in {name for name, *_ in fake.launches}
