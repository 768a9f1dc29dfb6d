"""Every privileged stdlib call goes through the kernel seam (``ocirun/kernel/``).

The source of ``ocirun/`` outside ``kernel/`` is parsed and every reference to a call of
:data:`PRIVILEGED` is listed, whether called, passed along or imported by name (``from os import
setsid``).  What counts as privileged is written down in ``ocirun/kernel/__init__.py``; ctypes
(libc and raw syscalls) is held to the seam by ``test_structure.py``.
"""
import ast
import os

import pytest

import ocirun

PACKAGE = os.path.dirname(ocirun.__file__)

#: Module → the calls of it that change identity, namespaces, mounts or the root, make device nodes
#: or send ioctls, change ownership, scheduling or placement, make sealed memory files, or act on
#: another process.
PRIVILEGED = {
    "os": {"setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid",
           "setgroups", "initgroups", "setsid", "setpgid", "setpgrp", "unshare", "setns", "chroot", "mknod",
           "chown", "fchown", "lchown", "sched_setaffinity", "sched_setscheduler", "sched_setparam",
           "setpriority", "nice", "memfd_create", "pidfd_open", "kill", "killpg"},
    "posix": set(),  # filled below: os's names reached through the C module
    "fcntl": {"ioctl"},
    "signal": {"pidfd_send_signal", "pthread_kill"},
    "_signal": {"pidfd_send_signal", "pthread_kill"},
    "resource": {"setrlimit", "prlimit"},
}
PRIVILEGED["posix"] = PRIVILEGED["os"]

def _sources():
    for dirpath, dirnames, filenames in os.walk(PACKAGE):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel_dir = os.path.relpath(dirpath, PACKAGE)
        if rel_dir.split(os.sep)[0] == "kernel":
            continue
        for name in filenames:
            if name.endswith(".py"):
                yield os.path.normpath(os.path.join(rel_dir, name)).replace(os.sep, "/")


def privileged_uses(source: str) -> list[tuple[int, str]]:
    """(line, "module.call") of every reference to a privileged call in ``source``."""
    tree = ast.parse(source)
    aliases = {}  # local name → privileged module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in PRIVILEGED:
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in PRIVILEGED:
            for a in node.names:
                if a.name in PRIVILEGED[node.module] or a.name == "*":
                    found.append((node.lineno, f"{node.module}.{a.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module and node.attr in PRIVILEGED[module]:
                found.append((node.lineno, f"{module}.{node.attr}"))
    return sorted(found)


def test_no_privileged_call_outside_the_kernel_seam():
    offenders = []
    for rel in _sources():
        with open(os.path.join(PACKAGE, rel)) as f:
            for line, call in privileged_uses(f.read()):
                offenders.append(f"ocirun/{rel}:{line}: {call}")
    assert not offenders, "privileged calls outside ocirun/kernel/ (add a wrapper there):\n" + "\n".join(offenders)


@pytest.mark.parametrize("source,expected", [
    ("import os\nos.setresuid(1, 1, 1)\n", ["os.setresuid"]),
    ("import os as o\nf = o.kill\n", ["os.kill"]),  # passed along, not called: still a use
    ("from os import setsid, getpid\n", ["os.setsid"]),
    ("import fcntl\nfcntl.ioctl(0, 1)\nfcntl.flock(0, 2)\n", ["fcntl.ioctl"]),
    ("import _signal as signal\nsignal.pidfd_send_signal(3, 9)\n", ["_signal.pidfd_send_signal"]),
    ("import resource\nresource.prlimit(1, 2, (3, 4))\n", ["resource.prlimit"]),
    ("from . import signals as signal\nsignal.pidfd_send_signal\n", []),  # ocirun's own module, not the stdlib's
    ("import os\nos.chmod('x', 0o644)\nos.getuid()\n", []),  # mode bits and reads are not privileged
])
def test_the_scan_sees_each_form(source, expected):
    assert [call for _, call in privileged_uses(source)] == expected
