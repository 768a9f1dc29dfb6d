"""Real filters in a forked child: load, then see what the kernel does to its system calls (root)."""
from __future__ import annotations

import ctypes
import errno
import json
import os
from pathlib import Path
import platform
import resource
import signal
import socket
import threading
import time

import pytest

from ocirun import SPEC_VERSION
from ocirun.errors import SeccompError
from ocirun.kernel import seccomp as k
from ocirun.seccomp import compile_filter, features, load
from ocirun.seccomp.notify import receive_state, send_listener

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]
pytest.importorskip("pyseccomp")

#: Docker's default profile, from the shared folder beside the repository (skipped when absent)
DOCKER = str(Path(__file__).resolve().parents[3] / "shared" / "client-configs" / "docker-run-config.json")
NR = {"x86_64": {"getppid": 110, "mkdir": 83, "clone3": 435, "umask": 95, "getpriority": 140, "acct": 163,
                 "mseal": 462},
      "aarch64": {"getppid": 173, "mkdir": 34, "clone3": 435, "umask": 166, "getpriority": 141, "acct": 89,
                  "mseal": 462},
      }.get(platform.machine())
if NR is None:
    pytest.skip("no syscall numbers for this architecture", allow_module_level=True)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def raw(name, *args):
    """The raw system call (glibc's umask/getppid wrappers hide errors: they "cannot fail")."""
    return raw_nr(NR[name], *args)


def raw_nr(nr, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    if ret == -1:
        return f"E{ctypes.get_errno()}"
    return ret


def in_child(body, *, nnp=True, timeout=10.0, before=None):
    """Fork; the child (optionally) sets no_new_privs and runs ``body()``, whose JSON result comes back.

    Returns (result or None, wait status).
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery from here on
        code = 0
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS would dump core
            if before:
                before()
            if nnp:
                k.set_no_new_privs()
            out = {"ok": body()}
        except BaseException as e:  # noqa: BLE001 - report anything to the parent
            out = {"exc": f"{type(e).__name__}: {e}"}
            code = 1
        os.write(w, json.dumps(out).encode())
        os._exit(code)
    os.close(w)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            pytest.fail("child timed out")
        time.sleep(0.005)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    res = json.loads(data) if data else None
    if res and "exc" in res:
        pytest.fail(f"child failed: {res['exc']}")
    return (res["ok"] if res else None), status


def try_call(fn, *args):
    """fn's result, or "E<errno>" when it raises OSError."""
    try:
        return fn(*args)
    except OSError as e:
        return f"E{e.errno}"


def allow_with(rules, **extra):
    return dict({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}, **extra)


def test_errno_ret_on_mkdir(tmp_path):
    filt = compile_filter(allow_with([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                       "errnoRet": 42}]))
    target = str(tmp_path / "d")

    def body():
        assert load(filt) is None
        return [k.get_mode(), try_call(os.mkdir, target), raw("umask", 0o22) >= 0]

    res, status = in_child(body)
    assert res == [2, "E42", True] and os.WEXITSTATUS(status) == 0
    assert not os.path.exists(target)


def test_masked_eq_on_open_flags(tmp_path):
    existing = tmp_path / "f"
    existing.write_text("x")
    # open(path, flags) has the flags in arg 1, openat(dirfd, path, flags) in arg 2: two rules
    def rule(name, index):
        return {"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
                "args": [{"index": index, "value": os.O_CREAT, "valueTwo": os.O_CREAT,
                          "op": "SCMP_CMP_MASKED_EQ"}]}
    filt = compile_filter(allow_with([rule("open", 1), rule("openat", 2)]))

    def body():
        load(filt)
        fd = os.open(str(existing), os.O_RDONLY)
        os.close(fd)
        return [try_call(os.open, str(tmp_path / "new"), os.O_WRONLY | os.O_CREAT, 0o600),
                try_call(os.open, str(existing), os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)]

    res, _ = in_child(body)
    assert res == [f"E{errno.EACCES}"] * 2
    assert not (tmp_path / "new").exists()


VALUES = [0o0, 0o21, 0o22, 0o23, 0o77, 0o777]


@pytest.mark.parametrize("op,value,value_two,pred", [
    ("SCMP_CMP_NE", 0o22, 0, lambda v: v != 0o22),
    ("SCMP_CMP_LT", 0o22, 0, lambda v: v < 0o22),
    ("SCMP_CMP_LE", 0o22, 0, lambda v: v <= 0o22),
    ("SCMP_CMP_EQ", 0o22, 0, lambda v: v == 0o22),
    ("SCMP_CMP_GE", 0o22, 0, lambda v: v >= 0o22),
    ("SCMP_CMP_GT", 0o22, 0, lambda v: v > 0o22),
    ("SCMP_CMP_MASKED_EQ", 0o7, 0o3, lambda v: v & 0o7 == 0o3),
])
def test_operators_on_umask(op, value, value_two, pred):
    filt = compile_filter(allow_with([{"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
                                       "args": [{"index": 0, "value": value, "valueTwo": value_two,
                                                 "op": op}]}]))

    def body():
        load(filt)
        return [raw("umask", v) == "E99" for v in VALUES]

    res, _ = in_child(body)
    assert res == [pred(v) for v in VALUES]


def test_same_index_is_or_distinct_indexes_are_and():
    filt = compile_filter(allow_with([
        {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 98, "args": [
            {"index": 0, "value": 0o21, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 0o77, "op": "SCMP_CMP_EQ"}]},
        {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97, "args": [
            {"index": 0, "value": os.PRIO_PROCESS, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]))

    def body():
        load(filt)
        return ([raw("umask", v) == "E98" for v in VALUES],
                [raw("getpriority", os.PRIO_PROCESS, 0), raw("getpriority", os.PRIO_PROCESS, os.getpid()),
                 raw("getpriority", os.PRIO_PGRP, 0)])

    (umask, prio), _ = in_child(body)
    assert umask == [v in (0o21, 0o77) for v in VALUES]
    assert prio[0] == "E97" and isinstance(prio[1], int) and isinstance(prio[2], int)


@pytest.mark.parametrize("action,expect", [
    ("SCMP_ACT_KILL", "SIGSYS"), ("SCMP_ACT_KILL_THREAD", "SIGSYS"), ("SCMP_ACT_KILL_PROCESS", "SIGSYS"),
    ("SCMP_ACT_TRAP", "SIGSYS"), ("SCMP_ACT_ERRNO", f"E{errno.EPERM}"), ("SCMP_ACT_TRACE", f"E{errno.ENOSYS}"),
    ("SCMP_ACT_LOG", "ran"), ("SCMP_ACT_ALLOW", "ran"),
])
def test_every_action(action, expect):
    default = "SCMP_ACT_LOG" if action == "SCMP_ACT_ALLOW" else "SCMP_ACT_ALLOW"
    filt = compile_filter({"defaultAction": default, "syscalls": [{"names": ["getppid"], "action": action}]})

    def body():
        load(filt)
        r = raw("getppid")
        return "ran" if isinstance(r, int) else r   # TRACE without a tracer: ENOSYS

    res, status = in_child(body)
    if expect == "SIGSYS":
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS and res is None
    else:
        assert res == expect


@pytest.mark.parametrize("flags", [["SECCOMP_FILTER_FLAG_LOG"], ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                                   ["SECCOMP_FILTER_FLAG_TSYNC"]])
def test_flags_load(flags, tmp_path):
    filt = compile_filter(allow_with([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}],
                                     flags=flags))

    def body():
        load(filt)
        return try_call(os.mkdir, str(tmp_path / "x"))

    assert in_child(body)[0] == "E5"


def test_docker_profile_loads_and_true_runs():
    if not os.path.exists(DOCKER):
        pytest.skip("no Docker client config")
    with open(DOCKER) as f:
        filt = compile_filter(json.load(f)["linux"]["seccomp"])
    r, w = os.pipe()

    def body():
        load(filt)
        libc.personality.restype = ctypes.c_int
        ok = libc.personality(ctypes.c_ulong(0xFFFFFFFF))        # query: allowed by an arg rule
        denied = libc.personality(ctypes.c_ulong(4))              # not in the allowed list
        denied_errno = ctypes.get_errno()
        ctypes.set_errno(0)
        clone3 = libc.syscall(ctypes.c_long(NR["clone3"]), None, ctypes.c_size_t(0))  # errnoRet 38
        clone3_errno = ctypes.get_errno()
        # older than the profile's newest syscall and not allowed: the default action (EPERM);
        # newer than anything the profile names (mseal, or no syscall at all): ENOSYS (the stub)
        newer = [raw("acct", 0), raw("mseal", 0, 0, 0), raw_nr(1000)]
        os.write(w, json.dumps([ok >= 0, denied, denied_errno, clone3, clone3_errno, newer]).encode())
        os.execv("/bin/true", ["true"])

    _, status = in_child(body)
    os.close(w)
    probe = json.loads(os.read(r, 4096))
    os.close(r)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert probe == [True, -1, errno.EPERM, -1, errno.ENOSYS,
                     [f"E{errno.EPERM}", f"E{errno.ENOSYS}", f"E{errno.ENOSYS}"]]


def test_load_needs_no_new_privs_or_cap_sys_admin():
    filt = compile_filter(allow_with([{"names": ["mkdir"], "action": "SCMP_ACT_LOG"}]))

    def body():
        os.setgid(65534)
        os.setuid(65534)   # drops every capability
        try:
            load(filt)
        except SeccompError as e:
            return str(e)
        return "loaded"

    res, _ = in_child(body, nnp=False)
    assert res == "seccomp: loading the filter: Permission denied (needs no_new_privs or CAP_SYS_ADMIN)"

    def body_admin():
        load(filt)   # root with CAP_SYS_ADMIN, no no_new_privs
        return [k.get_no_new_privs(), k.get_mode()]

    assert in_child(body_admin, nnp=False)[0] == [False, 2]


def test_kernel_probes():
    for action in (k.SECCOMP_RET_KILL_PROCESS, k.SECCOMP_RET_LOG, k.SECCOMP_RET_USER_NOTIF, k.SECCOMP_RET_ALLOW):
        assert k.get_action_avail(action)
    assert not k.get_action_avail(0x12340000)
    assert k.get_notif_sizes()[0] == ctypes.sizeof(k._SeccompNotif)
    assert not k.flags_supported(1 << 20)
    assert set(features()["supportedFlags"]) <= set(features()["knownFlags"])


# --- user notification ----------------------------------------------------------------------
class Agent(threading.Thread):
    """A seccomp agent: one container process state, then answers notifications."""

    def __init__(self, path, answers):
        super().__init__(daemon=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.answers = answers   # nr -> (val, error, flags)
        self.state = None
        self.seen = []
        self.error = None

    def run(self):
        try:
            conn, _ = self.srv.accept()
            with conn:
                self.state, fds = receive_state(conn)
            listener = fds["seccompFd"]
            for _ in range(len(self.answers)):
                n = k.notif_recv(listener)
                assert k.notif_id_valid(listener, n.id)
                self.seen.append((n.nr, n.pid))
                val, err, flags = self.answers[n.nr]
                k.notif_send(listener, n.id, val, err, flags)
            os.close(listener)
        except BaseException as e:  # noqa: BLE001
            self.error = e


@pytest.mark.parametrize("flags", [[], ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"]])
def test_notify_agent_answers(tmp_path, flags):
    sock_path = str(tmp_path / "agent.sock")
    created = tmp_path / "continued"
    filt = compile_filter(allow_with([{"names": ["getppid", "mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
                                     listenerPath=sock_path, listenerMetadata="hello agent", flags=flags))
    assert filt.needs_listener and filt.flags & k.SECCOMP_FILTER_FLAG_NEW_LISTENER
    agent = Agent(sock_path, {NR["getppid"]: (4242, 0, 0),
                              NR["mkdir"]: (0, 0, k.SECCOMP_USER_NOTIF_FLAG_CONTINUE)})
    agent.start()
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def body():
        parent_end.close()
        fd = load(filt)
        socket.send_fds(child_end, [b"listener"], [fd])   # as the init stage does over the sync socket
        os.close(fd)
        child_end.recv(1)                                  # the runtime has handed it to the agent
        return [raw("getppid"), try_call(os.mkdir, str(created))]

    # the "runtime": receive the listener from the child and pass it on to the agent
    def runtime():
        _, fds, _, _ = socket.recv_fds(parent_end, 64, 1)
        send_listener(sock_path, fds[0], {"ociVersion": SPEC_VERSION, "id": "c1", "status": "creating",
                                          "pid": 1, "bundle": str(tmp_path)}, "hello agent")
        os.close(fds[0])
        parent_end.send(b"go")

    rt = threading.Thread(target=runtime, daemon=True)
    rt.start()
    res, status = in_child(body)
    rt.join(5)
    agent.join(5)
    child_end.close()
    parent_end.close()
    assert agent.error is None, agent.error
    assert res == [4242, None] and os.WEXITSTATUS(status) == 0
    assert created.is_dir()                                 # CONTINUE let the real mkdir run
    assert [nr for nr, _ in agent.seen] == [NR["getppid"], NR["mkdir"]]
    assert agent.state["fds"] == ["seccompFd"] and agent.state["metadata"] == "hello agent"
    assert agent.state["state"]["id"] == "c1" and agent.state["ociVersion"] == SPEC_VERSION
