"""`pause <container-id>` and `resume <container-id>`: freeze and thaw every process of a container."""
from __future__ import annotations


def cmd_pause(rt, args: list[str], flags: dict, g: dict) -> int:
    rt.pause(args[0])
    return 0


def cmd_resume(rt, args: list[str], flags: dict, g: dict) -> int:
    rt.resume(args[0])
    return 0
