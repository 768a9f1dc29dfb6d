"""ocirun.kernel.cabi against ctypes itself: the types the kernel seam builds its calls from must be
the ones ctypes would give (sizes, signedness, layout of a Structure), and libc's functions must
behave as ctypes.CDLL's with use_errno."""
import ctypes
import os

import pytest

from ocirun.kernel import cabi

PAIRS = [("c_char", "c_char"), ("c_char_p", "c_char_p"), ("c_void_p", "c_void_p"), ("c_ushort", "c_ushort"),
         ("c_int", "c_int"), ("c_uint", "c_uint"), ("c_long", "c_long"), ("c_ulong", "c_ulong"),
         ("c_uint16", "c_uint16"), ("c_int32", "c_int32"), ("c_uint32", "c_uint32"), ("c_int64", "c_int64"),
         ("c_uint64", "c_uint64"), ("c_size_t", "c_size_t")]


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_each_type_has_ctypes_size_and_code(ours, theirs):
    mine, ref = getattr(cabi, ours), getattr(ctypes, theirs)
    assert cabi.sizeof(mine) == ctypes.sizeof(ref)
    assert mine._type_ == ref._type_


def test_signedness_wraps_as_ctypes_does():
    assert cabi.c_uint(-1).value == ctypes.c_uint(-1).value == 0xFFFFFFFF
    assert cabi.c_int(0xFFFFFFFF).value == -1
    assert cabi.c_uint64(-1).value == 2**64 - 1


def test_structure_layout_matches_ctypes():
    fields = [("a", "c_uint32"), ("b", "c_uint64"), ("c", "c_ushort"), ("d", "c_void_p")]

    class Ours(cabi.Structure):
        _fields_ = [(n, getattr(cabi, t)) for n, t in fields]

    class Theirs(ctypes.Structure):
        _fields_ = [(n, getattr(ctypes, t)) for n, t in fields]

    assert cabi.sizeof(Ours) == ctypes.sizeof(Theirs) == 32
    for name, _ in fields:
        assert getattr(Ours, name).offset == getattr(Theirs, name).offset


def test_create_string_buffer_as_ctypes():
    for args in ((b"abc",), (b"abc", 3), (b"abc", 8), (5,)):
        assert bytes(cabi.create_string_buffer(*args)) == bytes(ctypes.create_string_buffer(*args))
    with pytest.raises(ValueError):
        cabi.create_string_buffer(b"abcd", 3)


def test_libc_functions_return_int_and_keep_errno():
    libc = cabi.Library(None)
    assert libc.getpid() == os.getpid()
    assert libc.getpid is libc.getpid  # made once
    cabi.set_errno(0)
    assert libc.close(cabi.c_int(-1)) == -1
    assert cabi.get_errno() == 9  # EBADF, kept from the call
    libc.syscall.restype = cabi.c_long
    getpid_nr = {"x86_64": 39, "aarch64": 172}[os.uname().machine]
    assert libc.syscall(cabi.c_long(getpid_nr)) == os.getpid()
    with pytest.raises(AttributeError):
        libc.no_such_function_in_libc


def test_pointer_sized_arguments_pass_through():
    buf = cabi.create_string_buffer(b"hello world")
    libc = cabi.Library(None)
    strlen = libc.strlen
    strlen.restype = cabi.c_size_t
    assert strlen(cabi.c_void_p(cabi.addressof(buf))) == 11
    assert strlen(buf) == 11
