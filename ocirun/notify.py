"""NOTIFY_SOCKET passthrough (podman ``--sdnotify=container``), as runc does it.

A service manager that starts the runtime with ``NOTIFY_SOCKET`` wants to hear
``READY=1`` from the program in the container, not from the runtime.  The host
socket cannot simply be mounted in (it may be abstract, and the container must
not reach the manager directly), so the runtime relays:

    create   <state>/<id>/notify/ is made and bind-mounted read-only at /run/notify;
             the process gets NOTIFY_SOCKET=/run/notify/notify.sock
    start    binds a datagram socket notify.sock in that directory (it appears in the
             container through the bind mount), wakes the init, and waits until a
             datagram with a ``READY=`` line arrives (or the init dies); then it sends the
             host: that line, ``MAINPID=<init's host pid>``, and ``BARRIER=1`` with a pipe
             whose closing acknowledges that the manager has seen them (sd_notify_barrier)
    run      is create + start: the same

Paths and wording follow runc 1.1.5 on this machine (checked: the mount is
``/run/runc/<id>/notify`` → ``/run/notify``, ro,nosuid,nodev,noexec).
"""
from __future__ import annotations

import os

ENV = "NOTIFY_SOCKET"
DIR_NAME = "notify"
SOCKET_NAME = "notify.sock"
CONTAINER_DIR = "/run/notify"
CONTAINER_SOCKET = f"{CONTAINER_DIR}/{SOCKET_NAME}"
#: How long we wait for the manager to close the barrier pipe (runc: 30 s, then a warning).
BARRIER_TIMEOUT = 30.0


def socket_dir(state_dir: str) -> str:
    return os.path.join(state_dir, DIR_NAME)


def _mount(state_dir: str) -> dict:
    return {"destination": CONTAINER_DIR, "type": "bind", "source": socket_dir(state_dir),
            "options": ["bind", "nosuid", "noexec", "nodev", "ro"]}


def with_notify_mount(raw: dict, state_dir: str) -> dict:
    """The config with the socket directory bind-mounted at /run/notify and NOTIFY_SOCKET in the
    process environment (a copy: config.json itself is never changed).

    Only what changes is copied (the top level, ``mounts``, ``process``): ``raw`` is left as it was
    and shares the rest, which nothing mutates; a deepcopy cost ≈70 µs and the ``copy`` import."""
    out = dict(raw)
    out["mounts"] = [*(raw.get("mounts") or []), _mount(state_dir)]
    process = raw.get("process")
    if process is not None:
        env = [e for e in process.get("env") or [] if not e.startswith(ENV + "=")]
        env.append(f"{ENV}={CONTAINER_SOCKET}")
        out["process"] = {**process, "env": env}
    return out


def prepare(spec, state_dir: str, bundle: str):
    """`create`: make the directory and return the spec with the mount and variable added.

    The parsed spec gets the same additions as its ``raw`` (kept for `inspect`)
    without parsing the whole config a second time: the mount as :meth:`Spec.parse` would make it
    from that entry, ``process.env`` as ``raw`` now has it (pinned by tests/unit/test_notify_prepare.py)."""
    from .config import Mount

    os.mkdir(socket_dir(state_dir), 0o755)
    raw = with_notify_mount(spec.raw, state_dir)
    m = raw["mounts"][-1]
    changes = {"raw": raw, "mounts": [*spec.mounts, Mount(m["destination"], m["type"], m["source"],
                                                          list(m["options"]))]}
    if spec.process is not None:
        changes["process"] = type(spec.process)(**{**spec.process.to_dict(), "env": list(raw["process"]["env"])})
    return type(spec)(**{**spec.to_dict(), **changes})


def _address(host: str) -> str | bytes:
    """systemd's abstract sockets are written ``@name``."""
    return b"\0" + host[1:].encode() if host.startswith("@") else host


class Relay:
    """`start`: the container's end (bound before the init runs) and the forwarding to the host."""

    def __init__(self, state_dir: str):
        import socket

        d = socket_dir(state_dir)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        dirfd = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            path = f"/proc/self/fd/{dirfd}/{SOCKET_NAME}"
            try:
                os.unlink(path)  # a second `start` attempt after a failed one
            except FileNotFoundError:
                pass
            self.sock.bind(path)  # through the fd: clear of sun_path's 108 bytes
            os.chmod(path, 0o777)  # any user in the container may notify
        except BaseException:
            self.sock.close()
            raise
        finally:
            os.close(dirfd)

    def close(self) -> None:
        self.sock.close()

    def wait_ready(self, alive) -> bytes | None:
        """The first ``READY=`` line, or None once ``alive()`` says the init is gone."""
        import select

        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        while True:
            if not poller.poll(100):
                if not alive():
                    return None
                continue
            data = self.sock.recv(4096)
            for line in data.split(b"\n"):
                if line.startswith(b"READY="):
                    return line

    def forward(self, host: str, ready: bytes, pid: int, barrier_timeout: float = BARRIER_TIMEOUT) -> None:
        import array
        import select
        import socket

        out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            out.connect(_address(host))
            out.send(ready + b"\n")
            out.send(f"MAINPID={pid}\n".encode())
            r, w = os.pipe2(os.O_CLOEXEC)
            try:
                out.sendmsg([b"BARRIER=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))])
                os.close(w)
                w = -1
                # The manager acknowledges by closing its copy: EOF.  No answer in time: go on (as runc).
                select.select([r], [], [], barrier_timeout)
            finally:
                os.close(r)
                if w >= 0:
                    os.close(w)
        finally:
            out.close()

    def relay(self, host: str, pid: int, alive) -> bool:
        """Wait for READY and pass it on; False when the init died first."""
        try:
            ready = self.wait_ready(alive)
            if ready is None:
                return False
            self.forward(host, ready, pid)
            return True
        finally:
            self.close()
