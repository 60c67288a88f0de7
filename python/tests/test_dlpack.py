"""DLPack: tiledio's export code (the one CudaArray uses) consumed by NumPy on the CPU —
shapes, dtypes, legacy and versioned capsules, ownership kept by the capsule — and CPU DLPack
producers taken as inputs. The same code with kDLCUDA is exercised by tests/test_gpu.py."""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pytest

import tiledio
from tiledio import _tiledio

DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"]


def capsule_name(cap) -> str:
    f = ctypes.pythonapi.PyCapsule_GetName
    f.restype = ctypes.c_char_p
    f.argtypes = [ctypes.py_object]
    return f(cap).decode()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (0, 3)])
def test_exports_read_by_numpy(dtype, shape):
    a = (np.arange(int(np.prod(shape))) % 100).astype(dtype).reshape(shape)
    x = _tiledio._host_dlpack(a)
    assert x.__dlpack_device__() == (1, 0)
    b = np.from_dlpack(x)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
    # the capsule owns the memory: the exporter may go
    del x
    gc.collect()
    np.testing.assert_array_equal(b, a)


def test_legacy_and_versioned_capsules():
    x = _tiledio._host_dlpack(np.ones((2, 2), np.float32))
    assert capsule_name(x.__dlpack__()) == "dltensor"
    assert capsule_name(x.__dlpack__(max_version=(1, 0))) == "dltensor_versioned"
    assert capsule_name(x.__dlpack__(max_version=(0, 8))) == "dltensor"
    # unconsumed capsules free their tensors (no leak, no crash)
    for _ in range(100):
        x.__dlpack__(max_version=(1, 3))
    gc.collect()
    with pytest.raises(BufferError):
        x.__dlpack__(copy=True)
    with pytest.raises(BufferError):
        x.__dlpack__(dl_device=(2, 0))
    with pytest.raises(ValueError):
        x.__dlpack__(stream=5)


def test_versioned_export_consumed_by_numpy():
    class Versioned:
        def __init__(self, inner):
            self.inner = inner

        def __dlpack_device__(self):
            return self.inner.__dlpack_device__()

        def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
            assert max_version is not None and max_version[0] >= 1, "NumPy 2 asks for a versioned capsule"
            return self.inner.__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)

    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    np.testing.assert_array_equal(np.from_dlpack(Versioned(_tiledio._host_dlpack(a))), a)


def test_cpu_dlpack_producers_are_inputs():
    class OnlyDlpack:
        """A CPU array that speaks DLPack only (as a framework's CPU tensor may)."""

        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    img = (np.arange(20 * 30) % 251).astype(np.uint8).reshape(20, 30)
    np.testing.assert_array_equal(tiledio.sobel(OnlyDlpack(img)), tiledio.sobel(img))
    # tiledio's own export as an input
    np.testing.assert_array_equal(tiledio.sobel(_tiledio._host_dlpack(img)), tiledio.sobel(img))
