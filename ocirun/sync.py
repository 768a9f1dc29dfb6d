"""The typed parent ↔ stage protocol, on a SOCK_SEQPACKET socketpair.

One datagram per message (no framing bugs), JSON payload, optional fds via
SCM_RIGHTS.  The closed set of messages, in the order of a `create`; the numbers are the
sync points, and each numbered step of :mod:`ocirun.stage.create` starts at the one of its number::

    parent (ocirun.launcher)                 create stage (stage 1 → stage 2)
      ── [0] CONFIG {plan, ...} + fds ──────▶
      make the cgroup, move the stage in      decode the launch plan, import what later steps need
      (the kernel's first cgroup.procs        (pure Python: nothing that creates a kernel
      write waits ≈10–17 ms for RCU)           object the container should be charged for)
      ── [1] CGROUP_JOINED ─────────────────▶
                                             open the rootfs, join namespaces given by path
      ◀──────────────── [2] USERNS_READY ───  unshare a new user ns (only then: else no [2])
      write uid_map / gid_map
      ── [2] USERNS_MAPPED ─────────────────▶
                                             become its root, unshare the rest, fork → stage 2
      ◀──────────────────── [3] PID {pid} ──  (pid 1 of a new pid ns); stage 1 exits
      apply cgroup limits (after the last fork), move linux.netDevices in;
      with a user namespace, clone the bind sources in its mount namespace (ocirun.bindsource)
      ── [4] CGROUP_DONE {trees} + fds ─────▶
                                             lo up, mounts, devices (before pivot_root)
      ◀──────────────────── [5] HOOKS ──────  (only with prestart or createRuntime hooks)
      prestart + createRuntime, runtime side
      ── [5] HOOKS_DONE ────────────────────▶
                                             createContainer hooks, pivot_root, hostname, sysctl,
                                             read-only and masked paths, console, preflight (cwd,
                                             program lookup), rlimits
      ◀──────────────────── [6] READY ──────
      (state.json written; create returns)    blocks in accept() on exec.sock
      [7] `start` connects to exec.sock ─────▶ answers "0"; privileges, seccomp, startContainer
      (reads until EOF: "0" alone is success)  hooks, execve (the connection is close-on-exec)

The same messages for an `exec` (:mod:`ocirun.exec`, stage :mod:`ocirun.stage.exec`)::

    parent (ocirun.exec)                     exec stage → the process
      ── [0] CONFIG {process, namespaces} + fds ▶   (process: an ocirun.plan.ProcessPlan)
      move the stage into the cgroup          decode, import, capability sets, seccomp, the agent
      ── [1] CGROUP_JOINED ─────────────────▶
                                             setns: user first, mount last; fork
      ◀──────────────────── [2] PID {pid} ──  (the stage exits)
      prlimit, oom_score_adj; the cgroup now for a paused container
      ── [3] CGROUP_DONE {pid} ─────────────▶
                                             console, preflight, privileges, seccomp
      ◀──────────────────── [4] READY ──────  execve: the socket is close-on-exec, so EOF follows

CONFIG of a create carries the launch plan (ocirun.plan.LaunchPlan.to_wire: the seccomp program is
in it), the state for hooks and create's options: never the config itself.  A stage forked from the
command (ocirun.stagefork) gets CONFIG's fields and fds in its memory, with the plan itself, instead
of the message; every later message is the same.

WARNING {msg, level} may come from a stage at any point (a note for the parent's log).
Any step may answer ERROR {msg} instead; :func:`recv` raises it as :class:`PeerError`, and the
parent prints it with context.

Only CONFIG and CGROUP_DONE carry fds, and they say how many (``nfds``): :func:`recv` closes
every fd that arrives otherwise (a message that carries none, more than announced, or a truncated
control message) and raises, so none leaks into a stage that never looks at it and none is lost unnoticed.
"""
from __future__ import annotations

import os
import sys

# The C modules, not socket/json: those import enum and re, which would cost the init stage
# (a fresh interpreter on every create) more than everything it does with them.
import _socket as socket

from .fastjson import dumps, loads

# SCM_RIGHTS data is an array of C ints; packed by hand because `array` imports collections.abc
# (≈1.5 ms, paid by both the runtime and the init stage on every create).
_INT = 4

#: The environment variable naming the init stage's end of the sync socket.
ENV_INITPIPE = "_OCIRUN_INITPIPE"
#: ``exec`` in this variable makes the stage the exec stage (ocirun.stage.exec); unset, the create stage.
ENV_INITMODE = "_OCIRUN_INITMODE"

CONFIG = "config"
USERNS_READY = "userns-ready"
USERNS_MAPPED = "userns-mapped"
PID = "pid"
#: the init is in its cgroup: from here it may create namespaces and fork (which the cgroup must own)
CGROUP_JOINED = "cgroup-joined"
CGROUP_DONE = "cgroup-done"
HOOKS = "hooks"
HOOKS_DONE = "hooks-done"
READY = "ready"
ERROR = "error"
WARNING = "warning"  # a note for the log: {"msg", "level": "warning"|"info"}

MESSAGES = {CONFIG, CGROUP_JOINED, USERNS_READY, USERNS_MAPPED, PID, CGROUP_DONE, HOOKS, HOOKS_DONE, READY, ERROR, WARNING}
#: the messages that may carry fds (the count travels in the message as ``nfds``)
FD_MESSAGES = {CONFIG, CGROUP_DONE}
MAX_MESSAGE = 4 * 1024 * 1024
MAX_ERROR = 4096
#: fds per message: the kernel's SCM_MAX_FD (sendmsg refuses more), so a receive buffer this size
#: is never what truncates a message (a full fd table still can: MSG_CTRUNC)
MAX_FDS = 253


class ProtocolError(Exception):
    pass


class PeerError(ProtocolError):
    """The peer answered ERROR: ``str()`` is its message as it sent it, ``payload`` the whole message."""

    def __init__(self, payload: dict):
        super().__init__(str(payload.get("msg", "")))
        self.payload = payload


def pair() -> tuple:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)


def send(sock, kind: str, fds: list[int] | None = None, **payload) -> None:
    if kind not in MESSAGES:
        raise ProtocolError(f"unknown message {kind!r}")
    if kind == ERROR:
        payload["msg"] = str(payload.get("msg", ""))[:MAX_ERROR]
    if fds:
        if kind not in FD_MESSAGES:
            raise ProtocolError(f"message {kind} carries no file descriptors")
        if len(fds) > MAX_FDS:
            raise ProtocolError(f"message {kind}: {len(fds)} file descriptors, at most {MAX_FDS}")
        payload["nfds"] = len(fds)
    payload["type"] = kind
    data = dumps(payload, compact=True).encode()
    # MSG_NOSIGNAL: a peer that went away is an EPIPE error here, never a SIGPIPE.
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
            b"".join(fd.to_bytes(_INT, sys.byteorder, signed=True) for fd in fds))] if fds else []
    sock.sendmsg([data], anc, socket.MSG_NOSIGNAL)


def recv(sock, expect: str | None = None) -> tuple[dict, list[int]]:
    """Receive one message and the fds it carries.

    Raises :class:`PeerError` on ERROR; :class:`ProtocolError` on EOF, an unknown type, a type
    other than ``expect`` (when given), a truncated control message (MSG_CTRUNC: the kernel
    dropped fds), or fds that the message does not announce (all that arrived are closed first).
    WARNING is returned only when ``expect`` is None: a caller waiting for one step must not
    take a warning for it.
    """
    try:
        data, anc, flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * _INT))
    except ConnectionResetError:
        # The peer exited with a message of ours unread (a stage that failed before CGROUP_JOINED):
        # SEQPACKET reports that reset first, then still delivers what the peer sent before it went.
        data, anc, flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * _INT))
    fds: list[int] = []
    for level, typ, cdata in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds += [int.from_bytes(cdata[i:i + _INT], sys.byteorder, signed=True)
                    for i in range(0, len(cdata) - len(cdata) % _INT, _INT)]
    try:
        msg = _check(data, flags, len(fds), expect)
    except BaseException:
        _close(fds)
        raise
    return msg, fds


def _check(data: bytes, flags: int, nfds: int, expect: str | None) -> dict:
    """The message in ``data``, or the ProtocolError it is (``recv`` closes the fds then)."""
    if flags & socket.MSG_CTRUNC:
        raise ProtocolError(f"message truncated (MSG_CTRUNC): file descriptors were dropped, "
                            f"{nfds} arrived")
    if flags & socket.MSG_TRUNC:
        raise ProtocolError(f"message truncated (MSG_TRUNC): larger than {MAX_MESSAGE} bytes")
    if not data:
        raise ProtocolError("init stage exited without reporting")
    msg = loads(data)
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind not in MESSAGES:
        raise ProtocolError(f"unknown message {kind!r}")
    if kind == ERROR:  # the peer's own words beat any fault of the message that carries them
        raise PeerError(msg)
    announced = msg.pop("nfds", 0) if kind in FD_MESSAGES else 0
    if nfds != announced:
        raise ProtocolError(f"message {kind}: {nfds} file descriptors arrived, {announced} expected")
    if expect is not None and kind != expect:
        raise ProtocolError(f"expected {expect}, got {kind}")
    return msg


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
