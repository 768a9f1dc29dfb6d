"""`inspect [--format table|json] <container-id>`: a container's isolation as the kernel holds it.

ocirun's own command (docs/inspect.md): :func:`ocirun.inspect.inspect` reads it; this module prints it,
as JSON (the documented shape) or as a table, one section per aspect.
"""
from __future__ import annotations

import sys

from .argv import Usage
from ..inspect import CAP_SETS, inspect


def cmd_inspect(rt, args: list[str], flags: dict, g: dict) -> int:
    fmt = flags.get("format", "table")
    if fmt not in ("table", "json"):
        raise Usage(f"invalid format option: {fmt}")
    info = inspect(rt.root, args[0])
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(info, indent=2) + "\n")
    else:
        sys.stdout.write(format_table(info))
    return 0


# ---- the table ---------------------------------------------------------------------------------------------
def _size(n) -> str:
    if n is None:
        return "unlimited"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def _table(rows: list[tuple], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(str(r[c])) for r in rows) for c in range(len(rows[0]))]
    return [indent + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]


def format_table(info: dict) -> str:
    """The human-readable form: one section per aspect, the column a reader scans for on the left."""
    lines = [f"container {info['id']}  status={info['status']}  pid={info['pid']}",
             f"  bundle   {info['bundle']}",
             f"  rootfs   {info['rootfs']['path']}  ({'read-only' if info['rootfs']['readonly'] else 'read-write'}"
             + (", verified" if info['rootfs']['verified'] else ", NOT as configured"
                if info['rootfs']['verified'] is False else "") + ")",
             f"  hostname {info['hostname']['actual'] or '-'}  (configured: {info['hostname']['configured'] or '-'})",
             ""]
    if info["namespaces"]:
        lines.append("namespaces")
        rows = [("TYPE", "INODE", "ISOLATION", "SHARED WITH", "CONFIG")]
        for ns in info["namespaces"]:
            iso = "host (shared)" if ns["sharedWithHost"] else "new"
            rows.append((ns["type"], ns["inode"], iso, ",".join(ns["sharedWith"]) or "-", ns["configured"] or "-"))
        lines += _table(rows) + [""]
    if info["idMappings"]:
        lines.append("user namespace id maps (container host size)")
        for kind in ("uid", "gid"):
            maps = info["idMappings"][kind]
            lines.append(f"  {kind}  " + "; ".join(f"{m['containerID']} {m['hostID']} {m['size']}" for m in maps))
        lines.append("")
    cg = info["cgroup"]
    if cg:
        lines.append(f"cgroup ({cg['mode']})  {cg['path']}" + ("  [frozen]" if cg["frozen"] else ""))
        if cg.get("error"):
            lines.append(f"  {cg['error']}")
        rows = [("RESOURCE", "LIMIT", "CURRENT")]
        if cg["memory"]:
            rows.append(("memory", _size(cg["memory"]["limit"]),
                         f"{_size(cg['memory']['usage'])} (peak {_size(cg['memory']['maxUsage'])})"))
        if cg["pids"]:
            rows.append(("pids", cg["pids"]["limit"] or "unlimited", cg["pids"]["current"]))
        if cg["cpu"]:
            c = cg["cpu"]
            limit = f"{c['quotaUs']}/{c['periodUs']} us" if c["quotaUs"] else "unlimited"
            share = f", shares {c['shares']}" if c["shares"] else (f", weight {c['weight']}" if c["weight"] else "")
            rows.append(("cpu", limit + share, f"{c['usageNs'] / 1e9:.3f} s used"))
        if len(rows) > 1:
            lines += _table(rows)
        for ctrl, path in sorted(cg["paths"].items()):
            lines.append(f"  {ctrl or 'unified':<10} {path}")
        lines.append("")
    p = info["process"]
    if p:
        lines.append("process security" + ("" if p["applied"] else
                                           "  (created: the init has not exec'd; applied at start)"))
        lines.append(f"  uid/gid      {p.get('containerUid')}/{p.get('containerGid')} in the container"
                     f" ({p['uid']}/{p['gid']} on the host)")
        for name, _ in CAP_SETS:
            lines.append(f"  {name:<12} {' '.join(c[4:].lower() for c in p['capabilities'][name]) or '-'}")
        s = p["seccomp"]
        lines.append(f"  seccomp      {s['mode']}, {s['filters']} filter(s)"
                     + (f"; configured: {s['rules']} rule(s) over {s['syscalls']} syscall(s), default "
                        f"{s['defaultAction']}" if s["configured"] else "; none configured"))
        lines.append(f"  no_new_privs {'yes' if p['noNewPrivileges'] else 'no'}")
        lines.append("")
    for title, key in (("masked paths", "maskedPaths"), ("read-only paths", "readonlyPaths")):
        if info[key]:
            lines.append(title)
            rows = [(e["path"], {True: "ok", False: "NOT APPLIED", None: "?"}[e["verified"]], e["how"] or "")
                    for e in info[key]]
            lines += _table(rows) + [""]
    if info["mounts"]:
        lines.append("mounts")
        rows = [("MOUNTPOINT", "TYPE", "SOURCE", "OPTIONS", "PROPAGATION")]
        rows += [(m["mountPoint"], m["type"], m["source"], ",".join(m["options"]), m["propagation"])
                 for m in info["mounts"]]
        lines += _table(rows) + [""]
    for note in info["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines).rstrip() + "\n"
