"""tests/hoststate.py: what the host guard counts as a change, on made-up snapshots (no root)."""
import dataclasses

from tests import hoststate as hs
from tests.hoststate import Mount, Proc

CGROOT = Mount("/sys/fs/cgroup", "/", "tmpfs", "tmpfs", "0:28", "rw,relatime", "rw,mode=755", "")
MEMORY = Mount("/sys/fs/cgroup/memory", "/", "cgroup", "cgroup", "0:32", "rw,relatime", "rw,memory", "")
ROOT = Mount("/", "/", "ext4", "/dev/vda", "254:0", "rw,relatime", "rw", "shared:1")
PYTEST = 500
CTX = hs.Context(pytest_pid=PYTEST, token="500-abc", own_paths=("/tmp/pytest-of-root/pytest-7",
                                                                 "/pytest-of-root/pytest-7"),
                 foreign_paths=("/tmp/pytest-of-root", "/pytest-of-root"),
                 vanishing_mounts_under=("/tmp/pytest-of-root",))


def snap(**changes) -> hs.Snapshot:
    base = hs.Snapshot(
        cgroup_listing={"memory": "dir", "unified": "dir"}, cgroup_readonly=False,
        mounts=(ROOT, CGROOT, MEMORY), dev_null="crw-rw-rw- 0:0 1:3",
        procs={1: Proc(1, 10, 0, "S"), 2: Proc(2, 10, 0, "S"), 400: Proc(400, 90, 1, "S"),
               PYTEST: Proc(PYTEST, 100, 400, "R"), 600: Proc(600, 50, 1, "S")},
        cgroups={"memory": frozenset({1, 400, 500, 600}), "memory/supervisor": frozenset(),
                 "memory/supervisor/cmd1": frozenset({600})},
        netns=None, links=("eth0", "lo"))
    return dataclasses.replace(base, **changes)


def with_procs(*procs: Proc, base=None) -> dict:
    out = dict((base or snap()).procs)
    out.update({p.pid: p for p in procs})
    return out


def test_nothing_changed_nothing_reported():
    assert hs.differences(snap(), snap(), CTX) == []


def test_the_systemd_damage_is_named_entry_by_entry():
    """What a systemd sharing the host's /sys/fs/cgroup superblock left behind (issue 11)."""
    after = snap(cgroup_readonly=True,
                 cgroup_listing={"memory": "dir", "unified": "dir", "cpu,cpuacct": "dir", "hugetlb": "dir",
                                 "net_cls,net_prio": "dir", "net_cls": "symlink -> net_cls,net_prio"},
                 mounts=(ROOT, dataclasses.replace(CGROOT, super_options="ro,nosuid,nodev,noexec,mode=755"),
                         MEMORY))
    assert hs.differences(snap(), after, CTX) == [
        "/sys/fs/cgroup is read-only (was read-write)",
        "/sys/fs/cgroup: new entry 'cpu,cpuacct' (dir)",
        "/sys/fs/cgroup: new entry 'hugetlb' (dir)",
        "/sys/fs/cgroup: new entry 'net_cls' (symlink -> net_cls,net_prio)",
        "/sys/fs/cgroup: new entry 'net_cls,net_prio' (dir)",
        "mount changed: /sys/fs/cgroup: super_options 'rw,mode=755' -> 'ro,nosuid,nodev,noexec,mode=755'",
    ]


def test_dev_null_and_listing_changes():
    after = snap(dev_null="-rw-r--r-- 0:0 0:0", cgroup_listing={"memory": "file"})
    assert hs.differences(snap(), after, CTX) == [
        "/sys/fs/cgroup: entry 'memory' is file (was dir)",
        "/sys/fs/cgroup: entry 'unified' removed (was dir)",
        "/dev/null is -rw-r--r-- 0:0 0:0 (was crw-rw-rw- 0:0 1:3)",
    ]


def test_mounts_added_removed_and_changed():
    leaked = Mount("/tmp/x", "/", "tmpfs", "leak", "0:99", "rw", "rw", "")
    old_run = Mount("/tmp/pytest-of-root/pytest-3/bundle/rootfs", "/", "tmpfs", "t", "0:70", "rw", "rw", "")
    before = snap(mounts=(ROOT, CGROOT, MEMORY, old_run))
    after = snap(mounts=(dataclasses.replace(ROOT, propagation="master:1"), CGROOT, leaked))
    assert hs.differences(before, after, CTX) == [
        "mount changed: /: propagation 'shared:1' -> 'master:1'",
        "mount removed: /sys/fs/cgroup/memory (cgroup cgroup [rw,relatime; rw,memory])",
        "mount added: /tmp/x (tmpfs leak [rw; rw])",
    ]     # an earlier run's mount under pytest's temporary root may go (pytest prunes those)


def test_two_identical_mounts_stacked_count_twice():
    leaked = Mount("/tmp/x", "/", "tmpfs", "leak", "0:99", "rw", "rw", "")
    before = snap(mounts=(ROOT, leaked))
    assert hs.differences(before, snap(mounts=(ROOT, leaked, leaked)), CTX) == [
        "mount added: /tmp/x (tmpfs leak [rw; rw])"]


def test_processes_the_run_left_behind_each_with_its_evidence():
    new = [
        Proc(701, 200, 1, "S", cmdline="sleep 1000", cgroups=("/ocirun-test/500-3",)),       # a container
        Proc(702, 201, 1, "S", cmdline="sleep 5", marker="500-abc"),                           # double-forked
        Proc(703, 202, PYTEST, "S", cmdline="cat"),                                            # still a child
        Proc(704, 203, 703, "S", cmdline="cat"),                                               # grandchild
        Proc(705, 204, 1, "S", cmdline="sleep 9", mount_roots=("/", "/pytest-of-root/pytest-7/rootfs")),
        Proc(706, 205, 1, "S", cmdline="conmon -r /usr/local/bin/ocirun -b /var/tmp/x"),
        Proc(707, 206, 1, "S", cmdline="/usr/bin/python3 -I -S -c from ocirun.stage.entry import main;main()"),
        Proc(708, 207, 1, "S", cmdline="sh", cwd="/tmp/pytest-of-root/pytest-7/test_a0"),
    ]
    after = snap(procs=with_procs(*new))
    assert hs.differences(snap(), after, CTX) == [
        "process left running: pid 701 'sleep 1000' (parent 1; cgroup /ocirun-test/500-3)",
        f"process left running: pid 702 'sleep 5' (parent 1; carries {hs.MARKER_VAR})",
        "process left running: pid 703 'cat' (parent 500; a child of pytest)",
        "process left running: pid 704 'cat' (parent 703; a child of pytest)",
        "process left running: pid 705 'sleep 9' (parent 1; root /pytest-of-root/pytest-7/rootfs)",
        "process left running: pid 706 'conmon -r /usr/local/bin/ocirun -b /var/tmp/x' "
        "(parent 1; runs /usr/local/bin/ocirun)",
        "process left running: pid 707 '/usr/bin/python3 -I -S -c from ocirun.stage.entry import main;main()' "
        "(parent 1; ocirun's init stage)",
        "process left running: pid 708 'sh' (parent 1; cwd /tmp/pytest-of-root/pytest-7/test_a0)",
    ]


def test_processes_that_are_not_the_runs():
    others = [
        Proc(801, 300, 1, "S", cmdline="cron"),                                         # no evidence
        Proc(802, 301, 600, "S", cmdline="ocirun state x", cgroups=("/ocirun-test/9-1",)),  # child of a daemon
        Proc(803, 302, 1, "S", cmdline="sleep 1000", marker="999-other"),               # another guarded run's
        Proc(804, 303, 1, "S", cmdline="sleep 1000", cgroups=("/ocirun-test/9-2",),
             mount_roots=("/tmp/pytest-of-root/pytest-6/rootfs",)),                     # another run's container
        Proc(805, 304, 1, "Z", cmdline="", cgroups=("/ocirun-test/500-1",)),            # a zombie: gone with its parent
        Proc(2000, 305, 2, "I", cmdline=""),                                            # a kernel thread
        Proc(400, 90, 1, "S", cmdline="ocirun"),                                        # there before: pytest's parent
    ]
    assert hs.differences(snap(), snap(procs=with_procs(*others)), CTX) == []


def test_a_reused_pid_is_a_new_process():
    after = snap(procs=with_procs(Proc(600, 999, 1, "S", cmdline="sleep 1", marker="500-abc")))
    assert hs.differences(snap(), after, CTX) == [
        f"process left running: pid 600 'sleep 1' (parent 1; carries {hs.MARKER_VAR})"]


def test_cgroups_left_behind_only_when_empty_or_holding_the_runs_processes():
    before = snap()
    leaked = Proc(701, 200, 1, "S", cmdline="sleep 1000", cgroups=("/ocirun-test/500-3",))
    foreign = Proc(702, 200, 1, "S", cmdline="bash")
    cgroups = dict(before.cgroups)
    cgroups.update({
        "memory/ocirun-test": frozenset(), "memory/ocirun-test/500-1": frozenset(),
        "memory/ocirun-test/500-1/sub": frozenset(),                    # reported with its top
        "memory/ocirun-test/500-3": frozenset({701}),
        "memory/supervisor/cmd2": frozenset({702}),                     # a supervisor's, for another command
    })
    after = snap(procs=with_procs(leaked, foreign), cgroups=cgroups)
    assert hs.differences(before, after, CTX) == [
        "process left running: pid 701 'sleep 1000' (parent 1; cgroup /ocirun-test/500-3)",
        "cgroup left behind: /sys/fs/cgroup/memory/ocirun-test (holds pid 701, 3 more below)",
    ]
    cgroups = dict(after.cgroups, **{"memory/ocirun-test/500-3": frozenset()})
    assert hs.differences(before, snap(cgroups=cgroups), CTX) == [
        "cgroup left behind: /sys/fs/cgroup/memory/ocirun-test (empty, 3 more below)"]


def test_cgroups_removed():
    before = snap()
    # a supervisor's cgroup for a command that ended, and then its parent too: their processes exited
    assert hs.differences(before, snap(cgroups={"memory": frozenset({1}), "memory/supervisor": frozenset()}),
                          CTX) == []
    assert hs.differences(before, snap(cgroups={"memory": frozenset({1})}), CTX) == []
    # an idle cgroup that was there before the run: something in the run removed it
    idle = dict(before.cgroups, **{"memory/idle": frozenset(), "memory/idle/sub": frozenset()})
    assert hs.differences(snap(cgroups=idle), before, CTX) == [
        "cgroup removed: /sys/fs/cgroup/memory/idle (was empty)"]
    # ... unless the tests name it: an earlier run's leftover that this run's cleanup removed
    leftover = dict(before.cgroups, **{"memory/ocirun-test": frozenset()})
    assert hs.differences(snap(cgroups=leftover), before, CTX) == []


def test_network_namespaces_and_interfaces():
    assert hs.differences(snap(), snap(netns=(), links=("eth0", "lo", "veth1a2b")), CTX) == [
        "/run/netns created (holds [])", "network interface added: veth1a2b"]
    assert hs.differences(snap(netns=("a",)), snap(netns=("b",), links=("lo",)), CTX) == [
        "network namespace added: /run/netns/b", "network namespace removed: /run/netns/a",
        "network interface removed: eth0"]


def test_parse_stat_counts_fields_after_the_last_parenthesis():
    line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 123456 0 0"
    assert hs.parse_stat(line) == (1, "S", 123456)
    assert hs.parse_stat("") is None and hs.parse_stat("12 (x) S 1") is None


def test_read_procs_reads_evidence_only_for_new_processes(tmp_path):
    def fake(pid, ppid, start, env=b"", cmd=b"sleep\x001000\x00"):
        d = tmp_path / str(pid)
        d.mkdir(exist_ok=True)
        (d / "stat").write_text(f"{pid} (x y) S {ppid} " + "0 " * 17 + f"{start} 0 0\n")
        (d / "environ").write_bytes(env)
        (d / "cmdline").write_bytes(cmd)
        (d / "cgroup").write_text("4:memory:/ocirun-test/1-1\n0::/\n")
        (d / "mountinfo").write_text("96 56 254:0 /tmp/r / ro - ext4 /dev/vda rw\n")

    fake(10, 1, 100)
    first = hs.Snapshot({}, False, (), "", hs.read_procs(proc=str(tmp_path)), {}, None, ())
    assert first.procs == {10: Proc(10, 100, 1, "S")}
    fake(11, 1, 200, env=f"A=1\0{hs.MARKER_VAR}=tok\0B=2\0".encode())
    fake(12, 2, 201)
    (tmp_path / "self").mkdir()
    procs = hs.read_procs(first, proc=str(tmp_path))
    assert procs[10] == Proc(10, 100, 1, "S") and procs[12] == Proc(12, 201, 2, "S")
    assert procs[11] == Proc(11, 200, 1, "S", cmdline="sleep 1000", cwd="", exe="",
                             cgroups=("/ocirun-test/1-1", "/"), marker="tok", mount_roots=("/tmp/r",))
