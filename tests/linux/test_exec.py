"""`ocirun exec` against real containers: args, exit codes, process files, user/env/cwd, namespaces,
cgroup, capabilities, detach + pid file, stopped/paused refusal, no host fd leak."""
import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

from ocirun.cli import COMMANDS, parse_flags
from ocirun.state import StateDir

from .conftest import OCIRUN

pytestmark = pytest.mark.root

#: Container id: unique per test process, so that parallel runs (which share the default cgroup path
#: /ocirun/<id>) never meet.
C = f"exec{os.getpid()}"
NS = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")


@pytest.fixture
def box(oci):
    """A running container (C, `sleep 1000`); returns (oci, init pid)."""
    oci.write(oci.config(args=("sleep", "1000")))
    oci("run", "-d", "--bundle", oci.bundle, C, check=True)
    return oci, oci.state(C)["pid"]


def _status(text, key):
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(key)


def _wait_gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)


def _ocirun_processes(root):
    """Processes whose command line names this test's state root (a runtime left behind)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if root.encode() in cmd:
            out.append(int(name))
    return out


def test_repeatable_flags_are_collected():
    table = COMMANDS["exec"]
    flags, rest = parse_flags(["-e", "A=1", "--env=B=2", "-t", C, "sh", "-c", "echo -e x", "--", "-t"], table,
                              stop_at_positional=True)
    assert flags == {"env": ["A=1", "B=2"], "tty": True}
    assert rest == [C, "sh", "-c", "echo -e x", "--", "-t"]


def test_exec_args_and_output(box):
    oci, _ = box
    proc = oci("exec", C, "echo", "hello", "world")
    assert (proc.returncode, proc.stdout) == (0, "hello world\n"), proc.stderr


def test_exit_codes(box):
    oci, _ = box
    assert oci("exec", C, "true").returncode == 0
    assert oci("exec", C, "sh", "-c", "exit 7").returncode == 7
    assert oci("exec", C, "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM
    # a command the shell cannot find: the shell's own 127
    assert oci("exec", C, "sh", "-c", "nonexistent-cmd").returncode == 127


def test_missing_command_worded_as_runc(box):
    """runc 1.1.5 exits 255 when exec itself fails; the message is what podman/Docker map to 126/127."""
    oci, _ = box
    cases = {
        "nonexistent-cmd": 'exec: "nonexistent-cmd": executable file not found in $PATH',
        "/nonexistent": 'exec: "/nonexistent": stat /nonexistent: no such file or directory',
        "/etc/passwd": 'exec: "/etc/passwd": permission denied',
    }
    for cmd, text in cases.items():
        proc = oci("exec", C, cmd)
        assert proc.returncode == 255, (cmd, proc.stderr)
        assert f"exec failed: unable to start container process: {text}" in proc.stderr
    proc = oci("exec", "--cwd", "/nonexistent", C, "true")
    assert proc.returncode == 255
    assert "chdir to cwd (\"/nonexistent\") set in config.json failed: no such file or directory" in proc.stderr \
        or "chdir to cwd ('/nonexistent') set in config.json failed" in proc.stderr, proc.stderr
    assert "process args cannot be empty" in oci("exec", C).stderr
    assert "Cwd must be an absolute path" in oci("exec", "--cwd", "rel", C, "true").stderr
    assert "container nope does not exist" in oci("exec", "nope", "true").stderr


def test_process_file_podman_shape(box, tmp_path):
    oci, _ = box
    caps = ["CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD",
            "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
            "CAP_SYS_CHROOT"]
    process = {  # podman 4.3.1's `exec -u 1000 -e A=b` (CLIENTS.md), with a probe for args
        "user": {"uid": 1000, "gid": 1000},
        "args": ["sh", "-c", "id -u; id -g; echo $A $HOME; ulimit -n; ulimit -u; pwd"],
        "env": ["TERM=xterm", "container=podman", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "A=b", "HOME=/home/user"],
        "cwd": "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000},
                    {"type": "RLIMIT_NPROC", "hard": 32768, "soft": 32768}],
    }
    path = tmp_path / "exec-process-1"
    path.write_text(json.dumps(process))
    pidfile = tmp_path / "exec_pid"
    proc = oci("exec", "--pid-file", str(pidfile), "--process", str(path), C)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1000", "1000", "b /home/user", "20000", "32768", "/"]
    assert int(pidfile.read_text()) > 0


def test_process_file_is_validated(box, tmp_path):
    oci, _ = box
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"args": ["true"], "cwd": "/", "user": {"uid": "root", "gid": 0}}))
    proc = oci("exec", "-p", str(path), C)
    assert proc.returncode == 255 and "uid" in proc.stderr, proc.stderr
    path.write_text("{not json")
    assert "invalid JSON" in oci("exec", "-p", str(path), C).stderr


def test_user_groups_env_cwd(box):
    oci, _ = box
    proc = oci("exec", "-u", "1000:1001", "-g", "11", "-g", "12", "-e", "A=1", "-e", "B=two words", "--cwd", "/tmp",
               C, "sh", "-c", 'id -u; id -g; id -G; pwd; echo "$A|$B|$HOME"')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1000", "1001", "1001 11 12", "/tmp", "1|two words|/"]
    proc = oci("exec", C, "sh", "-c", "echo $HOME")  # runc sets HOME from the container's /etc/passwd
    assert proc.stdout == "/root\n"
    proc = oci("exec", "-u", "x", C, "true")
    assert proc.returncode == 255 and "parsing x as int for uid failed" in proc.stderr


def test_same_namespaces_as_init(box):
    oci, pid = box
    script = "; ".join(f"readlink /proc/self/ns/{n}" for n in NS)
    proc = oci("exec", C, "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [os.readlink(f"/proc/{pid}/ns/{n}") for n in NS]
    # the pid namespace really is the container's: the init is pid 1 there
    assert oci("exec", C, "cat", "/proc/1/cmdline").stdout == "sleep\x001000\x00"


def test_user_namespace_container(oci, tmp_path):
    """The exec'd process joins the container's user namespace first; rlimits are raised from the host
    side (inside a user namespace the process could not raise a hard limit itself)."""
    spec = oci.config(args=("sleep", "1000"))
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    oci.write(spec)
    oci("run", "-d", "--bundle", oci.bundle, C, check=True)
    init = oci.state(C)["pid"]
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # as high as we may (no CAP_SYS_RESOURCE here)
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"args": ["sh", "-c", "id -u; readlink /proc/self/ns/user; cat /proc/self/uid_map; "
                                                     "ulimit -Hn; ulimit -n"],
                                "cwd": "/", "user": {"uid": 1000, "gid": 1000},
                                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1234, "hard": hard}]}))
    proc = oci("exec", "-p", str(path), C)
    assert proc.returncode == 0, proc.stderr
    uid, userns, uid_map, got_hard, got_soft = proc.stdout.splitlines()
    assert uid == "1000" and userns == os.readlink(f"/proc/{init}/ns/user")
    assert uid_map.split() == ["0", "100000", "65536"]
    assert (got_hard, got_soft) == (str(hard), "1234")


def test_detach_pid_file_cgroup_and_nothing_left_behind(box, tmp_path):
    oci, init = box
    pidfile = tmp_path / "sub" / "exec.pid"
    pidfile.parent.mkdir()
    t0 = time.monotonic()
    proc = oci("exec", "--detach", "--pid-file", str(pidfile), C, "sleep", "300")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 10
    assert os.listdir(pidfile.parent) == ["exec.pid"]  # written by rename: no temp file left
    pid = int(pidfile.read_text())
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read() == b"sleep\x00300\x00"
        for n in NS:
            assert os.readlink(f"/proc/{pid}/ns/{n}") == os.readlink(f"/proc/{init}/ns/{n}"), n
        with open(f"/proc/{pid}/cgroup") as a, open(f"/proc/{init}/cgroup") as b:
            assert a.read() == b.read()
        assert _ocirun_processes(oci.root) == []
        with open(f"/proc/{pid}/status") as f:
            ppid = int(_status(f.read(), "PPid"))
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            assert b"ocirun" not in f.read()
        # non-dumpable until execve only: the exec'd program is dumpable again
        with open(f"/proc/{pid}/status") as f:
            assert _status(f.read(), "Uid").split()[0] == "0"
    finally:
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)


def test_capabilities_and_no_new_privs(box, tmp_path):
    oci, _ = box
    default = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE (the config's process)
    out = oci("exec", C, "cat", "/proc/self/status").stdout
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert int(_status(out, key), 16) == default, key
    assert _status(out, "NoNewPrivs") == "1"
    out = oci("exec", "--cap", "CAP_SYS_ADMIN", "-c", "CAP_NET_RAW", C, "cat", "/proc/self/status").stdout
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert int(_status(out, key), 16) == default | (1 << 21) | (1 << 13), key
    for nnp in (False, True):
        path = tmp_path / f"p{nnp}.json"
        path.write_text(json.dumps({"args": ["cat", "/proc/self/status"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                                    "noNewPrivileges": nnp,
                                    "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"],
                                                     "permitted": ["CAP_CHOWN"]}}))
        out = oci("exec", "-p", str(path), C).stdout
        assert _status(out, "NoNewPrivs") == str(int(nnp))
        assert int(_status(out, "CapEff"), 16) == 1 and int(_status(out, "CapBnd"), 16) == 1


def test_seccomp_of_the_container_applies(oci):
    spec = oci.config(args=("sleep", "1000"))
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO",
                                              "errnoRet": 1}]}
    oci.write(spec)
    oci("run", "-d", "--bundle", oci.bundle, C, check=True)
    proc = oci("exec", C, "mkdir", "/dev/shm/x")
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr, proc.stderr
    assert _status(oci("exec", C, "cat", "/proc/self/status").stdout, "Seccomp") == "2"


def test_listener_path_without_notify_rule_is_ignored(oci):
    """config-linux.md: without SCMP_ACT_NOTIFY listenerPath is ignored; neither create nor exec connects."""
    spec = oci.config(args=("sleep", "1000"))
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/nonexistent/agent.sock",
                                "syscalls": [{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    oci.write(spec)
    oci("run", "-d", "--bundle", oci.bundle, C, check=True)
    proc = oci("exec", C, "mkdir", "/dev/shm/x")
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr, proc.stderr


def test_refuses_stopped_container(oci):
    oci.write(oci.config(args=("true",)))
    oci("run", "-d", "--bundle", oci.bundle, C, check=True)
    deadline = time.monotonic() + 5
    while oci.state(C)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    proc = oci("exec", C, "true")
    assert proc.returncode == 255
    assert "exec failed: cannot exec in a stopped container" in proc.stderr


def test_exec_in_created_container(oci):
    oci.write(oci.config(args=("sleep", "1000")))
    oci("create", "--bundle", oci.bundle, C, check=True)
    proc = oci("exec", C, "sh", "-c", "echo in-created; cat /proc/1/cmdline")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("in-created\n")
    assert oci.state(C)["status"] == "created"


def test_refuses_paused_container_unless_ignore_paused(box, tmp_path):
    oci, _ = box
    from ocirun.cgroups import from_state

    own = StateDir(oci.root, C).load().cgroup
    mgr = from_state(own)
    mgr.freeze()
    pid = None
    try:
        proc = oci("exec", C, "true")
        assert proc.returncode == 255
        assert "cannot exec in a paused container (use --ignore-paused to override)" in proc.stderr
        pidfile = tmp_path / "p.pid"
        proc = oci("exec", "--ignore-paused", "-d", "--pid-file", str(pidfile), C,
                   "sh", "-c", "echo ran > /dev/shm/marker")
        assert proc.returncode == 0, proc.stderr
        pid = int(pidfile.read_text())
        time.sleep(0.3)
        assert oci("exec", "--ignore-paused", "-d", C, "true").returncode == 0
        with open(f"/proc/{pid}/cgroup") as f:
            assert own["path"] in f.read()
    finally:
        mgr.thaw()
    if pid:
        _wait_gone(pid)
    proc = oci("exec", C, "cat", "/dev/shm/marker")
    assert proc.stdout == "ran\n", proc.stderr


def test_sub_cgroup(box, tmp_path):
    oci, _ = box
    st = StateDir(oci.root, C).load()
    paths = st.cgroup.get("paths") or {}
    pids_dir = paths.get("pids")
    if not pids_dir:
        pytest.skip("no v1 pids controller")
    sub = os.path.join(pids_dir, "sub")
    os.mkdir(sub)
    try:
        pidfile = tmp_path / "p.pid"
        proc = oci("exec", "-d", "--pid-file", str(pidfile), "--cgroup", "pids:sub", C, "sleep", "100")
        assert proc.returncode == 0, proc.stderr
        pid = int(pidfile.read_text())
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
        own = st.cgroup["path"]
        assert any(":pids:" in line and line.endswith(f"{own}/sub") for line in lines), lines
        assert any(":memory:" in line and line.endswith(own) for line in lines), lines
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        proc = oci("exec", "--cgroup", "pids:nosuch", C, "true")
        assert proc.returncode == 255 and "nosuch" in proc.stderr
        assert "invalid --cgroup argument: a:b:c" in oci("exec", "--cgroup", "a:b:c", C, "true").stderr
    finally:
        for _ in range(50):
            try:
                os.rmdir(sub)
                break
            except OSError:
                time.sleep(0.05)


def test_no_host_fd_reaches_the_process(box, tmp_path):
    """CVE-2024-21626: only stdio (and --preserve-fds) reach the process; a host directory fd handed to
    the runtime cannot be used as the process's cwd."""
    oci, _ = box
    hostdir = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)

    def run(*args, shell=""):
        # the host directory arrives as fd 7 (and, with `shell`, as whatever it dups)
        cmd = ["sh", "-c", f'{shell} exec "$@"', "sh", OCIRUN, "--root", oci.root, "exec", *args]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=30,
                               pass_fds=(7,))
            out.seek(0)
            err.seek(0)
            return p.returncode, out.read(), err.read()

    saved = os.dup(7) if _is_open(7) else None
    try:
        os.dup2(hostdir, 7, inheritable=True)
        rc, out, err = run(C, "ls", "/proc/self/fd")
        assert rc == 0, err
        assert out.split() == ["0", "1", "2", "3"]  # 3: ls's own directory fd
        for cwd in ("/proc/self/fd/7", "/proc/self/cwd", "/proc/1/cwd/../../.."):
            rc, out, err = run("--cwd", cwd, C, "pwd")
            assert rc == 255 or out.strip() in ("/", ""), (cwd, rc, out, err)
            assert str(tmp_path) not in out
        rc, out, err = run("--preserve-fds", "2", C, "ls", "/proc/self/fd", shell="exec 3<&7 4<&7;")
        assert rc == 0, err
        assert out.split() == ["0", "1", "2", "3", "4", "5"]  # 3, 4 asked for; 5: ls's own
        rc, out, err = run("--preserve-fds", "2", C, "true", shell="exec 3<&-;")
        assert rc == 1 and "file descriptor 3 is not open" in err, err  # refused before anything is opened
    finally:
        os.close(hostdir)
        if saved is not None:
            os.dup2(saved, 7)
            os.close(saved)
        else:
            os.close(7)


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_foreground_signals_are_forwarded(box):
    oci, _ = box
    p = subprocess.Popen([OCIRUN, "--root", oci.root, "exec", C, "sh", "-c",
                          'trap "exit 42" TERM; echo ready; while :; do sleep 0.05; done'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 42
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


def test_foreground_reaps_and_leaves_nothing(box):
    oci, _ = box
    proc = oci("exec", C, "sh", "-c", "sleep 0.1 & echo started")
    assert proc.returncode == 0 and proc.stdout == "started\n"
    assert _ocirun_processes(oci.root) == []
