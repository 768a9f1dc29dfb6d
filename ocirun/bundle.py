"""Build a small runnable bundle from the host's busybox-static.

Used by the README demo, the tests, the conformance suite and the benchmark, so
that everything runs offline: the rootfs is busybox plus one symlink per applet.
"""
from __future__ import annotations

import json
import os
import shutil

from .specgen import default_spec

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def find_busybox() -> str:
    """Return the path of a statically linked busybox, or raise FileNotFoundError."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path) and _is_static(path):
            return path
    raise FileNotFoundError("no static busybox found (apt-get install busybox-static)")


def _is_static(path: str) -> bool:
    # A static ELF has no PT_INTERP program header; the string is enough to tell.
    with open(path, "rb") as f:
        head = f.read(4096)
    return b"/ld-linux" not in head and b"/ld-musl" not in head


def make_rootfs(rootfs: str, busybox: str | None = None) -> str:
    """Create a busybox rootfs at ``rootfs`` (bin/ with applet links, etc/, proc/, dev/...)."""
    busybox = busybox or find_busybox()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "var", "run"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    target = os.path.join(rootfs, "bin", "busybox")
    shutil.copy2(busybox, target)
    import subprocess

    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = os.path.join(rootfs, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    return rootfs


def make_bundle(bundle: str, args: list[str] | None = None, terminal: bool = False,
                rootless: bool = False, busybox: str | None = None, **overrides) -> dict:
    """Create ``bundle``/rootfs and ``bundle``/config.json; return the config written.

    ``overrides`` are merged into the top level of the default spec (e.g.
    ``hostname="x"``) so that callers can change one thing without rebuilding it.
    """
    os.makedirs(bundle, exist_ok=True)
    make_rootfs(os.path.join(bundle, "rootfs"), busybox)
    spec = default_spec(rootless=rootless, args=args or ["sh"], terminal=terminal)
    spec.update(overrides)
    write_config(bundle, spec)
    return spec


def write_config(bundle: str, spec: dict) -> None:
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=2)
