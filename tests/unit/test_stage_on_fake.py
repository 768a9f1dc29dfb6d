"""Both stages, driven from their entry (:func:`ocirun.stage.entry.main`) on the recording fake kernel.

The test is the parent: it sends CONFIG with its fds over a real SEQPACKET socketpair and feeds the
later messages in protocol order (a datagram waits in the socket until the stage reads it), then
reads what the stage sent.  The stage runs in the test's own process and main thread; what would
end or replace the process is stood in for: ``os.fork`` returns 0 (follow the child) or a pid
(follow the parent), ``os._exit`` raises :class:`StageExit`, ``os.execve`` is recorded and returns,
so the stage falls through to its "not reached" exit.  Every privileged call is the fake's; the
filesystem the create stage builds is a real directory under ``tmp_path`` (openat2 and open_tree are
passed through to real, unprivileged opens so that the paths resolve; mknod makes an empty file).
The fake pivot_root leaves the test's ``/`` where it was, so paths used after it (masked and
read-only paths) are absolute paths under ``tmp_path``.

Every message the stage receives or sends is recorded in the same list as the kernel calls
(``("recv", (kind,))``, ``("send", (kind,))``), so each assertion reads the calls made between two
numbered sync points of :mod:`ocirun.sync`'s diagrams.
"""
import errno
import os
import socket
import threading

import _signal
import _socket
import pytest

from ocirun import plan, procfs, sync
from ocirun.kernel import linux as k
from ocirun.kernel.fake import FakeKernel
from ocirun.seccomp.model import CompiledFilter
from ocirun.stage import create, entry

ALL_CAPS = (1 << 41) - 1
#: a "filter" (in the plan; on the wire for exec): the fake set_mode_filter never looks inside it
PROGRAM = CompiledFilter(b"\x06\x00\x00\x00\x00\x00\xff\x7f", 0, False, [])
FILTER = PROGRAM.to_json()
SIGNALS = (15, 2, 1, 3, 10, 12)  # what the create stage traps while it waits for `start`


class StageExit(SystemExit):
    """``os._exit(code)`` of the stage.  A SystemExit, so that the stage's own reporting ignores it as
    it ignores a real exit."""


def _mknod_as_file(name, mode, device=0, dir_fd=None):
    """Stand-in for mknod without CAP_MKNOD: an empty file where the node would be."""
    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dir_fd))


class _Procfs:
    """Stands in for :class:`ocirun.procfs.Procfs` (a private clone of /proc needs CAP_SYS_ADMIN): its
    writes are recorded in the kernel's list, in order with the calls around them."""

    def __init__(self, calls):
        self.calls = calls

    def __call__(self, *args, **kwargs):  # the class is called: Procfs()
        return self

    def __enter__(self):  # procfs.write: one write through a handle of its own
        return self

    def __exit__(self, *exc):
        pass

    def write(self, paths, value, what=None):
        path = paths if isinstance(paths, str) else paths[0]
        self.calls.append(("procfs.write", (path, value)))
        return path

    def close(self):
        pass


class Stage:
    """One stage run: the fake kernel, the parent's end of the sync socket, what the stage sent."""

    def __init__(self, monkeypatch, tmp_path):
        self.mp, self.tmp = monkeypatch, tmp_path
        self.rootfs = tmp_path / "rootfs"
        self.rootfs.mkdir()
        self.pid = 0  # what os.fork returns: 0 follows the child
        self.exit_code = None
        real_openat2, real_recv, real_send = k.openat2, sync.recv, sync.send
        self.fk = fk = FakeKernel(monkeypatch, {"openat2": real_openat2, "open_tree": self._open_tree,
                                                "mknod": _mknod_as_file, "fstatfs": (k.TMPFS_MAGIC, 0),
                                                "capget": (ALL_CAPS, ALL_CAPS, 0)})
        self.placed = []  # (call, where in the rootfs) of each mount and move_mount, resolved when made
        fk.returns["mount"] = lambda src, tgt, *a: self.placed.append(("mount", self._where(tgt)))
        fk.returns["move_mount"] = lambda fd, p, tfd, *a: self.placed.append(("move_mount", self._where(tfd)))

        def recv(sock, expect=None):
            msg, fds = real_recv(sock, expect)
            fk.calls.append(("recv", (msg["type"],)))
            return msg, fds

        def send(sock, kind, fds=None, **payload):
            entry = ("send", (kind,))
            fk.calls.append(entry)  # before: a parent thread may read the record as soon as it has the message
            try:
                real_send(sock, kind, fds, **payload)
            except OSError:  # not sent (after READY the socket is closed): not in the record
                fk.calls.remove(entry)
                raise

        self._recv, self._send = real_recv, real_send
        monkeypatch.setattr(sync, "recv", recv)
        monkeypatch.setattr(sync, "send", send)
        monkeypatch.setattr(os, "fork", lambda: fk.calls.append(("fork", ())) or self.pid)
        monkeypatch.setattr(os, "_exit", self._exit)
        monkeypatch.setattr(os, "execve", lambda path, args, env: fk.calls.append(("execve", (path, args, env))))
        monkeypatch.setattr(os, "umask", lambda mask: fk.calls.append(("umask", (mask,))) or 0o022)
        monkeypatch.setattr(procfs, "Procfs", _Procfs(fk.calls))
        monkeypatch.chdir(tmp_path)  # the stage changes directory (fchdir, chroot's chdir): put back after
        monkeypatch.setattr(create, "_START_FD", None)
        self.sockets = []  # the socket objects the stage makes (_socket.socket(fileno=...)), closed after

        real_socket = _socket.socket

        class Socket(real_socket):
            def __init__(sock, *args, **kwargs):
                # (socket.socket's __init__ calls _socket.socket.__init__ by name: it lands here too)
                real_socket.__init__(sock, *args, **kwargs)
                if type(sock) is Socket:
                    self.sockets.append(sock)

        monkeypatch.setattr(_socket, "socket", Socket)
        self.parent, child = sync.pair()
        self.stage_fd = child.detach()
        monkeypatch.setenv(sync.ENV_INITPIPE, str(self.stage_fd))
        monkeypatch.delenv(sync.ENV_INITMODE, raising=False)
        self.start_client = None

    # --- the stand-ins ------------------------------------------------------------------------------
    def _exit(self, code):
        if self.exit_code is None:  # the first: what the process would have exited with
            self.exit_code = code
        raise StageExit(code)

    @staticmethod
    def _open_tree(dirfd, path, flags):
        """A real O_PATH fd of what would be cloned (so that the stage can go on walking it)."""
        return os.open(path or ".", os.O_PATH | os.O_CLOEXEC, dir_fd=None if dirfd == k.AT_FDCWD else dirfd)

    def _where(self, target):
        path = os.readlink(f"/proc/self/fd/{target}") if isinstance(target, int) else target
        if isinstance(path, str) and path.startswith("/proc/self/fd/"):
            path = os.readlink(path)
        root = str(self.rootfs)
        return path[len(root):] or "/" if isinstance(path, str) and path.startswith(root) else path

    # --- the parent's side --------------------------------------------------------------------------
    def start_socket(self) -> int:
        """The listening exec.sock, with `start` already connected (it waits in the backlog)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        name = f"\0ocirun-test-stage-{os.getpid()}-{id(self)}"
        listener.bind(name)
        listener.listen(1)
        self.start_client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.start_client.connect(name)
        return listener.detach()

    def feed(self, kind, fds=None, **payload):
        self._send(self.parent, kind, fds, **payload)

    def run(self):
        """entry.main until the stage's exit; returns its code."""
        with pytest.raises(StageExit):
            entry.main()
        return self.exit_code

    def sent(self) -> list[tuple[str, dict]]:
        """Every message the stage sent, in order (an ERROR as ``("error", payload)``)."""
        out = []
        self.parent.setblocking(False)
        while True:
            try:
                msg, fds = self._recv(self.parent)
            except sync.PeerError as e:
                out.append((sync.ERROR, e.payload))
                continue
            except (BlockingIOError, sync.ProtocolError):
                return out
            out.append((msg["type"], msg))

    def start_reply(self) -> bytes:
        """What `start` read on its connection: "0", then the stage's error after "E" if any."""
        if create._START_FD is not None:  # execve would have closed it (close-on-exec)
            os.close(create._START_FD)
            create._START_FD = None
        chunks = []
        while chunk := self.start_client.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)

    # --- reading the record -------------------------------------------------------------------------
    @property
    def calls(self) -> list[tuple[str, tuple]]:
        """The record without openat2: the lookups that resolve each path in the rootfs (unprivileged,
        passed through) would drown the calls that change something."""
        return [c for c in self.fk.calls if c[0] != "openat2"]

    def steps(self) -> list[str]:
        """The names of the calls, prctl with its option, messages as ``recv:kind``/``send:kind``."""
        out = []
        for name, args in self.calls:
            if name in ("recv", "send"):
                out.append(f"{name}:{args[0]}")
            elif name == "prctl":
                out.append(f"prctl:{_PRCTL.get(args[0], args[0])}")
            else:
                out.append(name)
        return out

    def last_call(self) -> str:
        """The last kernel call (not a message)."""
        return [s for s in self.steps() if not s.startswith(("recv:", "send:"))][-1]

    def between(self, first: str, last: str | None) -> list[tuple[str, tuple]]:
        """The calls after the step ``first`` and before ``last`` (None: to the end)."""
        steps = self.steps()
        i = steps.index(first) + 1
        j = steps.index(last, i) if last else len(steps)
        return self.calls[i:j]

    def close(self):
        self.parent.close()
        if self.start_client is not None:
            self.start_client.close()


_PRCTL = {k.PR_SET_DUMPABLE: "dumpable", k.PR_CAPBSET_DROP: "capbset_drop", k.PR_SET_KEEPCAPS: "keepcaps",
          k.PR_CAP_AMBIENT: "ambient", k.PR_SET_NO_NEW_PRIVS: "no_new_privs"}


def _squeeze(steps):
    """Runs of one step as one (the bounding set is dropped one capability at a time)."""
    out = []
    for s in steps:
        if not out or out[-1] != s:
            out.append(s)
    return out


@pytest.fixture
def stage(monkeypatch, tmp_path):
    handlers = {sig: _signal.getsignal(sig) for sig in SIGNALS}
    before = set(os.listdir("/proc/self/fd"))
    s = Stage(monkeypatch, tmp_path)
    yield s
    s.close()
    for sig, handler in handlers.items():
        _signal.signal(sig, handler)
    # What a failed stage left open, which its exit would close: first the socket objects it made
    # (closed by themselves: closing their number here, they would close a later reuse of it when
    # collected), then the raw fds it received.
    for sock in s.sockets:
        sock.close()
    for fd in set(os.listdir("/proc/self/fd")) - before:
        try:
            os.close(int(fd))
        except OSError:
            pass


# --- the create stage ------------------------------------------------------------------------------

def _spec(s: Stage, *, namespaces=None, user=False, process=None, linux=None, hooks=None, mounts=None):
    (s.tmp / "data").mkdir(exist_ok=True)
    proc_dir = s.rootfs / "proc"
    (proc_dir / "acpi").mkdir(parents=True, exist_ok=True)
    (proc_dir / "sys").mkdir(exist_ok=True)
    (proc_dir / "kcore").write_text("")
    ns = [{"type": t} for t in (namespaces or ["pid", "network", "ipc", "uts", "mount"])]
    if user:
        ns.append({"type": "user"})
    raw_linux = {
        "namespaces": ns,
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}],
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "maskedPaths": [str(proc_dir / "kcore"), str(proc_dir / "acpi"), str(proc_dir / "missing")],
        "readonlyPaths": [str(proc_dir / "sys")],
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"},
    }
    if user:
        raw_linux["uidMappings"] = raw_linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    raw_linux.update(linux or {})
    raw_process = {"args": ["/bin/sh", "-c", "true"], "cwd": "/", "env": ["PATH=/usr/bin:/bin", "HOME=/root"],
                   "user": {"uid": 1000, "gid": 100, "additionalGids": [10]}, "noNewPrivileges": True,
                   "oomScoreAdj": 100, "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}],
                   "capabilities": {c: ["CAP_KILL", "CAP_NET_BIND_SERVICE"] for c in
                                    ("bounding", "effective", "permitted")}}
    raw_process.update(process or {})
    return {
        "ociVersion": "1.2.0", "root": {"path": "rootfs", "readonly": True}, "hostname": "box",
        "process": raw_process,
        "mounts": mounts if mounts is not None else [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec"]},
            {"destination": "/data", "type": "bind", "source": str(s.tmp / "data"), "options": ["rbind", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
        ],
        "hooks": hooks if hooks is not None else {"prestart": [{"path": "/bin/true"}]},
        "linux": raw_linux,
    }


def _plan(raw: dict, bundle) -> dict:
    """The launch plan the parent builds from the config (ocirun.launcher, ocirun.plan.launch_plan), with
    the program it would compile from linux.seccomp: all the create stage gets of the config."""
    from ocirun.config import Spec

    spec = Spec.parse(raw, str(bundle))
    return plan.launch_plan(spec, str(bundle), 40, PROGRAM if spec.linux.seccomp else None).to_wire()


def _create(s: Stage, raw: dict, *, userns_mapped=False, hooks=True, **options):
    """CONFIG as ocirun.launcher sends it, then every later message of the parent, in order."""
    opts = {"no_pivot": False, "preserve_fds": 0, "no_new_keyring": False, "fd_index": {"start": 0},
            "setgroups": True, "debug": False, "keep_groups": False}
    opts.update(options)
    start = s.start_socket()
    s.feed(sync.CONFIG, fds=[start], plan=_plan(raw, s.tmp),
           state={"ociVersion": "1.2.0", "id": "ctr", "status": "creating", "bundle": str(s.tmp)},
           options=opts)
    os.close(start)  # sent: the stage holds its own copy
    s.feed(sync.CGROUP_JOINED)
    if userns_mapped:
        s.feed(sync.USERNS_MAPPED)
    s.feed(sync.CGROUP_DONE)
    if hooks:
        s.feed(sync.HOOKS_DONE)


def test_create_from_config_to_execve_in_the_order_of_the_diagram(stage):
    netns = stage.tmp / "netns"
    netns.write_text("")
    raw = _spec(stage, namespaces=["pid", "ipc", "uts", "mount"])
    raw["linux"]["namespaces"].append({"type": "network", "path": str(netns)})
    _create(stage, raw)
    assert stage.run() == 0  # the fake execve returned: the stage fell through to its exit
    steps = stage.steps()

    # the sync points, in the order of ocirun.sync's create diagram (no user namespace: no [2])
    assert [s for s in steps if s.startswith(("recv", "send"))] == [
        "recv:config", "recv:cgroup-joined", "recv:cgroup-done", "send:hooks", "recv:hooks-done", "send:ready"]
    assert [kind for kind, _ in stage.sent()] == [sync.HOOKS, sync.READY]
    assert stage.start_reply() == b"0"  # `start` read "0", then EOF at execve: success

    # [0] before CONFIG: signals, non-dumpable, the comm that `state` reads
    assert stage.calls[:3] == [("reset_signals", ()), ("prctl", (k.PR_SET_DUMPABLE, 0)),
                               ("set_name", ("ocirun:[init]",))]
    # [1] → [3]: the path's namespace joined, then one unshare of the new ones (no user namespace),
    # the fork; stage 2 starts its own session before it waits for CGROUP_DONE
    assert stage.between("recv:cgroup-joined", "recv:cgroup-done") == [
        ("setns", (stage.fk.of("setns")[0][0], k.CLONE_NEWNET)),
        ("unshare", (k.CLONE_NEWPID | k.CLONE_NEWIPC | k.CLONE_NEWUTS | k.CLONE_NEWNS,)),
        ("fork", ()), ("setsid", ()),
    ]
    # [4] → [5]: a joined network namespace is its owner's to bring up (no lo here); / rslave, the
    # rootfs bound onto itself, then the mounts in config order
    four = [n for n, _ in stage.between("recv:cgroup-done", "send:hooks")]
    assert "set_link_up" not in four
    assert four[:3] == ["mount", "open_tree", "move_mount"]
    assert stage.fk.of("mount")[0] == (None, "/", None, k.MS_SLAVE | k.MS_REC)
    assert stage.placed[:7] == [("mount", "/"), ("move_mount", "/"), ("mount", "/proc"), ("mount", "/dev"),
                                ("mount", "/dev/pts"), ("move_mount", "/data"), ("mount", "/tmp")]
    # default devices in order, each node then its owner, then linux.devices
    nodes = [args[0] for args in stage.fk.of("mknod")]
    assert nodes == ["null", "zero", "full", "random", "urandom", "tty", "fuse"]
    # (linux.devices' fuse names no owner: not chowned)
    assert [n for n in four if n in ("mknod", "chown")] == ["mknod", "chown"] * 6 + ["mknod"]
    # the links and /dev/shm are made in the real directory (no /dev/ptmx link: the fake devpts is empty)
    assert os.readlink(stage.rootfs / "dev" / "stdout") == "/proc/self/fd/1"
    assert (stage.rootfs / "dev" / "shm").is_dir() and not (stage.rootfs / "dev" / "ptmx").exists()

    # [5] HOOKS_DONE → [6] READY: pivot_root, keyring, hostname, sysctl, read-only and masked paths,
    # read-only root, oom_score_adj, rlimits, the capability check create does for runc's wording
    five = stage.between("recv:hooks-done", "send:ready")
    names = [n for n, _ in five]
    assert names == ["pivot_root", "mount", "umount2", "join_session_keyring", "sethostname", "procfs.write",
                     "mount", "fstatfs", "mount", "mount", "mount", "fstatfs", "mount", "procfs.write",
                     "setgroups", "setegid", "seteuid", "seteuid", "setegid", "setrlimit", "capget"]
    assert five[3] == ("join_session_keyring", ("_ses.ctr",)) and five[4] == ("sethostname", ("box",))
    assert five[5] == ("procfs.write", ("sys/net/ipv4/ip_forward", "1"))
    # the read-only path bound then remounted, the masks (a missing path: nothing), the root remounted
    assert stage.placed[-5:] == [("mount", "/proc/sys"), ("mount", "/proc/sys"), ("mount", "/proc/kcore"),
                                 ("mount", "/proc/acpi"), ("mount", "/")]
    assert five[13] == ("procfs.write", ("self/oom_score_adj", "100"))
    assert five[19] == ("setrlimit", (plan.RLIMITS["RLIMIT_NOFILE"], 1024, 1024))

    # [7] `start` connected: fds close-on-exec and signals first, the bounding set, the user (groups,
    # gid, uid with KEEPCAPS), then capset, ambient, no_new_privs; with NNP seccomp comes last, then execve
    seven = _squeeze([s for s in steps[steps.index("send:ready") + 1:]])
    assert seven == ["close_range", "reset_signals", "prctl:capbset_drop", "prctl:keepcaps", "setgroups",
                     "setresgid", "setresuid", "prctl:keepcaps", "umask", "capset", "prctl:ambient",
                     "prctl:no_new_privs", "set_mode_filter", "execve"]
    assert stage.fk.of("setresuid") == [(1000, 1000, 1000)] and stage.fk.of("setgroups")[-1] == ([10],)
    caps = (1 << 5) | (1 << 10)  # CAP_KILL, CAP_NET_BIND_SERVICE
    assert stage.fk.of("capset") == [(caps, caps, 0)]
    dropped = {args[1] for args in stage.fk.of("prctl") if args[0] == k.PR_CAPBSET_DROP}
    assert 5 not in dropped and 10 not in dropped and 0 in dropped
    assert stage.fk.of("close_range") == [(3, 0xFFFFFFFF, 4)]
    assert stage.calls[-1] == ("execve", ("/bin/sh", ["/bin/sh", "-c", "true"],
                                          {"PATH": "/usr/bin:/bin", "HOME": "/root"}))


def test_without_no_new_privileges_seccomp_is_loaded_before_the_user_switch(stage):
    _create(stage, _spec(stage, process={"noNewPrivileges": False}))
    assert stage.run() == 0
    seven = _squeeze(stage.steps()[stage.steps().index("send:ready") + 1:])
    # it needs CAP_SYS_ADMIN then: after the fds and labels, before the bounding set and the user
    assert seven[:5] == ["close_range", "reset_signals", "set_mode_filter", "prctl:capbset_drop", "prctl:keepcaps"]
    assert "prctl:no_new_privs" not in seven and seven[-1] == "execve"


def test_a_new_network_namespace_brings_lo_up_first(stage):
    _create(stage, _spec(stage), hooks=True)
    assert stage.run() == 0
    four = stage.between("recv:cgroup-done", "send:hooks")
    assert four[0] == ("set_link_up", ("lo",))
    assert stage.fk.of("unshare") == [(k.CLONE_NEWPID | k.CLONE_NEWNET | k.CLONE_NEWIPC | k.CLONE_NEWUTS
                                       | k.CLONE_NEWNS,)]


@pytest.mark.parametrize("euid", [0, 1000])
def test_a_new_user_namespace_is_mapped_by_the_parent_then_entered_as_its_root(stage, monkeypatch, euid):
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    _create(stage, _spec(stage, user=True), userns_mapped=True)
    assert stage.run() == 0
    two = [s for s in stage.steps()[stage.steps().index("recv:cgroup-joined") + 1:stage.steps().index("fork")]]
    dumpable = ["prctl:dumpable"] if euid else []  # a non-root parent may open our maps only while dumpable
    assert two == ["unshare", *dumpable, "send:userns-ready", "recv:userns-mapped", *dumpable,
                   "setresgid", "setresuid", "unshare"]
    assert stage.fk.of("unshare") == [(k.CLONE_NEWUSER,), (k.CLONE_NEWPID | k.CLONE_NEWNET | k.CLONE_NEWIPC
                                                           | k.CLONE_NEWUTS | k.CLONE_NEWNS,)]
    if euid:
        assert [a for a in stage.fk.of("prctl") if a[0] == k.PR_SET_DUMPABLE][1:] == [(k.PR_SET_DUMPABLE, 1),
                                                                                     (k.PR_SET_DUMPABLE, 0)]
    assert stage.fk.of("setresgid")[0] == (0, 0, 0) and stage.fk.of("setresuid")[0] == (0, 0, 0)
    # mknod is denied in a user namespace: each device is a bind of the host's node, nothing made
    assert not stage.fk.of("mknod")
    binds = [args for args in stage.fk.of("mount") if args[0] and args[0].startswith("/dev/")]
    assert [b[0] for b in binds] == ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                                     "/dev/tty", "/dev/fuse"]
    assert all(b[3] == k.MS_BIND for b in binds)


def test_a_parent_thread_maps_the_user_namespace_only_once_the_stage_asks(stage, monkeypatch):
    """The parent as a thread that answers each message when it comes: at USERNS_READY the stage has
    unshared the user namespace and nothing more; it becomes the namespace's root only after
    USERNS_MAPPED; then stage 1 forks and reports the pid."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # a root parent: no dumpable round trip
    raw = _spec(stage, user=True)
    stage.pid = 4242  # follow stage 1
    seen = {}

    def parent():
        seen["ready"] = stage._recv(stage.parent, sync.USERNS_READY)[0]["type"]
        seen["at_ready"] = list(stage.steps())
        stage.feed(sync.USERNS_MAPPED)
        seen["pid"] = stage._recv(stage.parent, sync.PID)[0]["pid"]

    start = stage.start_socket()
    stage.feed(sync.CONFIG, fds=[start], plan=_plan(raw, stage.tmp),
               state={"ociVersion": "1.2.0", "id": "ctr", "status": "creating", "bundle": str(stage.tmp)},
               options={"fd_index": {"start": 0}, "preserve_fds": 0})
    os.close(start)
    stage.feed(sync.CGROUP_JOINED)
    t = threading.Thread(target=parent)
    t.start()
    try:
        assert stage.run() == 0
    finally:
        t.join(10)
    assert seen["ready"] == sync.USERNS_READY and seen["pid"] == 4242
    assert seen["at_ready"][-2:] == ["unshare", "send:userns-ready"] and "setresuid" not in seen["at_ready"]
    after = stage.steps()[len(seen["at_ready"]):]
    assert after == ["recv:userns-mapped", "setresgid", "setresuid", "unshare", "fork", "send:pid"]


def test_namespaces_given_by_path_are_joined_user_first_mount_last_then_stage_1_sends_the_pid(stage):
    paths = {}
    for t in plan.NAMESPACES:
        paths[t] = stage.tmp / f"ns-{t}"
        paths[t].write_text("")
    raw = _spec(stage, namespaces=[])
    raw["linux"]["namespaces"] = [{"type": t, "path": str(paths[t])} for t in reversed(sorted(paths))]
    raw["linux"].pop("uidMappings", None)
    stage.pid = 4242  # follow stage 1 after the fork
    _create(stage, raw)
    assert stage.run() == 0
    assert [flag for _, flag in stage.fk.of("setns")] == [plan.NAMESPACES[t][0] for t in plan.JOIN_ORDER]
    assert stage.fk.of("setns")[0][1] == k.CLONE_NEWUSER and stage.fk.of("setns")[-1][1] == k.CLONE_NEWNS
    # everything joined: no unshare; joining a user namespace by path maps nothing, becomes no root here
    assert not stage.fk.of("unshare") and not stage.fk.of("setresuid")
    sent = stage.sent()
    assert [kind for kind, _ in sent] == [sync.PID] and sent[0][1]["pid"] == 4242
    assert stage.steps()[-1] == "send:pid"


def test_without_a_mount_namespace_the_filesystem_is_built_in_a_throw_away_one_then_left(stage):
    """config-linux: no mount namespace, the container inherits the runtime's.  The stage unshares one all
    the same (the rootfs is built and pivoted there), then goes back to the runtime's, chrooted into
    a clone of what it built, after the last mount and before READY."""
    _create(stage, _spec(stage, namespaces=["pid", "uts"]))
    assert stage.run() == 0
    assert stage.fk.of("unshare") == [(k.CLONE_NEWNS | k.CLONE_NEWPID | k.CLONE_NEWUTS,)]
    back = [n for n, _ in stage.between("recv:hooks-done", "send:ready")]
    i = back.index("chroot")
    assert back[i - 2:i + 1] == ["open_tree", "setns", "chroot"] and "mount" not in back[i:]
    runtime_ns = stage.fk.of("setns")[0]
    assert runtime_ns[1] == k.CLONE_NEWNS and stage.fk.of("chroot") == [(".",)]


def test_time_offsets_are_written_after_the_unshare_before_the_fork(stage):
    raw = _spec(stage, namespaces=["pid", "mount", "time"],
                linux={"timeOffsets": {"monotonic": {"secs": 5}, "boottime": {"secs": 1, "nanosecs": 2}}})
    _create(stage, raw)
    assert stage.run() == 0
    assert stage.between("recv:cgroup-joined", "fork") == [
        ("unshare", (k.CLONE_NEWPID | k.CLONE_NEWNS | k.CLONE_NEWTIME,)),
        ("procfs.write", ("self/timens_offsets", "1 5 0\n7 1 2"))]


def test_debug_records_use_runcs_words_for_the_steps(stage):
    _create(stage, _spec(stage), debug=True)
    assert stage.run() == 0
    texts = [m["msg"] for kind, m in stage.sent() if kind == sync.WARNING]
    assert texts[0] == "nsexec container setup: joining and creating the container's namespaces"
    assert "init: closing the pipe to signal completion (ready, waiting for start)" in texts


def _fail_create(stage, raw, call, err, when=None, **create_opts):
    stage.fk.fail(call, err, when)
    _create(stage, raw, **create_opts)
    return stage.run()


@pytest.mark.parametrize("call,err,when,text", [
    ("setns", errno.EPERM, None, "join network namespace {netns}: Operation not permitted"),
    ("unshare", errno.ENOSPC, None, "No space left on device"),
    ("mount", errno.ENODEV, lambda src, tgt, fs, *a: fs == "devpts", "mount devpts to /dev/pts: No such device"),
    ("move_mount", errno.EACCES, lambda fd, p, tfd, *a: p == "" and tfd > 0 and not os.path.samefile(
        f"/proc/self/fd/{fd}", f"/proc/self/fd/{tfd}"), "mount {data} to /data: Permission denied"),
    ("mknod", errno.EPERM, lambda name, *a: name == "fuse", "create device /dev/fuse: Operation not permitted"),
    ("setrlimit", errno.EPERM, None, "setrlimit RLIMIT_NOFILE soft=1024 hard=1024: Operation not permitted"),
])
def test_a_failure_before_ready_is_sent_as_error_naming_the_step(stage, call, err, when, text):
    netns = stage.tmp / "netns"
    netns.write_text("")
    raw = _spec(stage, namespaces=["pid", "ipc", "uts", "mount"])
    raw["linux"]["namespaces"].append({"type": "network", "path": str(netns)})
    assert _fail_create(stage, raw, call, err, when) == 1
    sent = stage.sent()
    assert sent[-1] == (sync.ERROR, {"type": sync.ERROR, "msg": text.format(netns=netns, data=stage.tmp / "data"),
                                     "hook": False})
    assert sync.READY not in [kind for kind, _ in sent]
    assert stage.last_call() == call  # nothing privileged after the failing call
    assert "execve" not in stage.steps()


def test_capabilities_the_runtime_does_not_hold_fail_create_in_runcs_words(stage):
    stage.fk.returns["capget"] = (0, 1 << 5, 0)  # CAP_KILL only
    _create(stage, _spec(stage))
    assert stage.run() == 1
    assert stage.sent()[-1][1]["msg"] == ("unable to apply caps: operation not permitted (process.capabilities: "
                                          "the runtime does not hold CAP_NET_BIND_SERVICE)")


@pytest.mark.parametrize("call,err,text", [
    ("set_mode_filter", errno.EINVAL, "Eseccomp: loading the filter: Invalid argument"),
    ("setresuid", errno.EPERM, "EOperation not permitted"),
    ("capset", errno.EPERM, "EOperation not permitted"),
])
def test_a_failure_after_start_goes_to_start_over_its_connection(stage, call, err, text):
    """After READY the sync socket is closed: `start` reads "0", then "E" and the error text (one line, as
    before READY: no Python "[Errno N]" prefix, which this path printed before)."""
    assert _fail_create(stage, _spec(stage), call, err) == 1
    assert [kind for kind, _ in stage.sent()] == [sync.HOOKS, sync.READY]
    assert stage.start_reply() == b"0" + text.encode()
    assert stage.last_call() == call and "execve" not in stage.steps()


def test_no_process_creates_everything_then_refuses_start(stage):
    raw = _spec(stage)
    del raw["process"]
    _create(stage, raw)
    assert stage.run() == 1
    assert [kind for kind, _ in stage.sent()] == [sync.HOOKS, sync.READY]
    assert stage.start_reply() == b"0Eprocess was not set in config.json: there is nothing to start"
    assert not ({"setresuid", "capset", "set_mode_filter", "execve"} & set(stage.steps()))


# --- the exec stage --------------------------------------------------------------------------------

def _exec(s: Stage, namespaces, *, process=None, seccomp=True, **options):
    """CONFIG as ocirun.exec sends it (one fd per namespace, in plan.PROC_JOIN_ORDER), CGROUP_JOINED,
    CGROUP_DONE."""
    raw = {"args": ["/bin/sh"], "cwd": "/", "env": ["PATH=/usr/bin:/bin", "HOME=/root"],
           "user": {"uid": 1000, "gid": 100}, "noNewPrivileges": True,
           "capabilities": {c: ["CAP_KILL"] for c in ("bounding", "effective", "permitted")}}
    raw.update(process or {})
    fds, index = [], {}
    for name in namespaces:
        index[name] = len(fds)
        fds.append(os.open(s.tmp if name == "root" else "/dev/null", os.O_RDONLY | os.O_CLOEXEC))
    opts = {"namespaces": [[n, index[n]] for n in namespaces], "fd_index": index, "preserve_fds": 0,
            "setgroups": True, "keep_groups": False, "debug": False}
    opts.update(options)
    s.mp.setenv(sync.ENV_INITMODE, "exec")
    from ocirun.config import Process

    s.feed(sync.CONFIG, fds=fds, process=plan.process_plan(Process.parse(raw)).to_wire(),
           seccomp=FILTER if seccomp else None,
           state={"ociVersion": "1.2.0", "id": "ctr", "status": "running", "pid": 77, "bundle": str(s.tmp)},
           options=opts)
    for fd in fds:
        os.close(fd)
    s.feed(sync.CGROUP_JOINED)
    s.feed(sync.CGROUP_DONE, pid=4242)


def test_exec_joins_user_first_mount_last_then_becomes_the_process(stage):
    _exec(stage, list(plan.PROC_JOIN_ORDER))
    assert stage.run() == 0  # the fake execve returned: the stage ends as after a real execve, exit 0
    steps = stage.steps()
    assert [s for s in steps if s.startswith(("recv", "send"))] == [
        "recv:config", "recv:cgroup-joined", "recv:cgroup-done", "send:ready"]
    assert stage.calls[:3] == [("reset_signals", ()), ("prctl", (k.PR_SET_DUMPABLE, 0)),
                               ("set_name", ("ocirun:[exec]",))]
    # [1] CGROUP_JOINED: setns in the parent's order, user first and mount last; the capability check
    one = stage.between("recv:cgroup-joined", "fork")
    assert [args[1] for n, args in one if n == "setns"] == [plan.PROC_NS_FLAGS[n] for n in plan.PROC_JOIN_ORDER]
    assert one[0][1][1] == k.CLONE_NEWUSER and one[-2][1][1] == k.CLONE_NEWNS and one[-1][0] == "capget"
    # [3] CGROUP_DONE → [4] READY: the namespace's root, setsid, preflight as the user (effective ids
    # only, back to root), fds and signals, the bounding set, the user, capset, no_new_privs, seccomp
    three = _squeeze(s for s in steps[steps.index("recv:cgroup-done") + 1:])
    assert three == ["setresgid", "setresuid", "setsid", "setgroups", "setegid", "seteuid", "setegid",
                     "close_range", "reset_signals", "prctl:capbset_drop", "prctl:keepcaps", "setgroups",
                     "setresgid", "setresuid", "prctl:keepcaps", "umask", "capset", "prctl:ambient",
                     "prctl:no_new_privs", "set_mode_filter", "send:ready", "execve"]
    assert stage.fk.of("seteuid") == [(1000,), (0,)] and stage.fk.of("setresuid") == [(0, 0, 0), (1000, 1000, 1000)]
    assert [kind for kind, _ in stage.sent()] == [sync.READY]  # then EOF: the socket is close-on-exec
    assert stage.calls[-1] == ("execve", ("/bin/sh", ["/bin/sh"], {"PATH": "/usr/bin:/bin", "HOME": "/root"}))


def test_exec_without_a_mount_namespace_chroots_into_the_inits_root(stage):
    _exec(stage, ["ipc", "uts", "root"])
    stage.run()
    one = stage.between("recv:cgroup-joined", "fork")
    assert [n for n, _ in one] == ["setns", "setns", "chroot", "capget"]
    assert one[2] == ("chroot", (".",))
    # no user namespace joined: no switch to its root before setsid
    assert stage.steps()[stage.steps().index("recv:cgroup-done") + 1] == "setsid"


def test_exec_stage_sends_the_pid_of_the_process_and_exits(stage):
    stage.pid = 4343
    _exec(stage, ["user", "mnt"])
    assert stage.run() == 0
    assert stage.sent() == [(sync.PID, {"type": sync.PID, "pid": 4343})]
    assert stage.steps()[-1] == "send:pid" and "setsid" not in stage.steps()


def test_exec_without_no_new_privileges_loads_seccomp_before_the_user_switch(stage):
    _exec(stage, ["mnt"], process={"noNewPrivileges": False})
    stage.run()
    steps = _squeeze(stage.steps())
    assert steps.index("set_mode_filter") < steps.index("prctl:capbset_drop") < steps.index("setresuid")


@pytest.mark.parametrize("call,err,when,text", [
    ("setns", errno.EPERM, lambda fd, flag: flag == k.CLONE_NEWNET,
     "join the container's net namespace: Operation not permitted"),
    ("chroot", errno.EACCES, None, "join the container's root namespace: Permission denied"),
    ("setsid", errno.EPERM, None, "Operation not permitted"),
    ("set_mode_filter", errno.EACCES, None,
     "seccomp: loading the filter: Permission denied (needs no_new_privs or CAP_SYS_ADMIN)"),
])
def test_an_exec_failure_is_sent_as_error_naming_the_step(stage, call, err, when, text):
    stage.fk.fail(call, err, when)
    _exec(stage, ["user", "net", "root"] if call == "chroot" else ["user", "net", "mnt"])
    assert stage.run() == 1
    assert stage.sent()[-1] == (sync.ERROR, {"type": sync.ERROR, "msg": text, "hook": False})
    assert stage.last_call() == call and "execve" not in stage.steps()


def test_an_exec_whose_program_cannot_run_is_worded_as_runc_words_it(stage, monkeypatch):
    def execve(path, args, env):
        stage.fk.calls.append(("execve", (path, args, env)))
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))

    monkeypatch.setattr(os, "execve", execve)
    _exec(stage, ["mnt"])
    assert stage.run() == 1
    assert stage.sent() == [(sync.READY, {"type": sync.READY}),
                            (sync.ERROR, {"type": sync.ERROR, "msg": 'exec: "/bin/sh": no such file or directory',
                                          "hook": False})]


def test_an_exec_program_missing_before_any_switch_fails_preflight(stage):
    _exec(stage, ["mnt"], process={"args": ["no-such-program"]})
    assert stage.run() == 1
    assert stage.sent()[-1][1]["msg"] == 'exec: "no-such-program": executable file not found in $PATH'
    # found missing as the user (effective ids), and the ids went back before the report
    steps = stage.steps()
    assert steps[-3:] == ["seteuid", "setegid", "send:error"] and "setresuid" not in steps
