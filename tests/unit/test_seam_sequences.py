"""The rootfs, device, identity, terminal and process sequences, call by call on the recording fake
kernel (no root): which privileged calls, in which order, with which flags, and what an injected
failure turns into.  The filesystem they walk is a real directory under ``tmp_path``; only the
privileged calls are the fake's (openat2 is passed through to ``os.open`` where a test needs to
walk the directory)."""
import errno
import os
import stat

import pytest

from ocirun import plan

from ocirun import rootfs, security, terminal
from ocirun.config import Process
from ocirun.kernel import linux as k
from ocirun.kernel.fake import FakeKernel
from ocirun.pathsafe import fd_path


def _passthrough_openat2(dirfd, path, flags, mode=0, resolve=0):
    """openat2 as a plain openat under the test's directory (no symlinks there to resolve)."""
    return os.open(path, flags | os.O_CLOEXEC, mode, dir_fd=dirfd)


def _mknod_as_file(name, mode, device=0, dir_fd=None):
    """Stand-in for mknod without CAP_MKNOD: an empty file where the node would be."""
    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dir_fd))


@pytest.fixture
def root(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    yield tmp_path, fd
    os.close(fd)


def _process(**over):
    raw = {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 1000, "gid": 100}}
    raw.update(over)
    return Process.parse(raw)


# --- devices ---------------------------------------------------------------------------------------

def test_default_devices_are_made_in_order_each_node_then_its_owner(monkeypatch, root):
    tmp, rootfd = root
    fk = FakeKernel(monkeypatch, {"openat2": _passthrough_openat2, "mknod": _mknod_as_file})
    rootfs.mount_dev_defaults(rootfd, userns=False, dev_is_bind=False)
    nodes = fk.of("mknod")
    assert [n[0] for n in nodes] == ["null", "zero", "full", "random", "urandom", "tty"]
    for (name, mode, dev, _dir_fd), (path, typ, major, minor, perm) in zip(nodes, rootfs.DEFAULT_DEVICES):
        assert mode == stat.S_IFCHR | perm and dev == os.makedev(major, minor)
    # each node is followed by its chown (root's, through the O_PATH fd of the node just made)
    made = [n for n in fk.names() if n in ("mknod", "chown")]
    assert made == ["mknod", "chown"] * 6
    assert all(args[1:3] == (0, 0) and args[0].startswith("/proc/self/fd/") for args in fk.of("chown"))
    assert stat.S_IMODE((tmp / "dev" / "null").stat().st_mode) == 0o666  # the mode goes on with chmod


def test_a_device_without_owner_is_not_chowned_and_a_fifo_needs_no_numbers(monkeypatch, root):
    tmp, rootfd = root
    fk = FakeKernel(monkeypatch, {"openat2": _passthrough_openat2, "mknod": _mknod_as_file})
    rootfs.create_device(rootfd, "/dev/fifo0", "p", 0, 0, 0o600, None, None, userns=False)
    assert fk.of("mknod") == [("fifo0", stat.S_IFIFO | 0o600, os.makedev(0, 0), fk.of("mknod")[0][3])]
    assert not fk.of("chown")


def test_a_device_in_a_user_namespace_is_a_bind_of_the_hosts_node(monkeypatch, root):
    """mknod is denied in a user namespace: an empty placeholder, then the host's node bound onto it."""
    tmp, rootfd = root
    fk = FakeKernel(monkeypatch)
    real_openat2 = _passthrough_openat2
    fk.returns["openat2"] = real_openat2
    rootfs.create_device(rootfd, "/dev/fuse", "c", 10, 229, 0o666, 0, 0, userns=True)
    assert not fk.of("mknod") and not fk.of("chown")
    assert (tmp / "dev" / "fuse").is_file()
    src, target, fstype, flags = fk.of("mount")[0][:4]
    assert (src, fstype, flags) == ("/dev/fuse", None, k.MS_BIND)
    assert target.startswith("/proc/self/fd/")
    # the placeholder was reached with openat2 confined to the rootfs, no symlink followed
    resolve = [a[4] for a in fk.of("openat2") if a[1] == "fuse"]
    assert resolve and resolve[0] & k.RESOLVE_IN_ROOT and resolve[0] & k.RESOLVE_NO_SYMLINKS


def test_an_existing_file_in_the_way_is_refused_before_any_mknod(monkeypatch, root):
    tmp, rootfd = root
    (tmp / "dev").mkdir()
    (tmp / "dev" / "null").write_text("not a device")
    fk = FakeKernel(monkeypatch, {"openat2": _passthrough_openat2})
    with pytest.raises(rootfs.RootfsError, match="/dev/null exists and is not the requested device c 1:3"):
        rootfs.create_device(rootfd, "/dev/null", "c", 1, 3, 0o666, 0, 0, userns=False)
    assert not fk.of("mknod")


@pytest.mark.parametrize("call,err,text", [("mknod", errno.EPERM, "Operation not permitted"),
                                           ("chown", errno.EINVAL, "Invalid argument")])
def test_an_injected_device_failure_names_the_device(monkeypatch, root, call, err, text):
    tmp, rootfd = root
    fk = FakeKernel(monkeypatch, {"openat2": _passthrough_openat2, "mknod": _mknod_as_file})
    fk.fail(call, err)
    opened = set(os.listdir("/proc/self/fd"))
    with pytest.raises(rootfs.RootfsError) as e:
        rootfs.create_device(rootfd, "/dev/null", "c", 1, 3, 0o666, 0, 0, userns=False)
    assert str(e.value) == f"create device /dev/null: {text}"
    assert set(os.listdir("/proc/self/fd")) <= opened  # the parent's fd is closed on the error path


def test_copy_up_gives_each_copy_its_owner_without_following_links(monkeypatch, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("x")
    (src / "l").symlink_to("d/f")
    dst.mkdir()
    fk = FakeKernel(monkeypatch)
    sfd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    dfd = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        rootfs.copy_tree(sfd, dfd)
    finally:
        os.close(sfd)
        os.close(dfd)
    chowned = {args[0]: args for args in fk.of("chown")}
    assert set(chowned) == {"d", "f", "l"}
    for args in chowned.values():
        assert args[4] is False  # follow_symlinks: a link is chowned itself, never its target
    assert (dst / "d" / "f").read_text() == "x" and os.readlink(dst / "l") == "d/f"


# --- roots -----------------------------------------------------------------------------------------

def test_no_pivot_moves_the_rootfs_over_slash_then_chroots(monkeypatch):
    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr(rootfs, "hide_outside_procfs_sysfs", lambda fd: fk.calls.append(("hide", (fd,))))
    monkeypatch.setattr("os.fchdir", lambda fd: fk.calls.append(("fchdir", (fd,))))
    monkeypatch.setattr("os.chdir", lambda p: fk.calls.append(("chdir", (p,))))
    rootfs.move_root(9)
    assert fk.calls == [("hide", (9,)), ("fchdir", (9,)), ("mount", (".", "/", None, k.MS_MOVE)),
                        ("chroot", (".",)), ("chdir", ("/",))]


def test_a_failed_pivot_root_stops_before_the_old_root_is_touched(monkeypatch):
    fk = FakeKernel(monkeypatch)
    fk.fail("pivot_root", errno.EINVAL)
    monkeypatch.setattr("os.fchdir", lambda fd: None)
    with pytest.raises(OSError) as e:
        rootfs.pivot(9)
    assert e.value.errno == errno.EINVAL
    assert fk.names() == ["pivot_root"]  # no MS_SLAVE, no umount of what would still be the host's root


def test_a_failed_chroot_into_the_clone_is_worded_and_closes_both_fds(monkeypatch):
    fk = FakeKernel(monkeypatch)
    fk.fail("chroot", errno.EPERM)
    closed = []
    monkeypatch.setattr("os.fchdir", lambda fd: None)
    monkeypatch.setattr("os.close", closed.append)
    with pytest.raises(rootfs.RootfsError, match="^enter the runtime mount namespace: Operation not permitted$"):
        rootfs.enter_runtime_namespace(41)
    assert fk.names() == ["open_tree", "setns", "chroot"]
    assert closed == [1001, 41]


# --- masked and read-only paths --------------------------------------------------------------------

def test_a_masked_directory_gets_a_read_only_tmpfs_and_a_file_the_verified_null_device(monkeypatch, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("secret")
    fk = FakeKernel(monkeypatch)
    rootfs.mask_path(str(tmp_path / "dir"))
    rootfs.mask_path(str(tmp_path / "file"))
    rootfs.mask_path(str(tmp_path / "missing"))  # nothing to hide: no call
    (src1, tgt1, fs1, fl1, data1), (src2, tgt2, fs2, fl2) = fk.of("mount")[0], fk.of("mount")[1][:4]
    assert (src1, fs1, fl1, data1) == ("tmpfs", "tmpfs", k.MS_RDONLY, None) and tgt1.startswith("/proc/self/fd/")
    assert src2.startswith("/proc/self/fd/") and (fs2, fl2) == (None, k.MS_BIND)
    assert len(fk.calls) == 2


@pytest.mark.parametrize("st_flags,kept", [(0, 0), (2 | 8, k.MS_NOSUID | k.MS_NOEXEC), (2 | 4 | 8,
                                           k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC)])
def test_a_read_only_path_is_bound_then_remounted_keeping_the_locked_flags(monkeypatch, tmp_path, st_flags, kept):
    """A remount that dropped nosuid/nodev/noexec of a mount locked in a user namespace fails with EPERM."""
    fk = FakeKernel(monkeypatch, {"fstatfs": (0x9FA0, st_flags)})
    rootfs.readonly_path(str(tmp_path))
    assert fk.names() == ["mount", "fstatfs", "mount"]
    bind, remount = fk.of("mount")
    assert bind[0] == bind[1] and bind[3] == k.MS_BIND | k.MS_REC
    assert remount[0] is None and remount[3] == k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_REC | kept


def test_read_only_root_remounts_slash_with_its_flags(monkeypatch):
    fk = FakeKernel(monkeypatch, {"fstatfs": (0x58465342, 4)})
    rootfs.readonly_root()
    assert fk.calls[-1] == ("mount", (None, "/", None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_NODEV))


def test_a_failed_config_mount_names_source_and_destination(monkeypatch, root):
    from ocirun.plan import MountOp

    tmp, rootfd = root
    fk = FakeKernel(monkeypatch, {"openat2": _passthrough_openat2, "fstatfs": (0x01021994, 0)})
    fk.fail("mount", errno.ENODEV)
    op = MountOp(destination="/data", source="nfs0", fstype="nfs", flags=k.MS_NOSUID)
    with pytest.raises(rootfs.RootfsError) as e:
        rootfs.do_mount(rootfd, op, userns=False)
    assert str(e.value) == "mount nfs0 to /data: No such device"
    assert fk.of("mount")[0][2:4] == ("nfs", k.MS_NOSUID)
    assert not fk.of("mount_setattr")  # nothing applied to a mount that was never made


# --- identity --------------------------------------------------------------------------------------

def test_become_process_runs_the_one_order_that_works(monkeypatch):
    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr("os.umask", lambda m: 0)
    monkeypatch.setattr(security, "hand_stdio_to", lambda uid: fk.calls.append(("hand_stdio_to", (uid,))))
    proc = _process(noNewPrivileges=True, execCPUAffinity={"final": "0"},
                    capabilities={"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "effective": ["CAP_KILL"]})
    masks, _ = plan.capability_sets(proc, 40)
    chdirs = []
    security.become_process(proc, masks, 40, True, chdir=lambda p: (chdirs.append(p), fk.calls.append(("chdir", (p,)))))
    steps = []
    for name, args in fk.calls:
        label = f"prctl:{args[0]}" if name == "prctl" else name
        if not steps or steps[-1] != label:
            steps.append(label)
    assert steps == ["chdir", f"prctl:{k.PR_CAPBSET_DROP}", "hand_stdio_to", f"prctl:{k.PR_SET_KEEPCAPS}", "setgroups",
                     "setresgid", "setresuid", f"prctl:{k.PR_SET_KEEPCAPS}", "capset", f"prctl:{k.PR_CAP_AMBIENT}",
                     f"prctl:{k.PR_SET_NO_NEW_PRIVS}", "sched_setaffinity"]
    assert fk.of("sched_setaffinity") == [(0, {0})] and chdirs == ["/"]


def test_a_cwd_refused_to_root_is_entered_after_the_user_switch(monkeypatch):
    """Root squashed on NFS: EACCES as root, then chdir again as the user, before the capability sets."""
    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr("os.umask", lambda m: 0)
    monkeypatch.setattr(security, "hand_stdio_to", lambda uid: None)
    tries = []

    def chdir(p):
        tries.append([n for n in fk.names() if n in ("setresuid", "capset")])
        if len(tries) == 1:
            raise PermissionError(errno.EACCES, "Permission denied")

    masks, _ = plan.capability_sets(_process(), 40)
    security.become_process(_process(), masks, 40, True, chdir=chdir)
    assert tries == [[], ["setresuid"]]


@pytest.mark.parametrize("failing", ["setgroups", "setresgid", "setresuid"])
def test_a_failed_identity_switch_stops_the_sequence(monkeypatch, failing):
    fk = FakeKernel(monkeypatch)
    fk.fail(failing, errno.EPERM)
    monkeypatch.setattr("os.umask", lambda m: 0)
    with pytest.raises(PermissionError):
        security.set_user(_process(user={"uid": 1000, "gid": 100, "additionalGids": [5]}))
    order = ["prctl", "setgroups", "setresgid", "setresuid"]
    assert fk.names() == order[:order.index(failing) + 1]


def test_without_setgroups_the_groups_are_left_alone(monkeypatch):
    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr("os.umask", lambda m: 0)
    security.set_user(_process(), setgroups_allowed=False)
    assert "setgroups" not in fk.names() and fk.of("setresuid") == [(1000, 1000, 1000)]


def test_preflight_switches_effective_ids_only_and_always_switches_back(monkeypatch):
    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr("os.chdir", lambda p: None)
    monkeypatch.setattr("os.getcwd", lambda: "/")
    monkeypatch.setattr(security, "lookup_exec", lambda *a: (_ for _ in ()).throw(OSError(2, "no such program")))
    with pytest.raises(OSError, match="no such program"):
        security.preflight(_process(user={"uid": 1000, "gid": 100, "additionalGids": [7]}))
    assert fk.calls == [("setgroups", ([7],)), ("setegid", (100,)), ("seteuid", (1000,)), ("seteuid", (0,)),
                        ("setegid", (0,))]  # uid back first: only root may set the gid back


def test_preflight_for_root_changes_no_identity(monkeypatch):
    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr("os.chdir", lambda p: None)
    monkeypatch.setattr("os.getcwd", lambda: "/")
    monkeypatch.setattr(security, "lookup_exec", lambda *a: "/bin/true")
    assert security.preflight(_process(user={"uid": 0, "gid": 0})) == "/bin/true"
    assert fk.calls == []


def test_groups_that_setgroups_cannot_set_are_refused_before_any_switch(monkeypatch):
    fk = FakeKernel(monkeypatch)
    with pytest.raises(OSError, match="cannot set any additional groups in a rootless container"):
        security.preflight(_process(user={"uid": 1000, "gid": 100, "additionalGids": [7]}), setgroups_allowed=False)
    assert fk.calls == []


class _StdioOfPipes:
    """``os`` as security.py sees it, with fds 0-2 anonymous pipes of root's (the runner's stdio stays)."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def fstat(fd):
        return os.stat_result((stat.S_IFIFO | 0o600, 0, 0, 1, 0, 0, 0, 0, 0, 0))


@pytest.mark.parametrize("magic,chowned", [(k.PIPEFS_MAGIC, [0, 1, 2]), (0x01021994, [])])
def test_only_anonymous_pipes_of_stdio_are_handed_to_the_user(monkeypatch, magic, chowned):
    fk = FakeKernel(monkeypatch, {"fstatfs": (magic, 0)})
    monkeypatch.setattr(security, "os", _StdioOfPipes())
    security.hand_stdio_to(1000)
    assert fk.of("fchown") == [(fd, 1000, -1) for fd in chowned]


def test_a_stdio_chown_error_is_skipped_as_runc_skips_it_or_else_worded(monkeypatch):
    fk = FakeKernel(monkeypatch, {"fstatfs": (k.PIPEFS_MAGIC, 0)})
    monkeypatch.setattr(security, "os", _StdioOfPipes())
    fk.fail("fchown", errno.EINVAL)  # the uid is not mapped: left as it is
    security.hand_stdio_to(1000)
    assert len(fk.of("fchown")) == 3
    fk.fail("fchown", errno.EIO, when=lambda fd, uid, gid: fd == 1)
    with pytest.raises(OSError) as e:
        security.hand_stdio_to(1000)
    assert (e.value.errno, e.value.strerror) == (errno.EIO, "chown stdio fd 1 to uid 1000: Input/output error")


def test_rlimits_are_set_in_order_and_a_refusal_names_the_limit(monkeypatch):
    from ocirun.plan import RLIMITS, process_plan

    fk = FakeKernel(monkeypatch)
    proc = process_plan(_process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
                                          {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}])).rlimits
    security.apply_rlimits(proc)
    assert fk.of("setrlimit") == [(RLIMITS["RLIMIT_NOFILE"], 1024, 2048), (RLIMITS["RLIMIT_CORE"], 0, 0)]
    fk.fail("setrlimit", errno.EPERM, when=lambda res, soft, hard: res == RLIMITS["RLIMIT_CORE"])
    with pytest.raises(OSError) as e:
        security.apply_rlimits(proc)
    assert e.value.strerror == "setrlimit RLIMIT_CORE soft=0 hard=0: Operation not permitted"


def test_priorities_io_first_then_the_scheduler_and_a_refusal_names_the_field(monkeypatch):
    fk = FakeKernel(monkeypatch)
    proc = _process(ioPriority={"class": "IOPRIO_CLASS_RT", "priority": 3},
                    scheduler={"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"]})
    security.apply_priorities(proc)
    assert fk.names() == ["ioprio_set", "sched_setattr"]
    assert fk.of("ioprio_set") == [(1, 3)]
    assert fk.of("sched_setattr")[0][:4] == (1, 0x01, 0, 10)
    fk.fail("sched_setattr", errno.EPERM)
    with pytest.raises(OSError) as e:
        security.apply_priorities(proc)
    assert (e.value.errno, e.value.strerror) == (errno.EPERM, "process.scheduler SCHED_FIFO: Operation not permitted")


def test_cpu_affinity_prefers_final_over_initial(monkeypatch):
    from ocirun.sched import apply_cpu_affinity

    fk = FakeKernel(monkeypatch)
    apply_cpu_affinity(_process(execCPUAffinity={"initial": "0-1", "final": "1"}))
    apply_cpu_affinity(_process(execCPUAffinity={"initial": "0-1"}))
    assert fk.of("sched_setaffinity") == [(0, {1}), (0, {0, 1})]


# --- the console -----------------------------------------------------------------------------------

def test_console_slave_is_chowned_sized_sent_then_made_the_controlling_terminal(monkeypatch):
    import socket

    fk = FakeKernel(monkeypatch)
    dups = []
    monkeypatch.setattr("os.dup2", lambda a, b: dups.append(b))  # the test runner keeps its stdio
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        terminal.setup_console(theirs.detach(), {"height": 40, "width": 120}, bind=False, owner=1000)
        data, anc, _, _ = ours.recvmsg(256, socket.CMSG_SPACE(4))
        assert data.startswith(b"/dev/pts/") and anc  # the master went out with its name
        os.close(int.from_bytes(anc[0][2][:4], "little"))
    finally:
        ours.close()
    slave = fk.of("fchown")[0][0]
    assert fk.calls == [("fchown", (slave, 1000, -1)), ("set_window_size", (slave, 40, 120)),
                        ("set_controlling_terminal", (0,))]
    assert dups == [0, 1, 2]


def _ptys_open() -> list[str]:
    out = []
    for n in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{n}")
        except OSError:
            continue
        if target.startswith("/dev/pts/") or target == "/dev/ptmx":
            out.append(target)
    return sorted(out)


@pytest.mark.parametrize("err,raised", [(errno.EINVAL, None), (errno.EIO, "chown the terminal to uid 1000: ")])
def test_console_chown_failure_is_skipped_or_worded(monkeypatch, err, raised):
    import socket

    fk = FakeKernel(monkeypatch)
    fk.fail("fchown", err)
    monkeypatch.setattr("os.dup2", lambda a, b: None)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if raised:
            before = _ptys_open()
            sock_fd = theirs.detach()
            with pytest.raises(OSError) as e:
                terminal.setup_console(sock_fd, None, bind=False, owner=1000)
            assert e.value.strerror == raised + os.strerror(err)
            assert fk.names() == ["fchown"]
            # neither pty end nor the console socket is left open (the slave leaked before)
            assert _ptys_open() == before
            with pytest.raises(OSError):
                os.fstat(sock_fd)
        else:
            terminal.setup_console(theirs.detach(), None, bind=False, owner=1000)
            _, anc, _, _ = ours.recvmsg(256, socket.CMSG_SPACE(4))
            os.close(int.from_bytes(anc[0][2][:4], "little"))
            assert fk.names() == ["fchown", "set_controlling_terminal"]
    finally:
        ours.close()
        theirs.close()


# --- other processes ---------------------------------------------------------------------------------

def test_a_pid_is_signalled_through_its_pidfd_only_while_still_ours(monkeypatch):
    from ocirun.kernel import process

    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr(process, "HAVE_PIDFD", True)
    monkeypatch.setattr("os.close", lambda fd: fk.calls.append(("close", (fd,))))
    assert process.signal_pid(4242, 15, lambda pid: True)
    assert fk.calls == [("require_pidfd", (4242,)), ("pidfd_send_signal", (1001, 15)), ("close", (1001,))]
    fk.calls.clear()
    assert not process.signal_pid(4242, 15, lambda pid: False)  # reused meanwhile: no signal
    assert fk.names() == ["require_pidfd", "close"]
    fk.calls.clear()
    fk.fail("require_pidfd", errno.ESRCH)  # gone before the open
    assert not process.signal_pid(4242, 15, lambda pid: True)
    assert fk.names() == ["require_pidfd"]


def test_without_pidfds_kill_follows_the_check(monkeypatch):
    from ocirun.kernel import process

    fk = FakeKernel(monkeypatch)
    monkeypatch.setattr(process, "HAVE_PIDFD", False)
    assert process.signal_pid(4242, 9, lambda pid: True)
    assert fk.calls == [("kill", (4242, 9))]
    fk.fail("kill", errno.ESRCH)
    assert not process.signal_pid(4242, 9, lambda pid: True)


def test_execs_host_side_rlimits_go_through_prlimit_with_runcs_wording(monkeypatch):
    import resource

    from ocirun.exec import ExecFailed, _host_side_limits
    from ocirun.plan import RLIMITS

    fk = FakeKernel(monkeypatch)
    from ocirun.plan import process_plan

    proc = process_plan(_process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2**64 - 1}]))
    _host_side_limits(4242, proc)
    assert fk.of("prlimit") == [(4242, RLIMITS["RLIMIT_NOFILE"], (1024, resource.RLIM_INFINITY))]
    fk.fail("prlimit", errno.EPERM)
    with pytest.raises(ExecFailed, match="^unable to start container process: setrlimit RLIMIT_NOFILE soft=1024 "
                                         f"hard={2**64 - 1}: Operation not permitted$"):
        _host_side_limits(4242, proc)


@pytest.mark.parametrize("returns,message", [
    ({"ns_type": k.CLONE_NEWNET}, "is not a pid namespace"),
    ({"ns_type": OSError(errno.ENOTTY, "Inappropriate ioctl for device")}, "is not a namespace file"),
])
def test_a_namespace_path_of_the_wrong_kind_is_refused_naming_the_entry(monkeypatch, tmp_path, returns, message):
    from ocirun.errors import ConfigError
    from ocirun.validate import _check_ns_path

    FakeKernel(monkeypatch, returns)
    path = tmp_path / "ns"
    path.write_text("")
    with pytest.raises(ConfigError, match=f"^config.json: linux.namespaces\\[2\\].path: {path} {message}$"):
        _check_ns_path(2, "pid", str(path))


def test_a_namespace_path_of_the_right_kind_passes(monkeypatch, tmp_path):
    from ocirun.validate import _check_ns_path

    fk = FakeKernel(monkeypatch, {"ns_type": k.CLONE_NEWPID})
    (tmp_path / "ns").write_text("")
    _check_ns_path(0, "pid", str(tmp_path / "ns"))
    assert len(fk.of("ns_type")) == 1


# --- the fake itself ---------------------------------------------------------------------------------

def test_the_fake_replaces_every_recorded_call_and_restores_them(monkeypatch):
    """No recorded name reaches the kernel while the fake is in place (a stage driven on it must not
    reset the test runner's signals or load a seccomp filter into it)."""
    from ocirun.kernel import fake

    real = {(m.__name__, n): getattr(m, n) for m, names in fake.RECORDED.items() for n in names}
    names = [n for _, n in real]
    assert len(names) == len(set(names))  # one name, one call: ``names()`` and ``of()`` are unambiguous
    with monkeypatch.context() as mp:
        fk = FakeKernel(mp)
        for (module, name), func in real.items():
            assert getattr(__import__(module, fromlist=[name]), name) is not func, name
        from ocirun.seccomp import load

        class Filt:  # what load reads of a CompiledFilter
            bpf, flags = b"\0" * 8, 0

        assert load(Filt()) is None and fk.names() == ["set_mode_filter"]
    for (module, name), func in real.items():
        assert getattr(__import__(module, fromlist=[name]), name) is func
