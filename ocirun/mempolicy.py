"""linux.memoryPolicy (config-linux.md "Memory policy"): the NUMA policy of the container's processes.

The policy is a property of a task, inherited across fork and execve, so the init stage sets it
with set_mempolicy(2) just before it reports READY (a refusal by the kernel then fails `create`),
and the exec stage sets it again for a process `ocirun exec` starts (as runc does: a policy is
not something a process inherits from the namespaces it joins).

Everything the kernel would refuse for the combination itself is refused here first, before any
side effect, with an error naming the field.  The rules are the kernel's (mm/mempolicy.c,
``sanitize_mpol_flags`` and ``mpol_new``), checked against the real syscall for every
mode × flag × (no) nodes combination in tests/linux/test_mempolicy.py:

* MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other;
* MPOL_F_NUMA_BALANCING only goes with MPOL_BIND and MPOL_PREFERRED_MANY;
* MPOL_DEFAULT takes no nodes; MPOL_LOCAL takes no nodes and no flags;
* MPOL_PREFERRED may have no nodes (it then means "local"), but not with STATIC/RELATIVE;
* every other mode needs at least one node.

Whether a node exists is the kernel's business (cpusets and RELATIVE/STATIC decide what a node
number means); its refusal is reported with the mode and the nodes.
"""
from __future__ import annotations

from .errors import ConfigError, InitError

#: mode name → value (include/uapi/linux/mempolicy.h); `features` reports these keys.
MODES = {
    "MPOL_DEFAULT": 0,
    "MPOL_PREFERRED": 1,
    "MPOL_BIND": 2,
    "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4,
    "MPOL_PREFERRED_MANY": 5,
    "MPOL_WEIGHTED_INTERLEAVE": 6,
}
#: flag name → bit OR-ed into the mode; `features` reports these keys.
FLAGS = {
    "MPOL_F_NUMA_BALANCING": 1 << 13,
    "MPOL_F_RELATIVE_NODES": 1 << 14,
    "MPOL_F_STATIC_NODES": 1 << 15,
}
#: node numbers accepted in ``nodes`` (the largest MAX_NUMNODES a kernel can have)
MAX_NODES = 1024

_NODES_REQUIRED = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED_MANY")
_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_BALANCING_MODES = ("MPOL_BIND", "MPOL_PREFERRED_MANY")

FIELD = "linux.memoryPolicy"


def _fail(field: str, why: str) -> None:
    raise ConfigError(f"config.json: {FIELD}{field}: {why}")


def parse_nodes(text: str | None) -> list[int]:
    """``"0-3,7"`` → ``[0, 1, 2, 3, 7]`` (sorted, no duplicates); ``""``/None → ``[]``.

    Raises ValueError naming the bad part: not a number, a range that runs backwards,
    or a node at or beyond MAX_NODES.
    """
    nodes: set[int] = set()
    if not text:
        return []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"empty element in {text!r}")
        lo, sep, hi = part.partition("-")
        lo, hi = lo.strip(), hi.strip()
        if not lo.isdigit() or (sep and not hi.isdigit()) or not lo.isascii() or not hi.isascii():
            raise ValueError(f"{part!r} is not a node number or a range N-M")
        first, last = int(lo), int(hi if sep else lo)
        if last < first:
            raise ValueError(f"range {part!r} runs backwards")
        if last >= MAX_NODES:
            raise ValueError(f"node {last} is beyond the largest possible node ({MAX_NODES - 1})")
        nodes.update(range(first, last + 1))
    return sorted(nodes)


def plan(policy: dict) -> tuple[int, list[int]]:
    """Check ``linux.memoryPolicy`` and return (mode | flags, nodes) for set_mempolicy(2).

    Raises ConfigError naming the field for anything the kernel would refuse as a combination.
    """
    if not isinstance(policy, dict):
        _fail("", "must be an object")
    mode = policy.get("mode")
    if mode is None:
        _fail(".mode", "is required")
    if mode not in MODES:
        _fail(".mode", f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    nodes_text = policy.get("nodes")
    if nodes_text is not None and not isinstance(nodes_text, str):
        _fail(".nodes", "must be a string such as \"0-3,7\"")
    try:
        nodes = parse_nodes(nodes_text)
    except ValueError as e:
        _fail(".nodes", str(e))
    flags = policy.get("flags") or []
    if not isinstance(flags, list):
        _fail(".flags", "must be an array")
    bits = 0
    for i, flag in enumerate(flags):
        if flag not in FLAGS:
            _fail(f".flags[{i}]", f"unknown flag {flag!r} (known: {', '.join(FLAGS)})")
        bits |= FLAGS[flag]
    names = set(flags)
    if {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"} <= names:
        _fail(".flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES cannot be used together")
    if "MPOL_F_NUMA_BALANCING" in names and mode not in _BALANCING_MODES:
        _fail(".flags", f"MPOL_F_NUMA_BALANCING requires mode MPOL_BIND or MPOL_PREFERRED_MANY, not {mode}")
    if mode in _NO_NODES and nodes:
        _fail(".nodes", f"mode {mode} takes no nodes (got {nodes_text!r})")
    if mode == "MPOL_LOCAL" and names:
        _fail(".flags", f"mode MPOL_LOCAL takes no flags (got {', '.join(flags)})")
    if mode in _NODES_REQUIRED and not nodes:
        _fail(".nodes", f"mode {mode} requires at least one node")
    if mode == "MPOL_PREFERRED" and not nodes and names & {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"}:
        _fail(".nodes", "MPOL_PREFERRED with MPOL_F_STATIC_NODES or MPOL_F_RELATIVE_NODES requires a node")
    return MODES[mode] | bits, nodes


def apply(policy: dict) -> None:
    """Set the calling process's policy (init and exec stages); the error names mode and nodes."""
    from .kernel import linux as k

    value, nodes = plan(policy)
    try:
        k.set_mempolicy(value, nodes)
    except OSError as e:
        import os

        what = policy["mode"] + "".join(f"|{f}" for f in policy.get("flags") or [])
        where = f", nodes {policy.get('nodes')}" if nodes else ""
        raise InitError(f"{FIELD}: set_mempolicy({what}{where}): {os.strerror(e.errno)}") from None
