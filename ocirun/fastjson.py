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
_quote_utf8 = _json.encode_basestring  # json's ensure_ascii=False string encoder


def dumps(obj, indent: int | None = None, ensure_ascii: bool = True, compact: bool = False) -> str:
    """Serialise dicts, lists, str, int, float, bool and None (what ocirun writes), as json.dumps does.

    ``compact``: no space after ``,`` and ``:``, as Go's encoding/json writes (runc's log lines and
    `list --format json`, which scripts compare byte for byte)."""
    out: list[str] = []
    sep = "," if indent is not None or compact else ", "
    _write(obj, out, indent, 0, _quote if ensure_ascii else _quote_utf8, sep, ":" if compact else ": ", False)
    return "".join(out)


def canonical(obj) -> str:
    """``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, without json.

    For hashing (the seccomp cache key): the same text json gives for anything parsed from JSON,
    so keys stay stable across the two implementations.  Raises TypeError on what JSON cannot hold
    or on keys that are not all strings, ValueError on a self-containing value (as json does).
    """
    out: list[str] = []
    _write(obj, out, None, 0, _quote_utf8, ",", ":", True)
    return "".join(out)


def _float(x: float) -> str:
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    return float.__repr__(x)


def _write(obj, out: list[str], indent, level: int, quote, sep: str, colon: str, canon: bool) -> None:
    """One writer for both forms; ``canon`` sorts keys and refuses keys that are not strings."""
    if level > 900:  # json raises ValueError("Circular reference detected") for cycles
        raise ValueError("Circular reference detected (or nesting too deep)")
    if isinstance(obj, str):
        out.append(quote(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        out.append(_float(obj))
    elif isinstance(obj, (dict, list, tuple)):
        is_dict = isinstance(obj, dict)
        if not obj:
            out.append("{}" if is_dict else "[]")
            return
        if is_dict and canon:
            if not all(isinstance(k, str) for k in obj):
                raise TypeError("canonical JSON: keys must be strings")
            items = [(k, obj[k]) for k in sorted(obj)]
        else:
            items = obj.items() if is_dict else obj
        out.append("{" if is_dict else "[")
        for i, item in enumerate(items):
            if i:
                out.append(sep)
            if indent is not None:
                out.append("\n" + " " * (indent * (level + 1)))
            if is_dict:
                key, item = item
                out.append(quote(str(key)))
                out.append(colon)
            _write(item, out, indent, level + 1, quote, sep, colon, canon)
        if indent is not None:
            out.append("\n" + " " * (indent * level))
        out.append("}" if is_dict else "]")
    else:
        raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
