"""The order of the steps between `start` and the user program's execve, and what each step may rely
on (issue 11, items 4 and 9): seccomp before startContainer hooks, scheduling while capabilities are
held, stdio and pty handed to process.user, cwd entered as root first, bind sources opened with the
runtime's credentials, the caller's window size on an `exec -t` pty before the process runs.

Each docstring gives what runc 1.1.5 does with the same bundle on this machine."""
import os
import subprocess
import time

import pytest

from .conftest import OCIRUN

pytestmark = pytest.mark.root


def _seccomp_denying_mkdir() -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}


@pytest.mark.parametrize("nnp", [True, False])
def test_start_container_hook_runs_under_seccomp(oci, tmp_path, nnp):
    """A startContainer hook whose syscall the container's filter forbids fails, and the process does
    not run, with noNewPrivileges true (filter loaded late) as well as false (loaded before the user
    switch).

    runc 1.1.5, same bundle: in both cases the hook's mkdir is denied (no /out/hookdir) and the
    process never runs (no /out/ran); runc's `start` still exits 0, as it returns once the init has
    read its fifo, before the hooks run.  ocirun reports the failure from `start`.  ocirun before the
    fix: with NNP the hook ran before the filter was loaded, made /out/hookdir, and `start` succeeded."""
    out = tmp_path / "out"
    out.mkdir()
    spec = oci.config(args=("touch", "/out/ran"))
    spec["process"]["noNewPrivileges"] = nnp
    spec["mounts"].append({"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]})
    spec["linux"]["seccomp"] = _seccomp_denying_mkdir()
    spec["hooks"] = {"startContainer": [{"path": "/bin/mkdir", "args": ["mkdir", "/out/hookdir"]}]}
    oci.write(spec)
    oci("create", "--bundle", oci.bundle, "c1", check=True)
    proc = oci("start", "c1")
    assert proc.returncode != 0, proc.stderr
    assert "error running hook #0 (startContainer): error running hook: " in proc.stderr
    assert sorted(os.listdir(out)) == []


PRIORITY_PROBE = ("sh", "-c", "set -- $(cat /proc/self/stat); echo nice=${19} policy=${41}; ionice -p $$; id -u")


def _unprivileged_with_priorities(spec: dict) -> dict:
    spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    spec["process"].pop("capabilities", None)  # no capability at all (five empty sets)
    spec["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": -5}
    spec["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_RT", "priority": 4}
    return spec


def test_scheduler_and_io_priority_need_no_capability_of_the_process(oci):
    """A non-root process without capabilities still gets a negative nice and IOPRIO_CLASS_RT: the
    runtime sets them while it holds CAP_SYS_NICE / CAP_SYS_ADMIN, before the user switch.

    runc 1.1.5 does not know either field: same bundle, "nice=0 policy=0 / none: prio 0 / 1000"
    (ignored); runc 1.2 sets both before seccomp and finalizeNamespace, the order taken here.
    ocirun before the fix: ioprio_set/sched_setattr ran after the capabilities were dropped and
    `run` failed with "ioprio_set: Operation not permitted"."""
    proc = oci.run(_unprivileged_with_priorities(oci.config(args=PRIORITY_PROBE)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["nice=-5", "policy=3", "realtime:", "prio", "4", "1000"]


def test_exec_scheduler_and_io_priority_need_no_capability_of_the_process(oci):
    """The same for `exec` with a process.json (runc 1.1.5 ignores both fields there too).  Before the
    fix: "exec failed: unable to start container process: ioprio_set: Operation not permitted"."""
    import json

    oci.write(oci.config(args=("sleep", "1000")))
    oci("run", "-d", "--bundle", oci.bundle, "c1", check=True)
    process = _unprivileged_with_priorities(oci.config(args=PRIORITY_PROBE))["process"]
    pfile = os.path.join(oci.bundle, "process.json")
    with open(pfile, "w") as f:
        json.dump(process, f)
    proc = oci("exec", "-p", pfile, "c1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["nice=-5", "policy=3", "realtime:", "prio", "4", "1000"]


def _private_cwd(spec: dict) -> dict:
    """cwd on a tmpfs of mode 0700 owned by root, the process uid 1000."""
    spec["mounts"].append({"destination": "/private", "type": "tmpfs", "source": "tmpfs",
                           "options": ["mode=700"]})
    spec["process"]["cwd"] = "/private"
    spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    return spec


def test_cwd_only_root_may_enter(oci):
    """process.cwd is entered before the user switch (as runc's finalizeNamespace does), so a
    directory only root may enter is a valid cwd for a process of another user.

    runc 1.1.5, same bundle: runs, prints "/private" and "1000".  ocirun before the fix: `create`
    failed with "chdir to cwd ('/private') set in config.json failed: Permission denied"."""
    proc = oci.run(_private_cwd(oci.config(args=("sh", "-c", "pwd; id -u"))))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/private", "1000"]


def test_exec_cwd_only_root_may_enter(oci):
    """The same for `exec --user 1000:1000 --cwd /private` in a container of root's (runc 1.1.5:
    "/private", "1000"; ocirun before the fix: "chdir to cwd ... failed: Permission denied")."""
    spec = _private_cwd(oci.config(args=("sleep", "1000")))
    spec["process"]["cwd"], spec["process"]["user"] = "/", {"uid": 0, "gid": 0}
    oci.write(spec)
    oci("run", "-d", "--bundle", oci.bundle, "c1", check=True)
    proc = oci("exec", "--user", "1000:1000", "--cwd", "/private", "c1", "sh", "-c", "pwd; id -u")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/private", "1000"]


def test_cwd_not_a_directory_still_fails(oci):
    """Only permission errors are retried as the user: a cwd that is not a directory fails `create`
    as before.  runc 1.1.5 fails too, earlier and in its own words ("mkdir /bin/sh: not a
    directory": it makes a missing cwd in the rootfs, which ocirun does not)."""
    spec = _private_cwd(oci.config(args=("true",)))
    spec["process"]["cwd"] = "/bin/sh"
    proc = oci.run(spec)
    assert proc.returncode != 0
    assert "chdir to cwd ('/bin/sh') set in config.json failed: not a directory" in proc.stderr


REOPEN_STDOUT = ("sh", "-c", "echo reopened > /proc/self/fd/1 && stat -L -c %u /proc/self/fd/1")


def _as_uid_1000(spec: dict) -> dict:
    spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    return spec


def _ocirun_to_pipe(oci, *args) -> subprocess.CompletedProcess:
    """The CLI with its stdout a pipe (as conmon and the containerd shim give it), not a file."""
    return subprocess.run([OCIRUN, "--root", oci.root, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=30)


def test_stdout_pipe_is_handed_to_the_process_user(oci):
    """A process of uid 1000 can reopen its stdout pipe (/proc/self/fd/1): the pipe is given to it.

    runc 1.1.5, same bundle with stdout a pipe: prints "reopened" and "1000" (fixStdioPermissions).
    ocirun before the fix: "sh: can't create /proc/self/fd/1: Permission denied" (the pipe was
    root's, mode 0600)."""
    oci.write(_as_uid_1000(oci.config(args=REOPEN_STDOUT)))
    proc = _ocirun_to_pipe(oci, "run", "--bundle", oci.bundle, "c1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["reopened", "1000"]


def test_exec_stdout_pipe_is_handed_to_the_process_user(oci):
    """The same for `exec --user 1000:1000` (runc 1.1.5: "reopened", "1000")."""
    oci.write(oci.config(args=("sleep", "1000")))
    oci("run", "-d", "--bundle", oci.bundle, "c1", check=True)
    proc = _ocirun_to_pipe(oci, "exec", "--user", "1000:1000", "c1", *REOPEN_STDOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["reopened", "1000"]


def test_stdout_host_file_is_not_handed_over(oci, tmp_path):
    """A host file as stdout stays the host's: only anonymous pipes and the container's own pty are
    given to process.user.  A deliberate deviation: runc 1.1.5, same bundle, `runc create > out`
    leaves `out` owned by uid 1000 of the host (fixStdioPermissions chowns whatever fds 0-2 are;
    `runc run` in the foreground gives the process pipes of its own instead)."""
    oci.write(_as_uid_1000(oci.config(args=("echo", "hi"))))
    out = tmp_path / "out"
    with open(out, "w") as f, open(tmp_path / "err", "w+") as err:  # no pipe: the container keeps stdio
        proc = subprocess.run([OCIRUN, "--root", oci.root, "create", "--bundle", oci.bundle, "c1"],
                              stdin=subprocess.DEVNULL, stdout=f, stderr=err, timeout=30)
        err.seek(0)
        assert proc.returncode == 0, err.read()
    oci("start", "c1", check=True)
    for _ in range(200):  # until the process has exited (bounded; not a timing assertion)
        if oci.state("c1")["status"] == "stopped":
            break
        time.sleep(0.05)
    assert out.read_text() == "hi\n"
    assert os.stat(out).st_uid == 0


def test_terminal_is_handed_to_the_process_user(oci):
    """The container's pty slave belongs to process.user (group tty kept), for `run` on a terminal.

    runc 1.1.5, same bundle: "1000 5".  ocirun before the fix: "0 5"."""
    from .test_terminal import run_on_pty

    spec = _as_uid_1000(oci.config(args=("sh", "-c", "stat -c '%u %g' $(tty)")))
    spec["process"]["terminal"] = True
    oci.write(spec)
    rc, out, _ = run_on_pty([OCIRUN, "--root", oci.root, "run", "--bundle", oci.bundle, "c1"])
    assert rc == 0, out
    assert out.split()[-2:] == ["1000", "5"]  # after the ambient-caps warning, on the same terminal


def test_exec_terminal_is_handed_to_the_process_user(oci):
    """The same for `exec -t --user 1000:1000` (runc 1.1.5: "1000 5"; before the fix "0 5")."""
    from .test_terminal import run_on_pty

    oci.write(oci.config(args=("sleep", "1000")))
    oci("run", "-d", "--bundle", oci.bundle, "c1", check=True)
    rc, out, _ = run_on_pty([OCIRUN, "--root", oci.root, "exec", "-t", "--user", "1000:1000", "c1",
                             "sh", "-c", "stat -c '%u %g' $(tty)"])
    assert rc == 0, out
    assert out.split()[-2:] == ["1000", "5"]  # after the ambient-caps warning, on the same terminal


def test_exec_tty_starts_on_the_callers_window_size(oci):
    """`exec -t` in the foreground: the process's first look at its terminal shows the caller's size.

    runc 1.1.5, same container, caller's pty 33x101: "33 101".  ocirun before the fix: the size was
    copied to the pty only once the process was running, a race the process lost in 2 of 6 runs here
    (the `run` test below checks the same order deterministically)."""
    from .test_terminal import run_on_pty

    oci.write(oci.config(args=("sleep", "1000")))
    oci("run", "-d", "--bundle", oci.bundle, "c1", check=True)
    rc, out, _ = run_on_pty([OCIRUN, "--root", oci.root, "exec", "-t", "c1", "stty", "size"], size=(33, 101))
    assert rc == 0, out
    assert out.split()[-2:] == ["33", "101"]


def test_run_terminal_starts_on_the_callers_window_size(oci, tmp_path):
    """`run` with process.terminal and no consoleSize, in the foreground: the pty has the caller's
    size before the process runs.  Seen from a startContainer hook (it runs after `start` connected
    and before execve, so nothing can have resized the pty after the fact).

    runc 1.1.5, same bundle without the hook, caller's pty 33x101: "33 101".  ocirun before the
    fix: the hook saw a 0x0 pty (busybox's stty prints nothing for it): the size was copied only by
    attach, after `start` returned."""
    from .test_terminal import run_on_pty

    out = tmp_path / "out"
    out.mkdir()
    spec = oci.config(args=("stty", "size"))
    spec["process"]["terminal"] = True
    spec["mounts"].append({"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]})
    spec["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
                                                                   "stty size < /dev/console > /out/size"]}]}
    oci.write(spec)
    rc, text, _ = run_on_pty([OCIRUN, "--root", oci.root, "run", "--bundle", oci.bundle, "c1"], size=(33, 101))
    assert rc == 0, text
    assert (out / "size").read_text().split() == ["33", "101"]
    assert text.split()[-2:] == ["33", "101"]


USERNS_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@pytest.fixture
def root_only_source():
    """/var/tmp/X (0700, root's: only the host's root may traverse it) / src (0700, owned by the
    container's root, host uid 100000) / file."""
    import shutil
    import tempfile

    top = tempfile.mkdtemp(prefix="ocirun-bindsrc-", dir="/var/tmp")
    os.chmod(top, 0o700)
    src = os.path.join(top, "src")
    os.mkdir(src, 0o700)
    with open(os.path.join(src, "file"), "w") as f:
        f.write("from the host\n")
    for path in (src, os.path.join(src, "file")):
        os.chown(path, 100000, 100000)
    yield src
    shutil.rmtree(top)


def _userns_with_bind(oci, src: str, script: str, options=("rbind",)) -> dict:
    spec = oci.config(args=("sh", "-c", script))
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = spec["linux"]["gidMappings"] = USERNS_MAP
    spec["mounts"].append({"destination": "/home", "type": "bind", "source": src, "options": list(options)})
    return spec


def test_bind_source_only_host_root_can_reach(oci, root_only_source):
    """A bind source under a directory only the host's root may traverse, in a container whose root
    is host uid 100000: the runtime opens it with its own credentials and the container sees it.

    runc 1.1.5, same bundle: runs, prints "from the host" (it opens bind sources in the host
    context).  ocirun before the fix: create failed with "mount /var/tmp/.../src to /home:
    Permission denied" (open_tree from inside the user namespace)."""
    proc = oci.run(_userns_with_bind(oci, root_only_source, "cat /home/file; touch /home/new && echo wrote"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["from the host", "wrote"]
    assert os.stat(os.path.join(root_only_source, "new")).st_uid == 100000


def test_bind_source_from_the_runtime_keeps_its_flags(oci, root_only_source):
    """The tree the runtime clones carries the config's flags before it is attached: `ro` holds
    (runc 1.1.5: "Read-only file system")."""
    proc = oci.run(_userns_with_bind(oci, root_only_source, "cat /home/file; touch /home/new",
                                     options=("rbind", "ro")))
    assert proc.returncode != 0
    assert "from the host" in proc.stdout and "Read-only file system" in proc.stderr
    assert not os.path.exists(os.path.join(root_only_source, "new"))


def test_bind_source_missing_names_the_mount(oci, tmp_path):
    """A source that does not exist fails create with the mount named, as before."""
    proc = oci.run(_userns_with_bind(oci, str(tmp_path / "nowhere"), "true"))
    assert proc.returncode != 0
    assert f"mount {tmp_path / 'nowhere'} to /home: no such file or directory" in proc.stderr
