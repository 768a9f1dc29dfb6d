"""Rootfs and mounts: options, bind, masked and read-only paths, devices, symlink escapes."""
import os
import shutil

import pytest

pytestmark = pytest.mark.root


def test_mounts_in_order_with_options(oci, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("host file\n")

    def mounts(spec):
        spec["mounts"] += [
            {"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "noexec", "mode=700"]},
            {"destination": "/scratch/inner", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
            {"destination": "relative", "type": "tmpfs", "source": "tmpfs"},
        ]
    proc = oci.sh("cat /data/f; touch /data/x 2>&1; grep -E ' /(data|scratch|scratch/inner|relative) ' "
                  "/proc/self/mountinfo; stat -c %a /scratch", spec_edit=mounts)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("host file\n")
    assert "Read-only file system" in out
    lines = {line.split()[4]: line for line in out.splitlines() if line.count(" ") > 5}
    assert "ro" in lines["/data"].split()[5].split(",") and "nosuid" in lines["/data"].split()[5]
    assert "noexec" in lines["/scratch"].split()[5]
    # /scratch/inner was mounted after /scratch: its parent mount id is /scratch's
    assert lines["/scratch/inner"].split()[1] == lines["/scratch"].split()[0]
    assert "/relative" in lines
    assert out.strip().endswith("700")
    assert not (src / "x").exists()


def test_default_devices_and_links(oci):
    proc = oci.sh("for d in null zero full random urandom tty; do stat -c '%n %t:%T %F' /dev/$d; done; "
                  "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; echo x > /dev/null && echo ok")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name, dev in (("null", "1:3"), ("zero", "1:5"), ("full", "1:7"), ("random", "1:8"),
                      ("urandom", "1:9"), ("tty", "5:0")):
        assert f"/dev/{name} {dev} character special file" in out
    assert "/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\npts/ptmx\nok" in out


def test_linux_devices_created_with_mode_and_owner(oci):
    def devices(spec):
        spec["linux"]["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                                     "fileMode": 0o600, "uid": 7, "gid": 8},
                                    {"path": "/dev/fifo0", "type": "p"}]
    proc = oci.sh("stat -c '%t:%T %a %u %g %F' /dev/mynull /dev/fifo0; echo w", spec_edit=devices)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "1:3 600 7 8 character special file"
    assert lines[1].endswith("fifo")
    assert lines[2] == "w"


def test_device_cgroup_allows_only_defaults_without_resources(oci):
    """No ``linux.resources`` at all still gets runc's device allowlist: the defaults open, a device node the
    container makes itself (CAP_MKNOD) does not (an absent list once meant every host device)."""
    def edit(spec):
        spec["linux"].pop("resources", None)
        for s in ("bounding", "effective", "permitted"):
            spec["process"]["capabilities"][s].append("CAP_MKNOD")
    proc = oci.sh("mknod /dev/lc c 10 237 && echo made; head -c0 /dev/lc && echo opened; "
                  "head -c1 /dev/zero | wc -c", spec_edit=edit)
    assert proc.stdout.splitlines() == ["made", "1"], (proc.stdout, proc.stderr)
    assert "Operation not permitted" in proc.stderr


def test_linux_devices_node_is_not_an_allow_rule(oci):
    """A node listed in ``linux.devices`` is created, but opening it is up to the device rules: with
    ``resources.devices`` = [deny rwm] and /dev/kmsg listed, the open is refused.  runc 1.1.5, same
    bundle: "sh: can't create /dev/kmsg: Operation not permitted" (ocirun used to append an allow rule
    for every linux.devices entry, so the open succeeded)."""
    def edit(spec):
        spec["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        spec["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644}]
    # ``true >`` opens for writing and writes nothing: no line reaches the host's kernel log even if it opens
    proc = oci.sh("stat -c '%t:%T' /dev/kmsg; true > /dev/kmsg && echo opened; true > /dev/null && echo null-ok",
                  spec_edit=edit)
    assert proc.stdout.splitlines() == ["1:b", "null-ok"], (proc.stdout, proc.stderr)
    assert "can't create /dev/kmsg: Operation not permitted" in proc.stderr


def test_linux_devices_node_usable_with_its_allow_rule(oci):
    """What engines send for ``--device``: the node in linux.devices *and* an allow rule for it."""
    def edit(spec):
        spec["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"},
                                                  {"allow": True, "type": "c", "major": 1, "minor": 11,
                                                   "access": "w"}]}
        spec["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644}]
    proc = oci.sh("true > /dev/kmsg && echo opened", spec_edit=edit)
    assert proc.stdout == "opened\n", (proc.stdout, proc.stderr)


def test_masked_and_readonly_paths(oci):
    proc = oci.sh("stat -c '%t:%T' /proc/keys; ls /sys/firmware | wc -l; sh -c 'echo 1 > /proc/sys/kernel/shmmni' 2>&1;"
                  " grep ' /proc/sys ' /proc/self/mountinfo")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "1:3"  # /proc/keys is /dev/null
    assert lines[1] == "0"  # /sys/firmware is an empty tmpfs
    assert "Read-only file system" in lines[2]
    assert "ro" in lines[3].split()[5].split(",")


def test_readonly_root(oci):
    proc = oci.sh("touch /newfile 2>&1; touch /tmp/x 2>&1; echo done")
    assert "Read-only file system" in proc.stdout


def test_symlink_destination_cannot_escape_rootfs(oci, tmp_path, rootfs):
    """A mount destination through an absolute symlink in the image resolves inside the rootfs."""
    import shutil

    own = tmp_path / "own-rootfs"
    shutil.copytree(rootfs, own, symlinks=True)
    escape = tmp_path / "host-target"
    escape.mkdir()
    os.symlink(str(escape), own / "evil")  # absolute host path: must be read as <rootfs>/<host path>
    os.symlink("../../../../../../..", own / "up")

    spec = oci.config(args=("sh", "-c", "grep -c ' /evil\\| /up' /proc/self/mountinfo || true"))
    spec["root"]["path"] = str(own)
    spec["mounts"] += [{"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"},
                       {"destination": "/up/y", "type": "tmpfs", "source": "tmpfs"}]
    oci.write(spec)
    proc = oci("run", "-b", oci.bundle, "c1")
    assert proc.returncode == 0, proc.stderr
    assert not (escape / "x").exists(), "mount destination followed a symlink out of the rootfs"
    assert not os.path.exists("/y")
    assert (own / str(escape).lstrip("/") / "x").is_dir()  # created inside the rootfs instead
    assert (own / "y").is_dir()


def test_no_host_fds_or_cwd_leak(oci):
    proc = oci.sh("ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; readlink /proc/1/cwd")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["0", "1", "2", "3"]  # 3 is ls's own directory fd
    assert lines[1] == "/"


def test_signal_state_reset_before_exec(oci):
    """Python ignores SIGPIPE/SIGXFSZ; the container's process must start with default dispositions."""
    proc = oci.run(oci.config(args=("grep", "-E", "SigBlk|SigIgn", "/proc/self/status")))
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[1] for line in proc.stdout.splitlines()] == ["0000000000000000"] * 2


def test_preserve_fds(oci, tmp_path):
    import subprocess

    from .conftest import OCIRUN

    f = tmp_path / "passed"
    f.write_text("from the caller\n")
    oci.write(oci.config(args=("sh", "-c", "cat <&3; ls /proc/self/fd | wc -l")))
    proc = subprocess.run(["/bin/sh", "-c", f'exec 3<"{f}" 4<"{f}"; exec "$0" "$@"', OCIRUN, "--root", oci.root,
                           "run", "--preserve-fds", "1", "-b", oci.bundle, "c1"],
                          capture_output=True, text=True, timeout=30)
    assert proc.stdout.splitlines() == ["from the caller", "5"], proc.stderr  # 0-2, 3, ls's own: not 4


def test_no_pivot(oci):
    spec = oci.config(args=("sh", "-c", "cat /proc/self/mountinfo | wc -l; echo ok"))
    oci.write(spec)
    proc = oci("run", "--no-pivot", "-b", oci.bundle, "c1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("ok\n")


def test_cgroup_mount_shows_own_cgroup(oci):
    proc = oci.sh("ls /sys/fs/cgroup; cat /sys/fs/cgroup/pids/pids.max 2>&1",
                  spec_edit=lambda s: s["linux"].setdefault("resources", {}).update({"pids": {"limit": 77}}))
    assert proc.returncode == 0, proc.stderr
    assert "memory" in proc.stdout.split() and proc.stdout.strip().endswith("77")


def _own_rootfs(oci, tmp_path):
    own = tmp_path / "own-rootfs"
    shutil.copytree(oci.rootfs, own, symlinks=True)
    return own


def test_readonly_dev_tmpfs_gets_its_devices_first(oci, tmp_path):
    """runc 1.1.5 mounts a read-only /dev tmpfs read-write, puts devpts, the devices and their links in,
    then makes it read-only; ocirun mounted it read-only at once and devpts failed ("Read-only file
    system")."""
    spec = oci.config(args=("sh", "-c", "test -c /dev/null && test -d /dev/pts && test -L /dev/fd && "
                                        "touch /dev/x; echo rc=$?"))
    for m in spec["mounts"]:
        if m["destination"] == "/dev":
            m["options"] = list(m.get("options") or []) + ["ro"]
    r = oci.run(spec)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "rc=1\n" and "Read-only file system" in r.stderr


def test_tmpfs_keeps_the_mode_of_the_directory_it_covers(oci, tmp_path):
    """runc 1.1.5: a tmpfs over a 0700 directory is 0700 (tmpfs's own default would be 1777).  With an
    explicit mode= runc still takes the directory's mode; ocirun keeps the config's (docs/compat.md)."""
    own = _own_rootfs(oci, tmp_path)
    for name in ("private", "given"):
        (own / name).mkdir(mode=0o700)
        os.chmod(own / name, 0o700)
    spec = oci.config(args=("stat", "-c", "%n %a", "/private", "/given"))
    spec["root"]["path"] = str(own)
    spec["mounts"] += [{"destination": "/private", "type": "tmpfs", "source": "tmpfs"},
                       {"destination": "/given", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}]
    r = oci.run(spec)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/private 700\n/given 755\n"


def test_dangling_symlink_destinations_and_a_device_path_with_a_slash(oci, tmp_path):
    """runc 1.1.5 follows a dangling symlink at a mount destination inside the rootfs and creates its
    target (a directory for a directory bind, a file for a file bind: securejoin), and takes
    linux.devices path "/dev/mynull/" as /dev/mynull.  ocirun failed the file case ("openat2: no such
    file or directory") and the device path."""
    own = _own_rootfs(oci, tmp_path)
    os.symlink("/nonexist/deeper", own / "dangle")
    os.symlink("../nofile", own / "dangfile")
    (tmp_path / "srcdir").mkdir()
    (tmp_path / "srcfile").write_text("x\n")
    spec = oci.config(args=("sh", "-c", "test -d /nonexist/deeper && cat /nofile && test -c /dev/mynull && "
                                        "echo ok"))
    spec["root"] = {"path": str(own), "readonly": False}
    spec["mounts"] += [{"destination": "/dangle", "type": "bind", "source": str(tmp_path / "srcdir"),
                        "options": ["bind"]},
                       {"destination": "/dangfile", "type": "bind", "source": str(tmp_path / "srcfile"),
                        "options": ["bind"]}]
    spec["linux"]["devices"] = [{"path": "/dev/mynull/", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    r = oci.run(spec)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "x\nok\n"
    assert (own / "nofile").is_file() and (own / "nonexist" / "deeper").is_dir()  # created inside the rootfs
