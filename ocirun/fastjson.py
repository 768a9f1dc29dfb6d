"""JSON for the hot path, on CPython's C accelerator alone.

``import json`` costs ≈9 ms here because json.decoder and json.encoder import
``re`` (and ``re`` imports ``enum``); `state`, `kill` and `delete` need only a
few hundred bytes of JSON.  ``_json`` (the C scanner and string encoder that
json itself uses) parses and quotes exactly like json does; this module gives
it the small context object it expects and writes indented output itself.
"""
from __future__ import annotations

import _json


class _Context:
    """The attributes _json.make_scanner reads from a json.JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str):
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_Context())
_WS = " \t\n\r"


def loads(data: bytes | str):
    """Parse one JSON document; raise ValueError (as json does) on anything else."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    i = 0
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    try:
        value, end = _scan(text, i)
    except (StopIteration, SystemError):
        # The C scanner reports syntax errors through json.decoder.JSONDecodeError, which it only
        # finds if json is already imported (else: SystemError).  Errors are rare: let json say it.
        return _slow_loads(text)
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        return _slow_loads(text)
    return value


def _slow_loads(text: str):
    import json

    return json.loads(text)  # raises json.JSONDecodeError (a ValueError) with line and column


_quote = _json.encode_basestring_ascii


def dumps(obj, indent: int | None = None) -> str:
    """Serialise dicts, lists, str, int, float, bool and None (what ocirun writes)."""
    out: list[str] = []
    _write(obj, out, indent, 0)
    return "".join(out)


def _write(obj, out: list[str], indent, level: int) -> None:
    if isinstance(obj, str):
        out.append(_quote(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, (int, float)):
        out.append(repr(obj) if isinstance(obj, float) else str(int(obj)))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        out.append("{")
        sep = ", " if indent is None else ","
        for i, (key, value) in enumerate(obj.items()):
            if i:
                out.append(sep)
            if indent is not None:
                out.append("\n" + " " * (indent * (level + 1)))
            out.append(_quote(str(key)))
            out.append(": ")
            _write(value, out, indent, level + 1)
        if indent is not None:
            out.append("\n" + " " * (indent * level))
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        out.append("[")
        sep = ", " if indent is None else ","
        for i, value in enumerate(obj):
            if i:
                out.append(sep)
            if indent is not None:
                out.append("\n" + " " * (indent * (level + 1)))
            _write(value, out, indent, level + 1)
        if indent is not None:
            out.append("\n" + " " * (indent * level))
        out.append("]")
    else:
        raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
