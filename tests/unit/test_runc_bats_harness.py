"""The runc bats harness's TAP parsing, failure summaries, command lines and skip logic.

Synthetic TAP and temporary directories only: no runc checkout, no network, no root.
"""

import os
import shlex

from conformance import runc_bats as rb

# What bats 1.8's TAP formatter prints for a file with a pass, a failure of helpers.bash's runc()
# wrapper, a skip with and without a reason, and a test killed by bats' test timeout.
BATS_TAP = """1..5
ok 1 runc run [tty ptsname]
not ok 2 runc exec --user
# (in test file exec.bats, line 125)
#   `[ "$status" -eq 0 ]' failed
# ocirun spec  (status=0):
#
# ocirun run -d --console-socket /tmp/x/tty/sock test_busybox (status=0):
#
# ocirun exec --user 1000:1000 test_busybox id (status=1):
# ocirun: exec: setgroups: Operation not permitted
# second line of output
ok 3 runc run (hugetlb) # skip test requires cgroups_hugetlb
ok 4 checkpoint --pre-dump # skip
not ok 5 checkpoint --lazy-pages and restore # timeout after 180s
# (in test file checkpoint.bats, line 230)
"""


def test_parse_points_plan_and_results():
    plan, tests = rb.parse_bats_tap(BATS_TAP, "exec.bats")
    assert plan == 5
    assert [(t.number, t.result) for t in tests] == [(1, "ok"), (2, "fail"), (3, "skip"), (4, "skip"), (5, "fail")]
    assert tests[0].name == "runc run [tty ptsname]"
    assert tests[2].name == "runc run (hugetlb)" and tests[2].reason == "test requires cgroups_hugetlb"
    assert tests[3].name == "checkpoint --pre-dump" and tests[3].reason == "skipped"
    assert tests[1].key == "exec.bats: runc exec --user"
    assert rb.counts(tests) == (1, 2, 2)
    assert rb.summary_line(tests) == "1 passed, 2 failed, 2 skipped"


def test_failure_diagnostics_attach_to_the_failing_test_only():
    _plan, tests = rb.parse_bats_tap(BATS_TAP, "exec.bats")
    assert tests[0].diagnostics == []
    assert tests[1].diagnostics[0] == "(in test file exec.bats, line 125)"
    assert "ocirun: exec: setgroups: Operation not permitted" in tests[1].diagnostics


def test_failure_reason_is_the_failing_call_and_assertion():
    _plan, tests = rb.parse_bats_tap(BATS_TAP, "exec.bats")
    assert tests[1].reason == ("ocirun exec (status=1): ocirun: exec: setgroups: Operation not permitted; "
                               '`[ "$status" -eq 0 ]` failed')


def test_timeout_directive_is_stripped_from_the_name():
    _plan, tests = rb.parse_bats_tap(BATS_TAP, "checkpoint.bats")
    assert tests[4].name == "checkpoint --lazy-pages and restore"
    assert tests[4].result == "fail" and tests[4].reason.startswith("timeout after 180s")


def test_carriage_returns_from_the_pty_are_dropped():
    plan, tests = rb.parse_bats_tap("1..1\r\nnot ok 1 a b\r\n#   `false' failed\r\n", "x.bats")
    assert plan == 1 and tests[0].name == "a b" and tests[0].reason == "`false` failed"


def test_summary_prefers_the_last_failing_call_over_later_successes():
    diag = ["(in test file update.bats, line 3)", "  `[ \"$status\" -eq 0 ]' failed",
            "runc run -d x (status=1):", "runc: bad thing", "runc state x (status=0):", "{"]
    assert rb.failure_summary(diag) == 'runc run (status=1): runc: bad thing; `[ "$status" -eq 0 ]` failed'


def test_summary_when_every_call_succeeded_shows_the_last_output():
    diag = ["  `[[ \"${output}\" == *\"ro,\"* ]]' failed", "runc exec x cat /proc/mounts (status=0):", "rw,foo"]
    assert rb.failure_summary(diag) == 'runc exec (status=0): rw,foo; `[[ "${output}" == *"ro,"* ]]` failed'


def test_summary_is_bounded():
    assert len(rb.failure_summary(["  `" + "x" * 500 + "' failed"], limit=80)) == 80


def test_tests_missing_from_the_plan_count_as_failures():
    tests = rb.complete_plan("a.bats", 3, [rb.BatsTest("a.bats", 1, "one", "ok")], True, None)
    assert [(t.number, t.result) for t in tests] == [(1, "ok"), (2, "fail"), (3, "fail")]
    assert tests[1].reason == "not run: timeout"
    crashed = rb.complete_plan("a.bats", None, [], False, 1)
    assert len(crashed) == 1 and crashed[0].result == "fail"
    assert rb.complete_plan("a.bats", None, [], False, 0) == []


def test_skips_cleanly_without_a_checkout(tmp_path, capsys):
    assert rb.main(["--runc-src", str(tmp_path / "nope")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("skipped: runc source dir")
    co, why = rb.find_checkout(None)
    assert co is None and why.startswith("skipped: no --runc-src DIR given")


def test_a_dir_without_the_suite_is_skipped(tmp_path):
    co, why = rb.find_checkout(str(tmp_path))
    assert co is None and "no tests/integration/helpers.bash" in why


def test_finds_a_checkout_and_its_bats_files(tmp_path):
    integ = tmp_path / "tests" / "integration"
    integ.mkdir(parents=True)
    (integ / "helpers.bash").write_text("")
    (integ / "version.bats").write_text("")
    (integ / "exec.bats").write_text("")
    (tmp_path / "contrib" / "cmd").mkdir(parents=True)
    (tmp_path / "vendor").mkdir()
    (tmp_path / "go.mod").write_text("module x\n")
    (tmp_path / "VERSION").write_text("1.1.5\n")
    co, why = rb.find_checkout(str(tmp_path))
    assert why == "" and co.version == "1.1.5" and co.files == ["exec.bats", "version.bats"]
    assert co.integration == str(integ)
    (tmp_path / "vendor").rmdir()
    co, why = rb.find_checkout(str(tmp_path))
    assert co is None and "lacks vendor" in why


def test_bats_command_runs_under_script_with_a_report_file():
    cmd = rb.under_terminal(rb.bats_command("exec.bats", "/w/report", "user"))
    assert cmd[:4] == ["script", "--quiet", "--return", "--command"] and cmd[-1] == "/dev/null"
    inner = shlex.split(cmd[4])
    assert inner == ["bats", "--tap", "--report-formatter", "tap", "--output", "/w/report",
                     "--filter", "user", "exec.bats"]
    assert "--filter" not in rb.bats_command("exec.bats", "/w/report")


def test_suite_env_sets_the_runtime_tmpdir_and_criu():
    base = {"PATH": "/usr/bin", "RUNC_USE_SYSTEMD": "1", "HOME": "/root", "BATS_TEST_TIMEOUT": "60"}
    env = rb.suite_env("/x/ocirun", "/w/f", "/w/criu-bin", base=base)
    assert env["RUNC"] == "/x/ocirun" and env["TMPDIR"] == "/w/f/tmp"
    assert env["PATH"] == "/w/criu-bin:/usr/bin" and env["HOME"] == "/root"
    # the systemd driver is not what is measured; bats' test timeout breaks events.bats' bare `wait`
    assert "RUNC_USE_SYSTEMD" not in env and "BATS_TEST_TIMEOUT" not in env
    assert rb.suite_env("/x/runc", "/w/f", None, base={"PATH": "/bin"})["PATH"] == "/bin"


def test_the_runtime_is_called_as_runc(tmp_path):
    """help.bats and version.bats match the program's name: ocirun runs through a link named runc."""
    target = tmp_path / "ocirun"
    target.write_text("")
    link = rb.runtime_named_runc(str(target), str(tmp_path / "w"))
    assert os.path.basename(link) == "runc" and os.path.realpath(link) == str(target)
    assert rb.runtime_named_runc(str(target), str(tmp_path / "w")) == link  # a second file reuses it
    assert rb.runtime_named_runc("/usr/sbin/runc", str(tmp_path / "w")) == "/usr/sbin/runc"


def test_go_builds_are_offline_vendored_and_seccomp_tagged(tmp_path):
    env = rb.go_build_env(str(tmp_path))
    assert env["GOFLAGS"] == "-mod=vendor" and env["GOPROXY"] == "off" and env["CGO_ENABLED"] == "1"
    assert env["GOCACHE"].startswith(str(tmp_path))
    assert rb.go_build_command("recvtty", "/c/recvtty") == [
        "go", "build", "-tags", "seccomp", "-o", "/c/recvtty", "./contrib/cmd/recvtty"]


def test_debootstrap_makes_a_bookworm_minbase():
    assert rb.debootstrap_command("/t") == ["debootstrap", "--variant=minbase", "bookworm", "/t",
                                            "http://deb.debian.org/debian"]


def test_busybox_tree_has_applets_and_no_proc_or_sys(tmp_path):
    fake = tmp_path / "busybox"
    fake.write_text("#!/bin/sh\necho '[ sh ls cat'\n")
    fake.chmod(0o755)
    root = tmp_path / "rootfs"
    rb.make_busybox_tree(str(root), str(fake))
    assert os.path.isfile(root / "bin" / "busybox")
    assert os.readlink(root / "bin" / "sh") == "busybox" and os.path.islink(root / "bin" / "[")
    assert not (root / "proc").exists() and not (root / "sys").exists()
    assert "nobody:x:65534" in (root / "etc" / "passwd").read_text()
    assert oct((root / "tmp").stat().st_mode & 0o7777) == "0o1777"


def test_the_cache_may_not_be_inside_the_repository(tmp_path, capsys, monkeypatch):
    integ = tmp_path / "runc" / "tests" / "integration"
    integ.mkdir(parents=True)
    (integ / "helpers.bash").write_text("")
    (integ / "a.bats").write_text("")
    for d in ("contrib/cmd", "vendor"):
        (tmp_path / "runc" / d).mkdir(parents=True)
    (tmp_path / "runc" / "go.mod").write_text("")
    monkeypatch.setattr(rb, "missing_tools", lambda *a: [])
    monkeypatch.setattr(rb.os, "geteuid", lambda: 0)
    rc = rb.main(["--runc-src", str(tmp_path / "runc"), "--cache", os.path.join(rb.REPO, "cache")])
    assert rc == 2 and "must be outside this repository" in capsys.readouterr().err


def test_suite_cgroups_are_picked_by_name_only(tmp_path):
    before = {"/cg/memory", "/cg/memory/other"}
    after = before | {"/cg/memory/test_busybox", "/cg/memory/someone-else", "/cg/cpu/runc-cgroups-integration-test",
                      "/cg/cpu/runc-cgroups-integration-test/test-cgroup-1", "/cg/memory/ct1"}
    assert rb.suite_cgroups(before, after) == ["/cg/cpu/runc-cgroups-integration-test", "/cg/memory/ct1",
                                               "/cg/memory/test_busybox"]


def test_state_dirs_are_setup_bundles_roots(tmp_path):
    (tmp_path / "tmp" / "bats-run-abc" / "runc.XYZ" / "state").mkdir(parents=True)
    (tmp_path / "tmp" / "bats-run-abc" / "other").mkdir(parents=True)
    assert rb.state_dirs(str(tmp_path)) == [str(tmp_path / "tmp" / "bats-run-abc" / "runc.XYZ" / "state")]


def test_table_and_regressions_compare_two_runtimes():
    mine = [rb.BatsTest("a.bats", 1, "one", "ok"), rb.BatsTest("a.bats", 2, "two", "fail", "ocirun run (status=1): x")]
    theirs = [rb.BatsTest("a.bats", 1, "one", "fail", "runc run (status=1): y"), rb.BatsTest("a.bats", 2, "two", "ok")]
    table = rb.format_table(mine, theirs, ("ocirun", "runc")).splitlines()
    assert table[0].split()[:3] == ["test", "ocirun", "runc"]
    assert "(runc) runc run (status=1): y" in table[2] and table[3].split()[2:4] == ["FAIL", "ok"]
    assert [(m.name, t.result) for m, t in rb.regressions(mine, theirs)] == [("two", "ok")]


def test_stall_breaking_spares_bats_but_finds_runtime_commands(tmp_path):
    """bats' own command line names the work dir too; only runtime calls (--root in it) are fair game."""
    import subprocess

    script = "echo ready; read x"
    runtime_call = subprocess.Popen(["sh", "-c", script, "ocirun", "--root", str(tmp_path / "state")],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    bats_like = subprocess.Popen(["sh", "-c", script, "bats", "--output", str(tmp_path / "report")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for p in (runtime_call, bats_like):  # both shells are running, not just forked
            assert p.stdout.readline() == b"ready\n"
        everything = rb.processes_under(str(tmp_path))
        runtime_only = rb.processes_under(str(tmp_path), bats_too=False)
        assert runtime_call.pid in everything and bats_like.pid in everything
        assert runtime_call.pid in runtime_only and bats_like.pid not in runtime_only
    finally:
        for p in (runtime_call, bats_like):
            p.communicate(b"\n")


def test_session_members_finds_orphans_of_the_pty_session():
    """script runs bats as leader of a new session; its orphans (recvtty, sleepers) keep that session."""
    import subprocess

    r, w = os.pipe()  # the inner shell blocks on it (a background job's stdin is /dev/null; bash: fd > 9)
    leader = subprocess.Popen(["bash", "-c", f"bash -c 'echo ready; read x <&{r}' & wait"], pass_fds=(r,),
                              start_new_session=True, stdout=subprocess.PIPE)
    os.close(r)
    try:
        assert leader.stdout.readline() == b"ready\n"
        members = rb.session_members([leader.pid])
        assert leader.pid in members and len(members) == 2
        assert rb.child_pids(os.getpid()).count(leader.pid) == 1
        assert rb.child_pids(leader.pid) == [m for m in members if m != leader.pid]
        assert rb.descendants(os.getpid()).count(members[-1 if members[0] == leader.pid else 0]) == 1
    finally:
        os.write(w, b"\n")
        os.close(w)
        leader.communicate()


def test_container_processes_are_found_by_the_mount_on_their_root(tmp_path, monkeypatch):
    """After pivot_root /proc/PID/root reads '/', so the bind of bundle/rootfs on '/' names the container."""
    work = str(tmp_path)
    tables = {
        "self": [["22", "1", "254:0", "/", "/", "rw", "-", "ext4", "/dev/vda", "rw"]],
        4242: [["1", "0", "254:0", f"{work}/tmp/bats-run-x/runc.y/bundle/rootfs", "/", "ro", "-", "ext4"],
               ["2", "1", "0:5", "/", "/proc", "rw", "-", "proc"]],
        4243: [["1", "0", "254:0", "/srv/other/rootfs", "/", "ro", "-", "ext4"]],
    }
    monkeypatch.setattr(rb, "_mountinfo_lines", lambda pid: tables[pid])
    assert rb.source_path(work) == os.path.realpath(work)
    assert rb.root_mount_source(4242).startswith(work + "/")
    assert rb.inside_path(rb.root_mount_source(4242), rb.source_path(work))
    assert not rb.inside_path(rb.root_mount_source(4243), rb.source_path(work))


def test_stray_cgroup_roots_are_new_empty_unmounted_dirs(tmp_path):
    """What helpers' `mkdir -p /sys/fs/cgroup/hugetlb/...` leaves on the tmpfs: only new, empty directories."""
    root = tmp_path / "cg"
    (root / "cpu").mkdir(parents=True)
    before = {str(root), str(root / "cpu")}
    (root / "hugetlb").mkdir()
    (root / "net_cls" / "x").mkdir(parents=True)  # not empty: someone's cgroup, left alone
    (root / "link").symlink_to(root / "cpu")
    assert rb.stray_cgroup_roots(before, str(root)) == [str(root / "hugetlb")]
