"""Everyday Docker workflows with ocirun as the OCI runtime (and runc, parametrized, as reference).

Each test runs twice: ``dk`` is Docker's client with ``--runtime ocirun`` (``/usr/local/bin/ocirun``)
or ``--runtime refrunc`` (``/usr/sbin/runc``) on ``run``/``create``.  Docker 20.10 drives the runtime
through containerd's runc shim (``BinaryName``), so these are the shim's calls: create [--console-socket],
start, exec --process, kill, pause/resume, update --resources -, ps, delete [--force].
See docker_env.py for the private dockerd + containerd.
"""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import tempfile
import time

import pytest

from .conftest import wait_for
from .docker_env import DOCKER, DOCKER_RUNTIMES, IMAGE, Dockerd, ensure_docker

LOOP = "trap 'exit 3' TERM; while :; do sleep 0.1; done"
MEMORY_LIMIT = "/sys/fs/cgroup/memory/memory.limit_in_bytes"


@pytest.fixture(scope="session")
def dockerd():
    if os.geteuid() != 0:
        pytest.skip("engine tests need root")
    ensure_docker()
    base = tempfile.mkdtemp(prefix="ocirun-docker-", dir="/var/tmp")
    daemon = Dockerd(base)
    try:
        daemon.start()
        daemon.load_image()
        yield daemon
    finally:
        problems = daemon.cleanup()
        if problems:
            print("\ndocker cleanup:", *problems, sep="\n  ")


class Docker:
    """The Docker client, with ``--runtime NAME`` on every ``run``/``create``."""

    def __init__(self, daemon: Dockerd, name: str, runtime: str, binary: str):
        self.daemon = daemon
        self.name = name          # ocirun | runc (the test id)
        self.runtime = runtime    # dockerd's runtime name: ocirun | refrunc
        self.binary = binary

    def __call__(self, *args, timeout=60, input=None):
        return self.daemon.call(list(args), timeout=timeout, input=input)

    def run(self, *args, timeout=60, input=None):
        return self("run", "--runtime", self.runtime, "--network", "none", *args,
                    timeout=timeout, input=input)

    def ok(self, *args, timeout=60, input=None):
        proc = self(*args, timeout=timeout, input=input)
        assert proc.returncode == 0, self.explain(args, proc)
        return proc

    def run_ok(self, *args, timeout=60):
        proc = self.run(*args, timeout=timeout)
        assert proc.returncode == 0, self.explain(("run", *args), proc)
        return proc

    def explain(self, args, proc) -> str:
        return (f"[{self.name}] docker {' '.join(args)} -> rc {proc.returncode}\n"
                f"stdout: {proc.stdout.strip()[-1500:]}\nstderr: {proc.stderr.strip()[-1500:]}")

    def inspect(self, name: str, fmt: str) -> str:
        return self.ok("inspect", "--format", fmt, name).stdout.strip()

    def start_detached(self, name, *opts, script=LOOP) -> str:
        """``run -d`` a container running ``script``; wait until running; return its full id."""
        cid = self.run_ok("-d", "--name", name, *opts, IMAGE, "sh", "-c", script).stdout.strip()
        assert wait_for(lambda: self.inspect(name, "{{.State.Running}}") == "true"), \
            self.inspect(name, "{{json .State}}")
        return cid

    def state_dir(self, cid: str) -> str:
        """The runtime's state directory: dockerd passes ``--root <exec-root>/runtime-runc/moby``."""
        return os.path.join(self.daemon.exec_root, "runtime-runc", "moby", cid)

    def runtime_states(self) -> list[str]:
        """Container state dirs the runtime still has (none once every container is gone)."""
        moby = os.path.dirname(self.state_dir("x"))
        return os.listdir(moby) if os.path.isdir(moby) else []

    def cgroup(self, controller: str, cid: str) -> str:
        return f"/sys/fs/cgroup/{controller}{self.daemon.cgroup_parent}/{cid}"

    def pty_run(self, *args, script: list[str], timeout=30):
        """``docker ARGS`` on a pty; write ``script`` lines, each after a prompt; return (rc or None
        on timeout, output with \\r removed).  A script line must not itself contain "# "."""
        master, slave = pty.openpty()
        proc = subprocess.Popen([DOCKER, *args], stdin=slave, stdout=slave, stderr=slave,
                                env=self.daemon.env, cwd=self.daemon.base, start_new_session=True)
        os.close(slave)
        out = b""
        end = time.monotonic() + timeout
        pending = [line.encode() + b"\n" for line in script]
        mark = 0
        try:
            while time.monotonic() < end:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:       # EIO: the client exited and closed the pty
                        break
                    if not chunk:
                        break
                    out += chunk
                # Feed the next line once the shell has printed a new prompt ("/ # ", then busybox's
                # cursor-position query) since the last line was sent.
                if pending and b"# " in out[mark:]:
                    os.write(master, pending.pop(0))
                    mark = len(out)
            try:
                rc = proc.wait(timeout=max(1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                rc = None         # the caller's assert shows the output
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        return rc, out.replace(b"\r", b"").decode(errors="replace")


@pytest.fixture(params=sorted(DOCKER_RUNTIMES, reverse=True))
def dk(request, dockerd):
    name = request.param
    runtime, binary = DOCKER_RUNTIMES[name]
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{name} not installed at {binary}")
    yield Docker(dockerd, name, runtime, binary)
    dockerd.remove_containers()      # every test starts from an empty container list


# --------------------------------------------------------------------------- run

def test_run_rm_output_exit_code(dk):
    assert dk.run_ok("--rm", IMAGE, "echo", "hello from docker").stdout == "hello from docker\n"
    proc = dk.run("--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert proc.returncode == 7, dk.explain(("run",), proc)
    assert (proc.stdout, proc.stderr) == ("out\n", "err\n")
    # --rm: container gone, and the runtime removed its state dir and the container's cgroups.
    assert dk.ok("ps", "-aq").stdout.strip() == ""
    assert wait_for(lambda: not dk.runtime_states(), 5), dk.runtime_states()
    parent = dk.cgroup("memory", "")
    assert wait_for(lambda: not os.path.isdir(parent) or not next(os.walk(parent))[1], 5), \
        next(os.walk(parent))[1]


def test_run_stdin_default_cmd(dk):
    # The image's CMD (/bin/sh) reads the script from stdin (-i).
    proc = dk.run("--rm", "-i", IMAGE, input="echo from-stdin; exit 4\n")
    assert proc.returncode == 4, dk.explain(("run", "-i"), proc)
    assert proc.stdout == "from-stdin\n"


def test_run_missing_command_127(dk):
    proc = dk.run("--rm", IMAGE, "/nonexistent")
    assert proc.returncode == 127, dk.explain(("run", "/nonexistent"), proc)


def test_run_uses_the_runtime(dk):
    cid = dk.start_detached("rt")
    assert dk.inspect("rt", "{{.HostConfig.Runtime}}") == dk.runtime
    with open(os.path.join(dk.state_dir(cid), "state.json")) as f:
        state = json.load(f)
    # Each runtime's own state format: ocirun records the init's start time, runc its init pid.
    assert ("pid_start" if dk.name == "ocirun" else "init_process_pid") in state, sorted(state)
    pid = int(dk.inspect("rt", "{{.State.Pid}}"))
    with open(f"/proc/{pid}/cgroup") as f:
        assert f"{dk.daemon.cgroup_parent}/{cid}" in f.read()


# --------------------------------------------------------------------------- run -d, exec, stop

def test_detached_exec_stop(dk):
    cid = dk.start_detached("ex")
    assert dk.ok("exec", "ex", "echo", "hi").stdout == "hi\n"
    assert dk.ok("exec", "-u", "1000", "ex", "id", "-u").stdout.strip() == "1000"
    assert dk.ok("exec", "-u", "1000:1000", "ex", "id", "-g").stdout.strip() == "1000"
    assert dk.ok("exec", "-w", "/tmp", "ex", "pwd").stdout.strip() == "/tmp"
    assert dk.ok("exec", "-e", "A=b", "ex", "sh", "-c", "echo $A").stdout.strip() == "b"
    proc = dk("exec", "ex", "sh", "-c", "exit 5")
    assert proc.returncode == 5, dk.explain(("exec", "exit 5"), proc)
    proc = dk("exec", "ex", "false")
    assert proc.returncode == 1, dk.explain(("exec", "false"), proc)
    # docker exec (unlike run) reports a runtime exec failure as 126; the message is the runtime's.
    proc = dk("exec", "ex", "/nonexistent")
    assert proc.returncode == 126, dk.explain(("exec", "/nonexistent"), proc)
    assert "no such file or directory" in proc.stdout + proc.stderr, dk.explain(("exec",), proc)
    proc = dk("exec", "-i", "ex", "cat", input="through stdin\n")
    assert proc.stdout == "through stdin\n", dk.explain(("exec", "-i"), proc)
    dk.ok("stop", "-t", "10", "ex")                  # TERM: the trap exits 3
    assert dk.inspect("ex", "{{.State.Status}} {{.State.ExitCode}}") == "exited 3"
    assert not os.path.exists(dk.state_dir(cid))     # the shim deleted it from the runtime


def test_stop_escalates_to_kill_137(dk):
    # pid 1 without a TERM handler ignores TERM: docker kills it after the timeout.
    dk.start_detached("sk", script="sleep 1000")
    start = time.monotonic()
    dk.ok("stop", "-t", "1", "sk")
    assert time.monotonic() - start < 15
    assert dk.inspect("sk", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"


def test_exec_in_stopped_container_fails(dk):
    dk.run_ok("--name", "st", IMAGE, "true")
    proc = dk("exec", "st", "true")
    assert proc.returncode != 0 and "is not running" in proc.stderr, dk.explain(("exec",), proc)


def test_init_stop_143(dk):
    # --init: docker-init is pid 1 and forwards TERM, so `sleep` dies of it: 128 + 15.
    dk.start_detached("in", "--init", script="sleep 1000")
    dk.ok("stop", "-t", "10", "in")
    assert dk.inspect("in", "{{.State.Status}} {{.State.ExitCode}}") == "exited 143"


def test_exec_detached_and_paused(dk):
    dk.start_detached("xd")
    dk.ok("exec", "-d", "xd", "sh", "-c", "echo done > /tmp/x")
    assert wait_for(lambda: dk("exec", "xd", "cat", "/tmp/x").stdout == "done\n", 10)
    dk.ok("pause", "xd")
    proc = dk("exec", "xd", "true")
    assert proc.returncode != 0 and "paused" in proc.stderr, dk.explain(("exec",), proc)
    dk.ok("stop", "-t", "10", "xd")      # a paused container is thawed, then TERM: the trap exits 3
    assert dk.inspect("xd", "{{.State.Status}} {{.State.ExitCode}}") == "exited 3"


def test_join_namespaces_of_another_container(dk):
    dk.start_detached("ns", "--ipc", "shareable")
    pid = dk.inspect("ns", "{{.State.Pid}}")
    script = "grep -c exit /proc/1/cmdline; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc"
    proc = dk("run", "--rm", "--runtime", dk.runtime, "--pid", "container:ns", "--network", "container:ns",
              "--ipc", "container:ns", IMAGE, "sh", "-c", script)
    assert proc.returncode == 0, dk.explain(("run", "--pid container:"), proc)
    lines = proc.stdout.split()
    assert lines[0] == "1"                  # pid 1 is the other container's `sh -c LOOP`
    assert lines[1:] == [os.readlink(f"/proc/{pid}/ns/net"), os.readlink(f"/proc/{pid}/ns/ipc")]


# --------------------------------------------------------------------------- terminals

def test_run_it_pty(dk):
    rc, out = dk.pty_run("run", "-it", "--rm", "--runtime", dk.runtime, "--network", "none", IMAGE, "sh",
                         script=["tty; test -t 0 && test -t 1 && echo both-tty",
                                 "echo answer-$((6 * 7))", "exit 6"])
    assert rc == 6, out
    assert "/dev/pts/0" in out and "both-tty" in out and "answer-42" in out, out


def test_exec_it_pty(dk):
    dk.start_detached("xt")
    rc, out = dk.pty_run("exec", "-it", "xt", "sh", script=["tty; stty size", "exit 3"])
    assert rc == 3, out
    assert "/dev/pts/" in out, out


def test_run_t_without_stdin(dk):
    proc = dk.run("--rm", "-t", IMAGE, "sh", "-c", "test -t 1 && echo out-tty")
    assert proc.returncode == 0, dk.explain(("run", "-t"), proc)
    assert "out-tty" in proc.stdout


# --------------------------------------------------------------------------- resources

def test_memory_limit_and_update(dk):
    cid = dk.start_detached("mem", "--memory", "64m", "--pids-limit", "50")
    assert dk.ok("exec", "mem", "cat", MEMORY_LIMIT).stdout.strip() == str(64 << 20)
    with open(os.path.join(dk.cgroup("memory", cid), "memory.limit_in_bytes")) as f:
        assert f.read().strip() == str(64 << 20)
    with open(os.path.join(dk.cgroup("pids", cid), "pids.max")) as f:
        assert f.read().strip() == "50"
    # docker update -> runtime `update --resources -` (LinuxResources JSON on stdin).
    dk.ok("update", "--memory", "128m", "--memory-swap", "256m", "mem")
    assert dk.ok("exec", "mem", "cat", MEMORY_LIMIT).stdout.strip() == str(128 << 20)


def test_oom_kill_137(dk):
    proc = dk.run("--name", "oom", "--memory", "16m", "--memory-swap", "16m", IMAGE,
                  "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
    assert proc.returncode == 137, dk.explain(("run", "--memory 16m"), proc)
    # The shim watches the container's cgroup for OOM events (the cgroup must be the one it was
    # told); dockerd handles that event and the exit independently, so allow it to arrive late.
    assert wait_for(lambda: dk.inspect("oom", "{{.State.OOMKilled}}") == "true", 5)


def test_default_device_rules(dk):
    # runc's defaults, which images rely on: mknod of any node (opening needs its own rule),
    # and /dev/net/tun usable once made (VPN images mknod it with NET_ADMIN).
    script = ("mknod /tmp/sda b 8 0 && echo blk; mknod /tmp/x c 4 1 && echo chr; (exec 3</tmp/x) 2>&1; "
              "mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && exec 3<>/dev/net/tun && echo tun")
    proc = dk.run_ok("--rm", "--cap-add", "NET_ADMIN", IMAGE, "sh", "-c", script)
    assert proc.stdout.split("\n")[:2] == ["blk", "chr"], proc.stdout
    assert "Operation not permitted" in proc.stdout and proc.stdout.endswith("tun\n"), proc.stdout


def test_seccomp_default_and_custom_profile(dk):
    assert dk.run_ok("--rm", IMAGE, "grep", "Seccomp:", "/proc/self/status").stdout.split() == ["Seccomp:", "2"]
    profile = os.path.join(dk.daemon.base, "no-mkdir.json")
    with open(profile, "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}, f)
    proc = dk.run("--rm", "--security-opt", f"seccomp={profile}", IMAGE, "mkdir", "/x")
    assert proc.returncode == 1 and "Operation not permitted" in proc.stderr, dk.explain(("run",), proc)


def _caller_lacks_caps() -> bool:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        full = (1 << (int(f.read()) + 1)) - 1
    with open("/proc/self/status") as f:
        held = next(int(line.split()[1], 16) for line in f if line.startswith("CapPrm:"))
    return held & full != full


def test_privileged(dk):
    script = "grep Seccomp: /proc/self/status; mount -t tmpfs none /mnt && echo mounted; test -c /dev/ptmx && echo ptmx"
    proc = dk.run("--rm", "--privileged", IMAGE, "sh", "-c", script)
    if _caller_lacks_caps():
        # --privileged asks for every capability; a caller without some (root here lacks
        # CAP_SYS_RESOURCE) cannot grant them: refused by `create` as runc does, nothing left behind.
        assert proc.returncode == 125, dk.explain(("run", "--privileged"), proc)
        assert "OCI runtime create failed" in proc.stderr and "unable to apply caps" in proc.stderr, proc.stderr
        assert proc.stdout == "" and dk.ok("ps", "-aq").stdout == ""
        assert wait_for(lambda: not dk.runtime_states(), 5), dk.runtime_states()
    else:
        assert proc.returncode == 0, dk.explain(("run", "--privileged"), proc)
        assert proc.stdout.split() == ["Seccomp:", "0", "mounted", "ptmx"], proc.stdout


# --------------------------------------------------------------------------- storage

def test_named_volume(dk):
    vol = f"vol-{dk.name}"
    dk.ok("volume", "create", vol)
    try:
        dk.run_ok("--rm", "-v", f"{vol}:/data", IMAGE, "sh", "-c", "echo kept > /data/f")
        assert dk.run_ok("--rm", "-v", f"{vol}:/data", IMAGE, "cat", "/data/f").stdout == "kept\n"
        proc = dk.run("--rm", "-v", f"{vol}:/data:ro", IMAGE, "sh", "-c", "echo x > /data/g")
        assert proc.returncode != 0 and "Read-only file system" in proc.stderr, dk.explain(("run",), proc)
    finally:
        dk("volume", "rm", "-f", vol)


def test_bind_mount_and_read_only_rootfs(dk):
    host = tempfile.mkdtemp(dir=dk.daemon.base)
    proc = dk.run("--rm", "--read-only", "-v", f"{host}:/out", IMAGE, "sh", "-c",
                  "echo bound > /out/f; touch /x")
    assert proc.returncode != 0 and "Read-only file system" in proc.stderr, dk.explain(("run",), proc)
    with open(os.path.join(host, "f")) as f:
        assert f.read() == "bound\n"


# --------------------------------------------------------------------------- signals, lifecycle

def test_kill_signal_trap_42(dk):
    dk.start_detached("k1", script="trap 'exit 42' USR1; while :; do sleep 0.1; done")
    dk.ok("kill", "--signal", "USR1", "k1")
    assert dk.ok("wait", "k1", timeout=30).stdout.strip() == "42"


def test_kill_default_137(dk):
    dk.start_detached("k9", script="sleep 1000")
    dk.ok("kill", "k9")
    assert dk.ok("wait", "k9", timeout=30).stdout.strip() == "137"


def test_pause_unpause_top(dk):
    dk.start_detached("pz")
    dk.ok("pause", "pz")
    assert dk.inspect("pz", "{{.State.Status}}") == "paused"
    with open(os.path.join(dk.cgroup("freezer", dk.inspect("pz", "{{.Id}}")), "freezer.state")) as f:
        assert f.read().strip() == "FROZEN"
    dk.ok("unpause", "pz")
    assert dk.inspect("pz", "{{.State.Status}}") == "running"
    top = dk.ok("top", "pz").stdout            # runtime `ps --format json`
    assert "sleep" in top or "sh -c" in top, top


def test_restart(dk):
    dk.start_detached("rs")
    dk.ok("exec", "rs", "touch", "/tmp/marker")
    pid1 = dk.inspect("rs", "{{.State.Pid}}")
    dk.ok("restart", "-t", "10", "rs")
    assert wait_for(lambda: dk.inspect("rs", "{{.State.Running}}") == "true")
    assert dk.inspect("rs", "{{.State.Pid}}") != pid1
    dk.ok("exec", "rs", "test", "-e", "/tmp/marker")     # same container filesystem


def test_restart_policy_on_failure(dk):
    dk.run_ok("-d", "--name", "rp", "--restart", "on-failure:2", IMAGE, "sh", "-c", "exit 9")
    assert wait_for(lambda: dk.inspect("rp", "{{.RestartCount}} {{.State.Running}}") == "2 false", 30), \
        dk.inspect("rp", "{{json .State}} {{.RestartCount}}")
    assert dk.inspect("rp", "{{.State.ExitCode}}") == "9"


def test_create_then_start_attach(dk):
    dk.ok("create", "--runtime", dk.runtime, "--network", "none", "--name", "cs", IMAGE,
          "sh", "-c", "echo started; exit 9")
    assert dk.inspect("cs", "{{.State.Status}}") == "created"
    proc = dk("start", "-a", "cs")
    assert proc.returncode == 9, dk.explain(("start", "-a"), proc)
    assert proc.stdout == "started\n"


def test_no_leftovers_after_rm(dk):
    cid = dk.start_detached("lv")
    dk.ok("rm", "-f", "lv")
    assert not os.path.exists(dk.state_dir(cid))
    for controller in ("memory", "pids", "freezer", "unified"):
        assert wait_for(lambda: not os.path.exists(dk.cgroup(controller, cid)), 5), controller
    with open("/proc/self/mountinfo") as f:
        assert cid not in f.read()
