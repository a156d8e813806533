"""The native backends' public surface and the backend selection (MSGR_NATIVE).

Every behavioural test runs against both backends (the ``nat`` fixture: ``pure``
and ``cffi_backend``); the cffi one is skipped when the extension is not built,
unless CI=true.
"""
from __future__ import annotations

import importlib

import pytest

import msgr._native as native
from msgr._native import message as message_py
from msgr._native import pure

try:
    from msgr._native import cffi_backend
except ImportError:  # extension not built
    cffi_backend = None
from tests.helpers import need_cffi


def test_public_lists_identical():
    cffi_mod = need_cffi()
    assert pure.__all__ == cffi_mod.__all__
    for name in pure.__all__:
        assert hasattr(pure, name) and hasattr(cffi_mod, name)
        if name.startswith(("SCAN_", "FRAME_", "FLAG_")):
            assert getattr(pure, name) == getattr(cffi_mod, name)


def test_package_exports():
    assert sorted(native.__all__) == sorted(pure.__all__ + [
        "Message", "decode_run", "lay_out", "COPY_LIMIT", "FRAME_FLAGS", "CORE", "NATIVE"])
    for name in native.__all__:
        assert hasattr(native, name)
    assert native.BACKEND in ("cffi", "python") and native.CORE in ("cython", "python")
    assert native.NATIVE == (native.BACKEND == "cffi" and native.CORE == "cython")
    assert (native.SCAN_OK, native.SCAN_BAD_PREAMBLE_CRC,
            native.SCAN_BAD_SEGMENT_COUNT, native.SCAN_SEGMENT_TOO_LARGE,
            native.SCAN_BAD_SEGMENT_CRC, native.SCAN_BAD_LATE_STATUS,
            native.FRAME_RECORD_SIZE, native.FLAG_ABORTED) == (
                0, 1, 2, 3, 4, 5, 8, 1)


def test_backend_selection(monkeypatch):
    try:
        monkeypatch.setenv("MSGR_NATIVE", "0")
        assert importlib.reload(native).BACKEND == "python"
        assert native.CORE == "python" and native.Message is message_py.Message
        monkeypatch.setenv("MSGR_NATIVE", "1")
        if cffi_backend is None:
            with pytest.raises(ImportError):
                importlib.reload(native)
        else:
            assert importlib.reload(native).BACKEND == "cffi" and native.CORE == "cython"
        monkeypatch.delenv("MSGR_NATIVE")
        expected = "python" if cffi_backend is None else "cffi"
        assert importlib.reload(native).BACKEND == expected
    finally:
        monkeypatch.undo()
        importlib.reload(native)
