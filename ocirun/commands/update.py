"""`update [options] <container-id>`: runc 1.1.5's resource flags, or ``--resources FILE|-``.

The flags (sizes as Docker's go-units reads them, integers as Go's strconv parses them, with their
wording) or the JSON file become a LinuxResources object; :meth:`ocirun.container.Runtime.update`
applies it (ocirun.update: the zero-means-unchanged rules, the saved resources, the resctrl schemata).
"""
from __future__ import annotations

import re
import sys

from ..errors import ConfigError
from .argv import int_flag

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_SIZE_MUL = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def cmd_update(rt, args: list[str], flags: dict, g: dict) -> int:
    cid = args[0]
    rt.existing(cid)  # runc looks the container up before reading the resources
    if flags.get("resources"):
        r = read_resources(flags["resources"])  # runc: every other option is then ignored
    else:
        r = resources_from_flags(flags)
    rt.update(cid, r, flags.get("l3-cache-schema"), flags.get("mem-bw-schema"))
    return 0


def ram_in_bytes(text: str) -> int:
    """A size as Docker's go-units RAMInBytes reads it: ``512``, ``100k``, ``64m``, ``1.5GiB`` (binary units)."""
    m = _SIZE_RE.match(text)
    try:
        if not m:
            raise ValueError
        return int(float(m.group(1)) * _SIZE_MUL[(m.group(2) or "").lower()])
    except ValueError:
        raise ConfigError(f"invalid size: '{text}'") from None


def _num(flags: dict, name: str, unsigned: bool) -> int:
    raw = flags[name]
    kind = "ParseUint" if unsigned else "ParseInt"
    try:
        v = int(raw, 10)
    except ValueError:
        raise ConfigError(f'invalid value for {name}: {kind}: parsing "{raw}": invalid syntax') from None
    if unsigned and (v < 0 or raw.strip().startswith(("-", "+"))):
        raise ConfigError(f'invalid value for {name}: {kind}: parsing "{raw}": invalid syntax')
    if not (-(1 << 63) <= v < (1 << 64 if unsigned else 1 << 63)):
        raise ConfigError(f'invalid value for {name}: {kind}: parsing "{raw}": value out of range')
    return v


def resources_from_flags(flags: dict) -> dict:
    """runc's individual update flags → a LinuxResources object (only what was given)."""
    r: dict = {}

    def put(section: str, key: str, value) -> None:
        r.setdefault(section, {})[key] = value

    weight = int_flag(flags, "blkio-weight")
    if weight:
        put("blockIO", "weight", weight)
    if flags.get("cpuset-cpus"):
        put("cpu", "cpus", flags["cpuset-cpus"])
    if flags.get("cpuset-mems"):
        put("cpu", "mems", flags["cpuset-mems"])
    for opt, key, unsigned in (("cpu-period", "period", True), ("cpu-rt-period", "realtimePeriod", True),
                               ("cpu-share", "shares", True), ("cpu-quota", "quota", False),
                               ("cpu-rt-runtime", "realtimeRuntime", False)):
        if flags.get(opt):
            put("cpu", key, _num(flags, opt, unsigned))
    for opt, key in (("memory", "limit"), ("memory-swap", "swap"), ("kernel-memory", "kernel"),
                     ("kernel-memory-tcp", "kernelTCP"), ("memory-reservation", "reservation")):
        val = flags.get(opt)
        if val:
            try:
                put("memory", key, -1 if val == "-1" else ram_in_bytes(val))
            except ConfigError as e:
                raise ConfigError(f"invalid value for {opt}: {e}") from None
    pids = int_flag(flags, "pids-limit")
    if pids:
        put("pids", "limit", pids)
    return r


def read_resources(path: str) -> dict:
    """The ``--resources`` JSON from a file or, for ``-``, from stdin; validated against the schema.
    Like Go's json.Decoder, only the first JSON value is read; ``null`` means "nothing to change"."""
    import json

    source = "resources (stdin)" if path == "-" else path
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ConfigError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    text = data.decode("utf-8", "replace").lstrip()
    try:
        raw, _end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}: invalid JSON: {'unexpected EOF' if not text else e}") from None
    if raw is None:
        return {}
    from .. import schema

    schema.check(raw, "resources", source=source)
    return raw
