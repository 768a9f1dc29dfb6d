"""The slice of ctypes the kernel seam uses, built on ctypes' C core (``_ctypes``) alone.

``import ctypes`` costs ≈2.5 ms on this class of machine: its ``__init__`` defines every C type of the
platform, imports ``struct``, ``types`` and the byte-order machinery, and builds the loader classes.
Every `create` and `exec` paid that twice, in the command and again in its re-exec'd stage, on the
critical path of both.  The seam needs a dozen integer types, ``Structure``, ``byref``/``sizeof``/
``addressof`` and libc's functions; they are made here from the same ``_ctypes`` bases with the same
type codes, so they are the objects ``ctypes`` itself would build (``tests/unit/test_cabi.py`` holds them to
ctypes' sizes and behaviour).  Only the ABIs ocirun runs on are covered: LP64 Linux (x86_64, aarch64),
where ``long`` and pointers are 64 bits.

``ocirun.kernel.libseccomp`` (off the lifecycle path: it only runs when a profile is compiled) keeps using
``ctypes`` for ``ctypes.util.find_library``.
"""
from __future__ import annotations

import _ctypes
from _ctypes import Array, Structure, addressof, byref, get_errno, set_errno, sizeof  # noqa: F401

_SimpleCData = _ctypes._SimpleCData


class c_char(_SimpleCData):
    _type_ = "c"


class c_char_p(_SimpleCData):
    _type_ = "z"


class c_void_p(_SimpleCData):
    _type_ = "P"


class c_ushort(_SimpleCData):
    _type_ = "H"


class c_int(_SimpleCData):
    _type_ = "i"


class c_uint(_SimpleCData):
    _type_ = "I"


class c_long(_SimpleCData):
    _type_ = "l"


class c_ulong(_SimpleCData):
    _type_ = "L"


if sizeof(c_long) != 8 or sizeof(c_void_p) != 8:  # pragma: no cover - a 32-bit build
    raise ImportError("ocirun.kernel.cabi: only LP64 Linux is supported")

# The fixed-width names, as ctypes aliases them on LP64.
c_uint16 = c_ushort
c_int32 = c_int
c_uint32 = c_uint
c_int64 = c_long
c_uint64 = c_ulong
c_size_t = c_ulong


def create_string_buffer(init: bytes | int, size: int | None = None) -> Array:
    """A mutable ``char[]``: ``init`` bytes copied in (NUL-terminated when there is room), or ``init``
    zero bytes; what ctypes' function of the same name returns."""
    if isinstance(init, int):
        return (c_char * init)()
    buf = (c_char * (len(init) + 1 if size is None else size))()
    buf.value = init
    return buf


class _Function(_ctypes.CFuncPtr):
    """A C function of a loaded library: cdecl, errno kept for :func:`get_errno`, ``int`` result
    unless ``restype`` says otherwise (ctypes.CDLL's functions with ``use_errno=True``)."""
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class Library:
    """A shared object opened with dlopen(3) (``None``: the program and what it links, libc included);
    its functions are attributes, made on first use and kept (ctypes.CDLL without its extras)."""

    def __init__(self, name: str | None):
        self._name = name
        self._handle = _ctypes.dlopen(name, 0)  # RTLD_LOCAL; _ctypes adds RTLD_NOW

    def __getattr__(self, name: str) -> _Function:
        if name.startswith("__"):
            raise AttributeError(name)
        fn = _Function((name, self))
        setattr(self, name, fn)
        return fn
