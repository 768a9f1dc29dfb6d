"""The commands that read containers and change nothing: `state`, `list`, `ps`, `events`.

Each asks :class:`ocirun.container.Runtime` for values and prints them in runc's
shapes: Go's JSON encoder (``state`` indented, ``list -f json`` and ``ps -f json`` compact, a nil slice
as ``null``), runc's tables, one event record a line.  `state` is on every engine's hot path: this
module imports at its top only what `state` needs, each other command what it uses.
"""
from __future__ import annotations

import os
import sys

from .argv import Usage


def cmd_state(rt, args: list[str], flags: dict, g: dict) -> int:
    from ..fastjson import dumps

    st = rt.state(args[0])
    sys.stdout.write(dumps(st.to_oci(), indent=2) + "\n")
    return 0


def cmd_list(rt, args: list[str], flags: dict, g: dict) -> int:
    """``list [--format table|json] [--quiet]``."""
    fmt = flags.get("format", "table")
    if fmt not in ("table", "json"):
        raise Usage(f"invalid format option: {fmt}")
    states = rt.list()
    if flags.get("quiet"):
        for st in states:
            print(st.id)
        return 0
    if fmt == "json":
        from ..fastjson import dumps

        # Go's encoder: compact, and a nil slice (no containers) is null, as `runc list -f json` prints
        sys.stdout.write((dumps([st.to_oci() for st in states], compact=True) if states else "null") + "\n")
        return 0
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(st.id, str(st.to_oci()["pid"]), st.status, st.bundle, st.created, st.owner)
             for st in states]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def cmd_ps(rt, args: list[str], flags: dict, g: dict) -> int:
    """``ps [--format table|json] <container-id> [ps options]``: the host's ps(1) output (``-ef`` unless
    options are given), filtered to the container's processes, as runc filters it."""
    import json

    from ..errors import OciError

    pids = rt.pids(args[0])
    fmt = flags.get("format", "table")
    if fmt == "json":
        # runc encodes an empty (nil) slice as null
        sys.stdout.write((json.dumps(pids, separators=(",", ":")) if pids else "null") + "\n")
        return 0
    if fmt != "table":
        raise OciError("invalid format option")
    import shutil
    import subprocess

    ps_args = args[1:]
    if ps_args[:1] == ["--"]:  # "ps ID -- -o pid,comm": the separator is ours, not ps's
        ps_args = ps_args[1:]
    ps_args = ps_args or ["-ef"]
    exe = shutil.which("ps", path=os.environ.get("PATH") or os.defpath) or "ps"
    proc = subprocess.run([exe, *ps_args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    output = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise OciError(f"exit status {proc.returncode}: {output}")
    lines = output.split("\n")
    fields = lines[0].split()
    if "PID" not in fields:
        raise OciError("couldn't find PID field in ps output")
    index = fields.index("PID")
    wanted = set(pids)
    out = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        parts = line.split()
        try:
            pid = int(parts[index])
        except (IndexError, ValueError):
            raise OciError(f"unable to parse pid: {line.strip()}") from None
        if pid in wanted:
            out.append(line)
    sys.stdout.write("\n".join(out) + "\n")
    return 0


# ---- events --------------------------------------------------------------------------------------------
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)"


def parse_duration(text: str, flag: str = "interval") -> float:
    """A Go duration (``5s``, ``250ms``, ``1m30s``, ``0``) in seconds."""
    import re

    m = re.fullmatch(rf"([-+]?)((?:{_DURATION_PART})+|0)", text)
    if not m:
        raise Usage(f'invalid value "{text}" for flag -{flag}: parse error')
    total = sum(float(n) * _DURATION_UNITS[u] for n, u in re.findall(_DURATION_PART, m.group(2)))
    return -total if m.group(1) == "-" else total


def _emit(obj) -> None:
    """One JSON document per line, compact, as Go's json.Encoder writes it."""
    import json

    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def cmd_events(rt, args: list[str], flags: dict, g: dict) -> int:
    """``events [--stats] [--interval DURATION] <container-id>``: one stats record, or every record until
    the container stops."""
    from ..errors import OciError

    cid = args[0]
    rt.existing(cid)  # runc looks the container up before reading its flags
    interval = parse_duration(flags.get("interval", "5s"))
    if interval <= 0:
        raise OciError("duration interval must be greater than 0")
    try:
        if flags.get("stats"):
            _emit({"type": "stats", "id": cid, "data": rt.stats(cid)})
            return 0
        for record in rt.events(cid, interval, on_error=lambda e: sys.stderr.write(f"ocirun: {e}\n")):
            _emit(record)  # runc logs a failed stats read and goes on
        return 0
    except BrokenPipeError:
        # the reader went away: stop quietly (and keep Python from complaining at exit)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
