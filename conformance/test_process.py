"""config.md "Process", "POSIX process", "Linux Process", "User"; runtime-linux.md file descriptors."""
from __future__ import annotations

import os
import subprocess

import pytest

MUST = "MUST"
SHOULD = "SHOULD"


@pytest.mark.req(MUST, "config.md", "Process")
def test_cwd(ctr):
    """`cwd` (string, REQUIRED) is the working directory that will be set for the executable."""
    ctr.process["cwd"] = "/share"
    assert ctr.sh("pwd; busybox pwd") == "/share\n/share\n"


@pytest.mark.req(MUST, "config.md", "Process")
@pytest.mark.req(MUST, "config.md", "Valid values")
def test_cwd_relative_rejected(ctr):
    """`cwd` ... This value MUST be an absolute path."""
    ctr.process["cwd"] = "share"
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(MUST, "config.md", "Process")
def test_env(ctr):
    """`env` (array of strings, OPTIONAL) with the same semantics as IEEE Std 1003.1-2008's environ."""
    ctr.process["env"] = ["PATH=/bin", "A=1", "B=with space", "EMPTY="]
    out = ctr.sh("env").splitlines()
    for var in ("PATH=/bin", "A=1", "B=with space", "EMPTY="):
        assert var in out


@pytest.mark.req(MUST, "config.md", "Process")
def test_args_execvp(ctr):
    """`args` ... at least one entry is REQUIRED (non-Windows), and that entry is used with the same
    semantics as execvp's file (looked up in PATH)."""
    ctr.process["env"] = ["PATH=/usr/local/bin:/bin"]
    ctr.set_args("echo", "a b", "c")
    res = ctr.run()
    assert res.returncode == 0, res.stderr
    assert res.stdout == "a b c\n"


@pytest.mark.req(MUST, "config.md", "Process")
@pytest.mark.req(MUST, "config.md", "Valid values")
def test_args_empty_rejected(ctr):
    """`args`: at least one entry is REQUIRED (non-Windows)."""
    ctr.set_args()
    res = ctr.create()
    if res.returncode == 0:
        assert ctr.start().returncode != 0 or ctr.wait_status("stopped")


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "config.md", "Process")
def test_args_not_found_fails(ctr):
    """If the runtime cannot apply a property as specified in the configuration, it MUST generate an
    error (an executable that does not exist)."""
    ctr.set_args("/no/such/program")
    res = ctr.run()
    assert res.returncode != 0


@pytest.mark.req(MUST, "config.md", "POSIX-platform User")
def test_user_uid_gid(ctr):
    """`uid` (int, REQUIRED) specifies the user ID in the container namespace; `gid` the group ID."""
    ctr.process["user"] = {"uid": 1234, "gid": 5678}
    assert ctr.sh("id -u; id -g") == "1234\n5678\n"


@pytest.mark.req(MUST, "config.md", "POSIX-platform User")
def test_user_additional_gids(ctr, probe):
    """`additionalGids` (array of ints, OPTIONAL) specifies additional group IDs in the container
    namespace to be added to the process."""
    ctr.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 6, 4321]}
    st = probe.parse_status(ctr.sh("cat /proc/self/status"))
    assert {5, 6, 4321} <= {int(g) for g in st["Groups"].split()}
    assert st["Gid"].split()[0] == "1000"


@pytest.mark.req(MUST, "config.md", "POSIX-platform User")
def test_user_no_additional_gids(ctr, probe):
    """Without `additionalGids`, the process gets no supplementary group beyond its gid."""
    ctr.process["user"] = {"uid": 1000, "gid": 1000}
    st = probe.parse_status(ctr.sh("cat /proc/self/status"))
    assert set(st["Groups"].split()) <= {"1000"}


@pytest.mark.req(MUST, "config.md", "POSIX-platform User")
@pytest.mark.parametrize("umask", [0o077, 0o002])
def test_user_umask(ctr, umask):
    """`umask` (int, OPTIONAL) specifies the umask of the user."""
    ctr.process["user"]["umask"] = umask
    assert ctr.sh("umask").strip() == f"{umask:04o}"


@pytest.mark.req(MUST, "config.md", "POSIX process")
def test_rlimits(ctr, probe):
    """For each entry in rlimits, a getrlimit(3) on type MUST succeed; rlim.rlim_cur MUST match the
    configured value (soft); rlim.rlim_max MUST match the configured value (hard)."""
    ctr.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
        {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        {"type": "RLIMIT_MSGQUEUE", "soft": 1000, "hard": 2000},
    ]
    lim = probe.parse_limits(ctr.sh("cat /proc/self/limits"))
    assert lim["Max open files"] == ("512", "1000")
    assert lim["Max core file size"] == ("4096", "8192")
    assert lim["Max processes"] == ("300", "400")
    assert lim["Max msgqueue size"] == ("1000", "2000")


@pytest.mark.req(MUST, "config.md", "POSIX process")
def test_rlimit_invalid_type(ctr):
    """The runtime MUST generate an error for any values which cannot be mapped to a relevant kernel
    interface."""
    ctr.process["rlimits"] = [{"type": "RLIMIT_NOT_A_LIMIT", "soft": 1, "hard": 1}]
    ctr.set_args("true")
    assert ctr.run().returncode != 0


@pytest.mark.req(MUST, "config.md", "POSIX process")
def test_rlimit_duplicate_type(ctr):
    """If `rlimits` contains duplicated entries with same `type`, the runtime MUST generate an error."""
    ctr.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
                              {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}]
    ctr.set_args("true")
    assert ctr.run().returncode != 0


CAP_SETS = {"bounding": "CapBnd", "effective": "CapEff", "permitted": "CapPrm",
            "inheritable": "CapInh", "ambient": "CapAmb"}


@pytest.mark.req(MUST, "config.md", "Linux Process")
def test_capabilities(ctr, probe):
    """`capabilities` ... `effective`, `bounding`, `inheritable`, `permitted`, `ambient`: the
    capabilities that are kept for the process."""
    caps = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]
    ctr.process["capabilities"] = {k: list(caps) for k in CAP_SETS}
    ctr.process["noNewPrivileges"] = False
    st = probe.parse_status(ctr.sh("cat /proc/self/status"))
    for key, field in CAP_SETS.items():
        want = set(ctr.process["capabilities"][key])
        assert probe.decode_caps(st[field]) == want, key


@pytest.mark.req(MUST, "config.md", "Linux Process")
def test_capabilities_default_spec(ctr, probe):
    """The capability sets of runc's default spec are applied exactly (nothing more kept)."""
    st = probe.parse_status(ctr.sh("cat /proc/self/status"))
    want = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
    assert probe.decode_caps(st["CapBnd"]) == want
    assert probe.decode_caps(st["CapEff"]) == want
    assert probe.decode_caps(st["CapInh"]) == set()


@pytest.mark.req(MUST, "config.md", "Linux Process")
def test_capabilities_nonroot_user(ctr, probe):
    """Capabilities are kept for a non-root process (`ambient`, `permitted`, `effective`)."""
    ctr.process["user"] = {"uid": 1000, "gid": 1000}
    caps = ["CAP_NET_BIND_SERVICE"]
    ctr.process["capabilities"] = {k: list(caps) for k in CAP_SETS}
    st = probe.parse_status(ctr.sh("cat /proc/self/status"))
    for key, field in CAP_SETS.items():
        assert probe.decode_caps(st[field]) == set(caps), key


@pytest.mark.req(SHOULD, "config.md", "Linux Process")
@pytest.mark.req(MUST, "runtime.md", "Warnings")
def test_capabilities_unknown_not_fatal(ctr, probe):
    """Any value which cannot be mapped to a relevant kernel interface, or cannot be granted otherwise
    MUST be logged as a warning by the runtime. Runtimes SHOULD NOT fail if the configuration requests
    capabilities that cannot be granted."""
    caps = ["CAP_CHOWN", "CAP_NOT_A_CAPABILITY"]
    ctr.process["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    st = probe.parse_status(ctr.sh("cat /proc/self/status"))
    assert "CAP_CHOWN" in probe.decode_caps(st["CapBnd"])


@pytest.mark.req(MUST, "config.md", "Linux Process")
@pytest.mark.parametrize("value", [True, False])
def test_no_new_privileges(ctr, probe, value):
    """`noNewPrivileges` (bool, OPTIONAL) setting noNewPrivileges to true prevents the process from
    gaining additional privileges."""
    ctr.process["noNewPrivileges"] = value
    st = probe.parse_status(ctr.sh("cat /proc/self/status"))
    assert st["NoNewPrivs"] == ("1" if value else "0")


@pytest.mark.req(MUST, "config.md", "Linux Process")
@pytest.mark.parametrize("value", [0, 432, 1000])  # lowering it would need CAP_SYS_RESOURCE
def test_oom_score_adj(ctr, value):
    """If `oomScoreAdj` is set, the runtime MUST set `oom_score_adj` to the given value."""
    ctr.process["oomScoreAdj"] = value
    assert ctr.sh("cat /proc/self/oom_score_adj").strip() == str(value)


@pytest.mark.req(MUST, "config.md", "Linux Process")
def test_oom_score_adj_unset_unchanged(ctr):
    """If `oomScoreAdj` is not set, the runtime MUST NOT change the value of `oom_score_adj`."""
    ctr.process.pop("oomScoreAdj", None)
    ctr.script("cat /proc/self/oom_score_adj")
    ctr.write()

    def caller_adj():
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("123")

    res = subprocess.run([ctr.runtime, "--root", ctr.root, "run", "--bundle", ctr.bundle, ctr.id],
                         capture_output=True, text=True, timeout=30, preexec_fn=caller_adj,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "123"


@pytest.mark.req(MUST, "config.md", "Process")
def test_console_size_ignored_without_terminal(ctr):
    """Runtimes MUST ignore `consoleSize` if `terminal` is `false` or unset."""
    ctr.process["terminal"] = False
    ctr.process["consoleSize"] = {"height": 33, "width": 77}
    out = ctr.sh("if [ -t 1 ]; then echo tty; else echo notty; fi")
    assert out == "notty\n"


@pytest.mark.req(MUST, "runtime-linux.md", "File descriptors")
def test_only_stdio_fds(ctr):
    """By default, only the stdin, stdout and stderr file descriptors are kept open for the application
    by the runtime."""
    ctr.set_args("sleep", "300")
    extra = os.open("/dev/null", os.O_RDONLY)  # an inheritable fd in the caller must not leak
    os.set_inheritable(extra, True)
    try:
        ctr.write()
        with open(ctr.out_path, "a") as out:
            res = subprocess.run([ctr.runtime, "--root", ctr.root, "create", "--bundle", ctr.bundle, ctr.id],
                                 stdout=out, stderr=out, stdin=subprocess.DEVNULL, close_fds=False, timeout=30)
    finally:
        os.close(extra)
    assert res.returncode == 0
    assert ctr.start().returncode == 0
    pid = ctr.pid
    fds = sorted(int(x) for x in os.listdir(f"/proc/{pid}/fd"))
    assert fds == [0, 1, 2]


@pytest.mark.req(MUST, "config.md", "Process")
def test_terminal_console_socket(ctr, tmp_path):
    """`terminal` ... if set to true on Linux a pseudoterminal pair is allocated for the process and the
    pseudoterminal pty is duplicated on the process's standard streams; /dev/console is set up by
    bind mounting the pseudoterminal pty to /dev/console (config-linux.md Default Devices)."""
    import select
    import socket

    ctr.process["terminal"] = True
    ctr.script("tty; stat -c '%F %t' /dev/console; for f in 0 1 2; do [ -t $f ] && echo tty$f; done")
    sock_path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    srv.settimeout(10)
    try:
        res = ctr.create("--console-socket", sock_path)
        assert res.returncode == 0, res.stderr
        conn, _ = srv.accept()
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        conn.close()
        assert len(fds) == 1, "no pty master received on the console socket"
        master = fds[0]
        assert ctr.start().returncode == 0
        out = b""
        while True:
            r, _, _ = select.select([master], [], [], 5)
            if not r:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
    finally:
        srv.close()
    text = out.decode(errors="replace").replace("\r", "")
    lines = text.splitlines()
    assert lines[0].startswith("/dev/pts/"), text
    assert lines[1].startswith("character special file 88"), text
    assert lines[2:5] == ["tty0", "tty1", "tty2"], text
