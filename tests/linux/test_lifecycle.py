"""Every transition of runtime.md's lifecycle, and every refusal, through the CLI."""
import json
import os
import signal
import time

import pytest

from .conftest import edit

pytestmark = pytest.mark.root


def test_run_prints_output_and_propagates_exit_status(oci):
    proc = oci.sh("echo hello from $(hostname); exit 7")
    assert proc.stdout == "hello from ocirun\n"
    assert proc.returncode == 7
    assert oci.ids() == []  # run deletes the container after it exits


def test_create_start_state_kill_delete(oci, tmp_path):
    pidfile = tmp_path / "pid"
    oci.write(oci.config(args=("sleep", "60")))
    oci("create", "--bundle", oci.bundle, "--pid-file", str(pidfile), "c1", check=True)
    st = oci.state("c1")
    assert st["status"] == "created"
    assert st["id"] == "c1" and st["bundle"] == oci.bundle and st["ociVersion"].startswith("1.")
    assert int(pidfile.read_text()) == st["pid"]
    # the user program has not run yet: the init is still our interpreter, waiting on exec.fifo
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert b"sleep" not in f.read()
    oci("start", "c1", check=True)
    st = oci.state("c1")
    assert st["status"] == "running"
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"
    oci("kill", "c1", "KILL", check=True)
    _wait_status(oci, "c1", "stopped")
    oci("delete", "c1", check=True)
    assert oci("state", "c1").returncode == 1
    assert not os.path.exists(os.path.join(oci.root, "c1"))


def _wait_status(oci, cid, status, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if oci.state(cid)["status"] == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} never reached {status}: {oci.state(cid)}")


def test_refusals_match_runtime_md(oci):
    oci.write(oci.config(args=("sleep", "60")))
    oci("create", "--bundle", oci.bundle, "c1", check=True)
    # create fails when the id exists
    proc = oci("create", "--bundle", oci.bundle, "c1")
    assert proc.returncode == 1 and "exists" in proc.stderr
    # delete of a created container is refused without --force (runc and crun allow it)
    proc = oci("delete", "c1")
    assert proc.returncode == 1 and "not stopped" in proc.stderr
    assert oci.state("c1")["status"] == "created"
    oci("start", "c1", check=True)
    # start only from created
    proc = oci("start", "c1")
    assert proc.returncode == 1 and oci.state("c1")["status"] == "running"
    proc = oci("delete", "c1")
    assert proc.returncode == 1 and "not stopped" in proc.stderr
    oci("kill", "c1", "9", check=True)
    _wait_status(oci, "c1", "stopped")
    # kill only created or running
    proc = oci("kill", "c1", "TERM")
    assert proc.returncode == 1 and "not running" in proc.stderr
    proc = oci("start", "c1")
    assert proc.returncode == 1
    oci("delete", "c1", check=True)


def test_missing_container_wording_and_delete_force_exit_0(oci):
    for cmd in (("state", "nope"), ("start", "nope"), ("kill", "nope", "9"), ("delete", "nope")):
        proc = oci(*cmd)
        assert proc.returncode == 1
        assert "container nope does not exist" in proc.stderr
    assert oci("delete", "--force", "nope").returncode == 0


def test_kill_created_container_with_sigterm(oci):
    oci.write(oci.config(args=("sleep", "60")))
    oci("create", "--bundle", oci.bundle, "c1", check=True)
    oci("kill", "c1", "SIGTERM", check=True)
    _wait_status(oci, "c1", "stopped")
    oci("delete", "c1", check=True)


def test_delete_force_running(oci):
    oci.write(oci.config(args=("sleep", "60")))
    oci("run", "--detach", "--bundle", oci.bundle, "c1", check=True)
    pid = oci.state("c1")["pid"]
    oci("delete", "--force", "c1", check=True)
    assert not os.path.exists(f"/proc/{pid}/stat") or b") Z" in open(f"/proc/{pid}/stat", "rb").read()


def test_kill_signal_spellings(oci):
    oci.write(oci.config(args=("sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.05; done")))
    oci("run", "-d", "-b", oci.bundle, "c1", check=True)
    time.sleep(0.3)
    oci("kill", "c1", "usr1", check=True)
    _wait_status(oci, "c1", "stopped")
    assert oci("kill", "c1", "NOPE").returncode == 1


def test_list_formats(oci):
    oci.write(oci.config(args=("sleep", "60")))
    oci("create", "--bundle", oci.bundle, "c1", check=True)
    table = oci("list", check=True).stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:3] == ["c1", str(oci.state("c1")["pid"]), "created"]
    data = json.loads(oci("list", "--format", "json", check=True).stdout)
    assert [d["id"] for d in data] == ["c1"]
    assert oci("list", "-q", check=True).stdout == "c1\n"


def test_run_forwards_signals(oci):
    import subprocess

    from .conftest import OCIRUN

    spec = oci.config(args=("sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.05; done"))
    oci.write(spec)
    p = subprocess.Popen([OCIRUN, "--root", oci.root, "run", "-b", oci.bundle, "c1"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = oci("state", "c1")
        if r.returncode == 0 and json.loads(r.stdout)["status"] == "running":
            break
        time.sleep(0.05)
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 3


def test_bad_config_names_field_and_leaves_nothing(oci):
    spec = oci.config()
    edit(spec, "process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                                   {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}])
    oci.write(spec)
    proc = oci("create", "--bundle", oci.bundle, "c1")
    assert proc.returncode == 1
    assert "process.rlimits[1]" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert oci.ids() == []


@pytest.mark.parametrize("command", ["create", "run"])
def test_an_invalid_id_is_one_line_and_no_stage_is_left(oci, command):
    """The command line starts the stage before the id is checked (ocirun.stagespawn): the stage must
    be killed unheard, not left to see EOF and report it on stderr after the real error."""
    oci.write(oci.config())
    proc = oci(command, "--bundle", oci.bundle, "../c1")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["ocirun: invalid container id format: ../c1"], proc.stderr
    assert oci.ids() == []


def test_unsupported_major_version_refused(oci):
    spec = oci.config()
    spec["ociVersion"] = "2.0.0"
    oci.write(spec)
    proc = oci("create", "--bundle", oci.bundle, "c1")
    assert proc.returncode == 1 and "ociVersion" in proc.stderr


def test_missing_executable_worded_like_runc(oci):
    oci.write(oci.config(args=("/nonexistent",)))
    proc = oci("create", "--bundle", oci.bundle, "c1")
    assert proc.returncode == 1
    assert 'exec: "/nonexistent": stat /nonexistent: no such file or directory' in proc.stderr
    assert oci.ids() == []
    oci.write(oci.config(args=("/etc/passwd",)))
    proc = oci("create", "--bundle", oci.bundle, "c1")
    assert 'exec: "/etc/passwd": permission denied' in proc.stderr


def test_log_json_carries_the_error(oci, tmp_path):
    log = tmp_path / "log.json"
    proc = oci("state", "nope", glob=("--log", str(log), "--log-format", "json"))
    assert proc.returncode == 1
    rec = json.loads(log.read_text().splitlines()[-1])
    assert rec["level"] == "error" and rec["msg"] == "container nope does not exist" and "time" in rec


def test_works_with_empty_environment_and_any_cwd(oci, tmp_path):
    from .conftest import OCIRUN
    import subprocess

    oci.write(oci.config(args=("true",)))
    proc = subprocess.run([OCIRUN, "--root", oci.root, "run", "--bundle", oci.bundle, "c1"], env={},
                          cwd="/", capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_spec_command_writes_runc_default(tmp_path):
    import subprocess

    from .conftest import OCIRUN

    subprocess.run([OCIRUN, "spec", "--bundle", str(tmp_path)], check=True)
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"] and spec["root"]["path"] == "rootfs"
    again = subprocess.run([OCIRUN, "spec", "-b", str(tmp_path)], capture_output=True, text=True)
    assert again.returncode == 1 and "exists" in again.stderr


def test_create_killed_midway_leaves_nothing_after_delete_force(oci):
    """A `create` killed while the init stage waits (here: in a prestart hook) leaves a state that
    says "creating" and names the cgroup; `delete --force` removes the processes, cgroup and dir."""
    import subprocess

    from .conftest import OCIRUN

    spec = oci.config(args=("true",))
    spec["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "2"]}]}
    oci.write(spec)
    p = subprocess.Popen([OCIRUN, "--root", oci.root, "create", "-b", oci.bundle, "c1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cg = None
    deadline = time.monotonic() + 10
    # The state names the cgroup before the directory is made (so that a kill in between still finds
    # it): wait for both.
    while time.monotonic() < deadline and not (cg and os.path.isdir(cg)):
        try:
            with open(os.path.join(oci.root, "c1", "state.json")) as f:
                cg = json.load(f)["cgroup"]["paths"]["pids"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    assert cg and os.path.isdir(cg)
    time.sleep(0.3)
    p.kill()
    p.wait()
    assert oci.state("c1")["status"] == "creating"
    assert oci("delete", "c1").returncode == 1  # not without --force
    oci("delete", "--force", "c1", check=True)
    assert not os.path.exists(os.path.join(oci.root, "c1"))
    deadline = time.monotonic() + 5
    while os.path.isdir(cg) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.isdir(cg)


def test_create_without_process_then_start_fails(oci):
    """runtime.md: create applies everything but process; start "MUST generate an error if process
    was not set"."""
    spec = oci.config()
    del spec["process"]
    oci.write(spec)
    oci("create", "-b", oci.bundle, "c1", check=True)
    assert oci.state("c1")["status"] == "created"
    proc = oci("start", "c1")
    assert proc.returncode == 1 and "process was not set" in proc.stderr
    assert oci("state", "c1").returncode == 1  # stopped and destroyed (step 12)


def test_preserve_fds_refused_when_negative_or_not_open(oci):
    """runc 1.1.5 runs `--preserve-fds -1` (nothing passed) and `--preserve-fds 3` with fds 3-5 closed in the
    caller (the container gets runc's own fds 3-5).  ocirun refuses both before it opens anything: a
    negative count would reach stdio, an unopened number would be taken by ocirun's own log file or socket."""
    oci.write(oci.config(args=("ls", "/proc/self/fd")))
    r = oci("run", "--preserve-fds", "-1", "--bundle", oci.bundle, "c1")
    assert r.returncode == 1 and 'invalid value "-1" for flag -preserve-fds' in r.stderr
    log = os.path.join(oci.bundle, "log")
    r = oci("--log", log, "run", "--preserve-fds", "1", "--bundle", oci.bundle, "c1")
    assert r.returncode == 1 and "file descriptor 3 is not open" in r.stderr, r.stderr
    assert oci.ids() == []


def test_hook_without_env_inherits_the_runtime_environment(oci, tmp_path):
    """runc 1.1.5 runs a hook whose config has no "env" with runc's own environment (Go's exec with a nil
    Env) and one with "env": [] with none; ocirun gave both an empty environment."""
    out = tmp_path / "hook-env"
    spec = oci.config()
    spec["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"env >> {out}; echo --- >> {out}"]},
                                  {"path": "/bin/sh", "args": ["sh", "-c", f"env >> {out}"], "env": []}]}
    env = dict(os.environ, OCIRUN_HOOK_PROBE="seen")
    r = oci.run(spec, env=env)
    assert r.returncode == 0, r.stderr
    inherited, empty = out.read_text().split("---\n")
    assert "OCIRUN_HOOK_PROBE=seen" in inherited
    assert "OCIRUN_HOOK_PROBE" not in empty


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_writes_records_for_create_and_start(oci, tmp_path, fmt):
    """runc --debug writes `level=debug` records (JSON `"level":"debug"`) for its steps, to stderr or to
    --log; ocirun wrote none.  The init stage's own steps reach the log through the parent."""
    oci.write(oci.config())
    r = oci("--debug", "--log-format", fmt, "run", "--bundle", oci.bundle, "c1")
    assert r.returncode == 0, r.stderr
    assert ("level=debug" if fmt == "text" else '"level":"debug"') in r.stderr
    log = tmp_path / "debug.log"
    r = oci("--debug", "--log", str(log), "--log-format", fmt, "run", "--bundle", oci.bundle, "c2")
    assert r.returncode == 0 and r.stderr == ""
    lines = log.read_text().splitlines()
    debug = [line for line in lines if ("level=debug" if fmt == "text" else '"level":"debug"') in line]
    assert any("child process in init()" in line for line in debug)
    assert any("container c2 created" in line for line in debug)
    assert any("executed the process" in line for line in debug)
    r = oci("run", "--bundle", oci.bundle, "c3")
    assert r.returncode == 0 and r.stderr == ""  # nothing without --debug


def test_a_refused_create_prints_one_line(oci):
    """The init stage boots while the config is validated; when the config is refused it is discarded,
    and must not add a line of its own (it used to print "ocirun init: ..." on EOF now and then)."""
    spec = oci.config()
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]
    oci.write(spec)
    for i in range(20):
        r = oci("create", "--bundle", oci.bundle, f"c{i}")
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1 and "RLIMIT_NOPE" in r.stderr, r.stderr
