"""The runtime-tools harness's TAP parser and verdict logic, on synthetic TAP (no runtime-tools needed)."""

import json
import os
import stat

from conformance import runtime_tools as rt

# A YAML diagnostic block as runtime-tools prints it (JSON inside '---' / '...').
DIAG_OK = """  ---
  {
    "actual": "/",
    "expected": "/"
  }
  ..."""


def test_parse_plain_points_and_plan():
    tap = rt.parse_tap("TAP version 13\nok 1 - first\nnot ok 2 - second\nok 3 - third\n1..3\n")
    assert [p.ok for p in tap.points] == [True, False, True]
    assert [p.number for p in tap.points] == [1, 2, 3]
    assert tap.points[1].description == "second"
    assert tap.streams[0].plan == (1, 3)
    assert (tap.passed, tap.failed, tap.skipped) == (2, 1, 0)


def test_skip_and_todo_directives():
    tap = rt.parse_tap("TAP version 13\n"
                       "ok 1 # SKIP linux.maskedPaths not set\n"
                       "not ok 2 # TODO not implemented yet\n"
                       "ok 3 - real # skip later\n"
                       "1..3\n")
    p1, p2, p3 = tap.points
    assert p1.skipped and p1.reason == "linux.maskedPaths not set"
    assert p2.todo and not p2.failed
    assert p3.skipped and p3.description == "real"
    assert (tap.passed, tap.failed, tap.skipped, tap.todo) == (0, 0, 2, 1)


def test_yaml_block_attaches_to_previous_point():
    tap = rt.parse_tap("TAP version 13\nok 1 - wd\n" + DIAG_OK + "\n1..1\n")
    assert json.loads(tap.points[0].yaml) == {"actual": "/", "expected": "/"}
    assert tap.orphan_yaml == []


def test_yaml_block_lines_that_look_like_tap_are_not_points():
    text = "TAP version 13\nok 1 - x\n  ---\n  {\n    \"stderr\": \"not ok 5\\nok\"\n  }\n  ...\n1..1\n"
    tap = rt.parse_tap(text)
    assert len(tap.points) == 1


def test_several_streams_and_diagnostics():
    text = "TAP version 13\n# expect: 1, actual: 1\nok 1 - a\n1..1\nTAP version 13\n1..0\n"
    tap = rt.parse_tap(text)
    assert len(tap.streams) == 2
    assert tap.diagnostics == ["expect: 1, actual: 1"]
    assert rt.verdict(tap, 0) == (rt.PASS, "")


def test_bail_out_fails():
    tap = rt.parse_tap("TAP version 13\nok 1 - a\nBail out! no rootfs\n")
    assert tap.bail_out == "no rootfs"
    v, why = rt.verdict(tap, 0)
    assert v == rt.FAIL and "no rootfs" in why


def test_verdict_pass():
    tap = rt.parse_tap("TAP version 13\nok 1 - a\nok 2 # SKIP b\n1..2\n")
    assert rt.verdict(tap, 0) == (rt.PASS, "")


def test_verdict_not_ok_reports_first_failing_assertion():
    tap = rt.parse_tap("TAP version 13\nok 1 - a\nnot ok 2 - pids limit is set correctly\n"
                       "  ---\n  {\n    \"actual\": 0,\n    \"expected\": 100\n  }\n  ...\n"
                       "not ok 3 - later\n1..3\n")
    v, why = rt.verdict(tap, 0)
    assert v == rt.FAIL
    assert why.startswith("not ok 2 - pids limit is set correctly")
    assert "expected: 100" in why and "actual: 0" in why


def test_verdict_prefers_stderr_over_generic_error():
    tap = rt.parse_tap("TAP version 13\nnot ok 1 - create with '--pid-file' option works\n"
                       "  ---\n  {\n    \"error\": \"exit status 1\",\n"
                       "    \"stderr\": \"time=\\\"t\\\" level=error msg=\\\"container not running\\\"\\n\"\n"
                       "  }\n  ...\n1..1\n")
    v, why = rt.verdict(tap, 0)
    assert v == rt.FAIL and "container not running" in why


def test_todo_failure_does_not_fail():
    tap = rt.parse_tap("TAP version 13\nnot ok 1 # TODO later\nok 2 - b\n1..2\n")
    assert rt.verdict(tap, 0)[0] == rt.PASS


def test_failure_only_in_orphan_yaml_block():
    # How runtime-tools reports hook failures: a diagnostic block, no test point, plan 1..0.
    text = ("TAP version 13\n  ---\n  {\n    \"error\": \"Hooks MUST be called in the listed order\\n"
            "Refer to: https://example/config.md\"\n  }\n  ...\n1..0\n")
    tap = rt.parse_tap(text)
    assert tap.points == [] and len(tap.orphan_yaml) == 1
    v, why = rt.verdict(tap, 0)
    assert v == rt.FAIL
    assert why == "diagnostic: Hooks MUST be called in the listed order"


def test_orphan_yaml_without_error_is_not_a_failure():
    tap = rt.parse_tap("TAP version 13\n  ---\n  {\n    \"error\": \"\"\n  }\n  ...\n1..0\n")
    assert rt.verdict(tap, 0) == (rt.PASS, "")


def test_yaml_error_also_parses_plain_yaml():
    assert rt.yaml_error("error: boom") == "boom"
    assert rt.yaml_error("error: ''") == ""
    assert rt.yaml_error('{"reference": "x"}') == ""


def test_failure_only_through_exit_status():
    tap = rt.parse_tap("TAP version 13\nok 1 - a\n1..1\n")
    v, why = rt.verdict(tap, 1, stderr="failed to create the container\n"
                        "time=\"t\" level=error msg=\"runc create failed: unable to apply caps\"\nexit status 1\n")
    assert v == rt.FAIL
    assert why == "exit status 1: runc create failed: unable to apply caps"


def test_exit_status_without_tap():
    v, why = rt.verdict(rt.parse_tap(""), 2, stderr="exit status 1\n")
    assert v == rt.FAIL and why == "exit status 2: exit status 1"


def test_clean_exit_without_tap_passes():
    # *_fail tests print nothing when the runtime correctly refuses the config
    assert rt.verdict(rt.parse_tap(""), 0) == (rt.PASS, "")


def test_timeout_fails_even_when_points_passed():
    tap = rt.parse_tap("TAP version 13\nok 1 - a\n")
    v, why = rt.verdict(tap, None, timed_out=True)
    assert v == rt.FAIL and why == "timeout"


def test_timeout_mentions_first_failure():
    tap = rt.parse_tap("TAP version 13\nnot ok 1 - a\n")
    v, why = rt.verdict(tap, None, timed_out=True)
    assert v == rt.FAIL and why.startswith("timeout; first failure: not ok 1 - a")


def test_truncated_stream_fails():
    tap = rt.parse_tap("TAP version 13\n1..5\nok 1 - a\nok 2 - b\n")
    v, why = rt.verdict(tap, 0)
    assert v == rt.FAIL and why == "planned 5 tests, ran 2"


def test_all_skipped_is_skip():
    tap = rt.parse_tap("TAP version 13\n1..1\nok 1 # SKIP POSIX-specific test\n")
    assert rt.verdict(tap, 0) == (rt.SKIP, "POSIX-specific test")


def test_skip_all_plan():
    tap = rt.parse_tap("TAP version 13\n1..0 # SKIP no cgroup v2\n")
    assert rt.verdict(tap, 0) == (rt.SKIP, "no cgroup v2")


def test_summary_line_and_table():
    runs = [rt.TestRun("a", rt.PASS, "", 3, 0, 1, 0, 0, False, 0.5),
            rt.TestRun("b", rt.FAIL, "not ok 1 - x", 0, 1, 0, 0, 0, False, 0.2),
            rt.TestRun("c", rt.SKIP, "skipped", 0, 0, 1, 0, 0, False, 0.1)]
    assert rt.summary_line(runs).endswith("1 passed, 1 failed")
    table = rt.format_table(runs)
    assert "FAIL" in table and "not ok 1 - x" in table


def test_find_build_reports_what_is_missing(tmp_path):
    build, why = rt.find_build(None)
    assert build is None and why.startswith("skipped:")
    build, why = rt.find_build(str(tmp_path / "nope"))
    assert build is None and "not found" in why
    build, why = rt.find_build(str(tmp_path))
    assert build is None and "validation/*/*.t" in why and "runtimetest" in why


def test_find_build_finds_executables(tmp_path):
    for rel in ("runtimetest", "validation/create/create.t", "validation/kill/kill.t"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("#!/bin/sh\n")
        p.chmod(0o755)
    (tmp_path / f"rootfs-{rt.go_arch()}.tar.gz").write_bytes(b"")
    build, why = rt.find_build(str(tmp_path))
    assert why == ""
    assert [rt.test_name(t) for t in build.tests] == ["create", "kill"]


def test_main_without_build_prints_one_line_and_exits_0(capsys, tmp_path):
    assert rt.main(["--runtime-tools", str(tmp_path / "missing"), "--runtime", "runc"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("skipped:")


def test_mounts_under_parses_mountinfo(tmp_path):
    mi = tmp_path / "mountinfo"
    base = os.path.realpath(tmp_path)
    mi.write_text(
        f"1 0 0:1 / / rw - ext4 /dev/vda rw\n"
        f"2 1 0:2 / {base}/w/b rw - ext4 /dev/vda rw\n"
        f"3 2 0:3 / {base}/w/b/proc rw - proc proc rw\n"
        f"4 2 0:4 / {base}/w/with\\040space rw - tmpfs tmpfs rw\n"
        f"5 1 0:5 / {base}/wx rw - tmpfs tmpfs rw\n")
    got = rt.mounts_under(f"{base}/w", str(mi))
    assert got[0] == f"{base}/w/b/proc"
    assert set(got) == {f"{base}/w/b", f"{base}/w/b/proc", f"{base}/w/with space"}


def test_wrapper_adds_root_and_rewrites_oci_version(tmp_path):
    import subprocess
    fake = tmp_path / "fake-runtime"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text('{"ociVersion": "1.3.0", "process": {}}')
    wrapper = tmp_path / "runtime"
    rt.write_wrapper(str(wrapper), str(fake), str(tmp_path / "state"), "1.0.2")
    assert os.stat(wrapper).st_mode & stat.S_IXUSR
    out = subprocess.run([str(wrapper), "create", "--bundle", str(bundle), "id1"],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["--root", str(tmp_path / "state"), "create", "--bundle", str(bundle), "id1"]
    assert json.loads((bundle / "config.json").read_text())["ociVersion"] == "1.0.2"
