"""Run the opencontainers/runtime-tools validation executables against a runtime.

Usage::

    python -m conformance.runtime_tools --runtime-tools DIR --runtime PATH \
        [--timeout S] [--json OUT] [--filter REGEX] [--oci-version V]

``DIR`` is a runtime-tools checkout that the user built themselves (see
docs/conformance-runtime-tools.md): it must hold ``runtimetest``,
``rootfs-<arch>.tar.gz`` and ``validation/*/*.t``.  Without such a build the
harness prints one line saying what it needs and exits 0 (skipped), so CI
without runtime-tools stays green.

Each validation executable runs

* with ``RUNTIME`` pointing at a small generated wrapper that calls the runtime
  with its own ``--root`` (a per-test state dir; the suite names containers
  with random UUIDs and has no id-prefix option, so a private state root is how
  leftovers are found and removed) and, with ``--oci-version``, rewrites the
  bundle's ``ociVersion`` before ``create``/``run``;
* in its own temporary directory (cwd, and ``TMPDIR`` so bundles land there);
* under a timeout (the whole process group is killed when it expires).

Its TAP output is parsed (plan, ok / not ok, ``# SKIP`` / ``# TODO``
directives, YAML diagnostic blocks, ``Bail out!``) and a verdict derived; a test
also fails when it reports failure only through a YAML block that follows no
test point (how runtime-tools reports hook failures), only through a non-zero
exit status, or by timing out.  After each test the harness force-deletes every
container left in the private root, lazily unmounts anything still mounted
under the test's directory, removes the cgroups the suite creates and deletes
the directory.

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import dataclasses
import glob
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Iterable

PASS, FAIL, SKIP = "pass", "fail", "skip"

# --------------------------------------------------------------------------- TAP


@dataclasses.dataclass
class TapPoint:
    ok: bool
    number: int | None
    description: str
    directive: str | None = None  # "skip" | "todo" | None
    reason: str = ""
    yaml: str = ""  # raw text of the YAML block that follows the point, if any

    @property
    def skipped(self) -> bool:
        return self.directive == "skip"

    @property
    def todo(self) -> bool:
        return self.directive == "todo"

    @property
    def failed(self) -> bool:
        return not self.ok and not self.todo and not self.skipped


@dataclasses.dataclass
class TapStream:
    """One ``TAP version`` … section; a test may print several (nested runtimetest output)."""

    plan: tuple[int, int] | None = None
    plan_skip_reason: str = ""
    points: list[TapPoint] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TapResult:
    streams: list[TapStream] = dataclasses.field(default_factory=list)
    orphan_yaml: list[str] = dataclasses.field(default_factory=list)  # YAML blocks after no point
    diagnostics: list[str] = dataclasses.field(default_factory=list)
    bail_out: str | None = None

    @property
    def points(self) -> list[TapPoint]:
        return [p for s in self.streams for p in s.points]

    @property
    def passed(self) -> int:
        return sum(1 for p in self.points if p.ok and not p.skipped and not p.todo)

    @property
    def failed(self) -> int:
        return sum(1 for p in self.points if p.failed)

    @property
    def skipped(self) -> int:
        return sum(1 for p in self.points if p.skipped)

    @property
    def todo(self) -> int:
        return sum(1 for p in self.points if p.todo)

    @property
    def has_tap(self) -> bool:
        return bool(self.streams)


_VERSION_RE = re.compile(r"^TAP version \d+\s*$")
_PLAN_RE = re.compile(r"^1\.\.(\d+)\s*(?:#\s*(.*))?$")
_POINT_RE = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*)$")
_DIRECTIVE_RE = re.compile(r"(?:^|\s)#\s*(skip\w*|todo)\b\s*(.*)$", re.IGNORECASE)
_BAIL_RE = re.compile(r"^Bail out!\s*(.*)$")


def parse_tap(text: str) -> TapResult:
    """Parse TAP 12/13 text, tolerant of several concatenated streams and of stray lines."""
    res = TapResult()
    stream: TapStream | None = None
    last_point: TapPoint | None = None
    lines = text.splitlines()
    i = 0

    def current() -> TapStream:
        nonlocal stream
        if stream is None:
            stream = TapStream()
            res.streams.append(stream)
        return stream

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        # YAML block: an indented '---' up to an indented '...'.
        if stripped == "---" and line[: len(line) - len(line.lstrip())]:
            block = []
            i += 1
            while i < len(lines) and lines[i].strip() != "...":
                block.append(lines[i])
                i += 1
            i += 1  # skip the '...'
            text_block = "\n".join(block)
            if last_point is not None and not last_point.yaml:
                last_point.yaml = text_block
            else:
                res.orphan_yaml.append(text_block)
            continue
        i += 1
        if _VERSION_RE.match(stripped):
            stream = TapStream()
            res.streams.append(stream)
            last_point = None
            continue
        m = _PLAN_RE.match(stripped)
        if m and line == line.lstrip():
            s = current()
            s.plan = (1, int(m.group(1)))
            if m.group(2) and m.group(2).lower().startswith("skip"):
                s.plan_skip_reason = m.group(2)[4:].strip() or "skipped"
            last_point = None
            continue
        m = _POINT_RE.match(stripped)
        if m and line == line.lstrip():
            desc = m.group(3).strip()
            directive, reason = None, ""
            d = _DIRECTIVE_RE.search(desc)
            if d:
                directive = "skip" if d.group(1).lower().startswith("skip") else "todo"
                reason = d.group(2).strip()
                desc = desc[: d.start()].strip().removeprefix("- ").strip()
            point = TapPoint(ok=m.group(1) == "ok", number=int(m.group(2)) if m.group(2) else None,
                             description=desc, directive=directive, reason=reason)
            current().points.append(point)
            last_point = point
            continue
        m = _BAIL_RE.match(stripped)
        if m:
            res.bail_out = m.group(1) or "bailed out"
            continue
        if stripped.startswith("#"):
            res.diagnostics.append(stripped[1:].strip())
            continue
        # anything else (blank lines, stray output) is ignored and does not end a point
    return res


def yaml_error(block: str) -> str:
    """The non-empty ``error`` value of a runtime-tools diagnostic block ('' when there is none).

    runtime-tools writes its YAML blocks as JSON (valid YAML), so try that first and fall back
    to a ``error: value`` line.
    """
    try:
        data = json.loads(block)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        return str(err).strip() if err else ""
    m = re.search(r'^\s*"?error"?\s*:\s*(.+)$', block, re.MULTILINE)
    if not m:
        return ""
    val = m.group(1).strip().rstrip(",").strip()
    if val in ('""', "''", "null", "~", ""):
        return ""
    return val.strip('"')


def _first_line(s: str, limit: int = 240) -> str:
    s = s.replace("\\n", "\n").strip()
    line = s.splitlines()[0] if s else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _point_detail(p: TapPoint, stderr: str = "") -> str:
    """``not ok N - description`` plus the most useful field of its diagnostic block."""
    head = f"not ok {p.number if p.number is not None else '?'} - {p.description}"
    extra = ""
    data = None
    if p.yaml:
        try:
            data = json.loads(p.yaml)
        except ValueError:
            extra = _first_line(p.yaml)
    if isinstance(data, dict):
        err = str(data.get("error") or "")
        if data.get("stderr"):
            extra = "stderr: " + stderr_reason(str(data["stderr"]))
        elif err and not _GENERIC_STDERR.match(err.strip()):
            extra = "error: " + _first_line(err)
        elif "expected" in data or "actual" in data:
            extra = (f"expected: {_first_line(json.dumps(data.get('expected')))}; "
                     f"actual: {_first_line(json.dumps(data.get('actual')))}")
        elif err:
            extra = "error: " + _first_line(err)
    if (not extra or extra.startswith("error: exit status")) and stderr_reason(stderr):
        extra = (extra + "; " if extra else "") + "stderr: " + stderr_reason(stderr)
    return f"{head}; {extra}" if extra else head


_GENERIC_STDERR = re.compile(r"^(exit status \d+|failed to \w+ the container|signal: .*)$")


def stderr_reason(stderr: str) -> str:
    """The most telling line of a test's stderr: the runtime's own message, not Go's wrapper lines."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    specific = [ln for ln in lines if not _GENERIC_STDERR.match(ln)]
    for ln in specific:
        m = re.search(r'level=error msg="((?:[^"\\]|\\.)*)"', ln)
        if m:
            return _first_line(m.group(1).replace('\\"', '"'))
    if specific:
        return _first_line(specific[0])
    return _first_line(lines[0]) if lines else ""


def verdict(tap: TapResult, returncode: int | None, timed_out: bool = False,
            stderr: str = "") -> tuple[str, str]:
    """Return (``pass``|``fail``|``skip``, reason) for one executable's run.

    Failure wins over everything: a timeout, a ``Bail out!``, a non-zero exit status, a
    ``not ok`` point that is not TODO, a YAML block with a non-empty ``error`` that follows no
    test point, or a stream that planned more points than it printed.  A run whose every point
    is skipped (or whose plan is ``1..0 # SKIP``) is skipped; anything else passes, including a
    clean exit with no TAP at all (the ``*_fail`` tests print nothing when the runtime
    correctly refuses the config).
    """
    failing = [p for p in tap.points if p.failed]
    if timed_out:
        why = "timeout"
        if failing:
            why += "; first failure: " + _point_detail(failing[0], stderr)
        return FAIL, why
    if tap.bail_out is not None:
        return FAIL, f"Bail out! {tap.bail_out}"
    if failing:
        return FAIL, _point_detail(failing[0], stderr)
    for block in tap.orphan_yaml:
        err = yaml_error(block)
        if err:
            return FAIL, "diagnostic: " + _first_line(err)
    if returncode not in (0, None):
        why = f"exit status {returncode}"
        detail = stderr_reason(stderr)
        return FAIL, f"{why}: {detail}" if detail else why
    for s in tap.streams:
        if s.plan and s.plan[1] > len(s.points) and not s.plan_skip_reason:
            return FAIL, f"planned {s.plan[1]} tests, ran {len(s.points)}"
    points = tap.points
    if points and all(p.skipped for p in points):
        return SKIP, points[0].reason or "all skipped"
    if not points and any(s.plan_skip_reason for s in tap.streams):
        return SKIP, next(s.plan_skip_reason for s in tap.streams if s.plan_skip_reason)
    return PASS, ""


# ---------------------------------------------------------------- environment


@dataclasses.dataclass
class Build:
    root: str
    runtimetest: str
    rootfs: str
    tests: list[str]


def go_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386",
            "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}.get(m, m)


def find_build(path: str | None) -> tuple[Build | None, str]:
    """Locate runtimetest, the rootfs tarball and the validation executables under ``path``."""
    need = ("needs a built opencontainers/runtime-tools tree (runtimetest, rootfs-%s.tar.gz, "
            "validation/*/*.t; see docs/conformance-runtime-tools.md)" % go_arch())
    if not path:
        return None, f"skipped: no --runtime-tools DIR given; {need}"
    if not os.path.isdir(path):
        return None, f"skipped: runtime-tools dir {path!r} not found; {need}"
    root = os.path.abspath(path)
    tests = sorted(t for t in glob.glob(os.path.join(root, "validation", "*", "*.t"))
                   if os.access(t, os.X_OK) and os.path.isfile(t))
    runtimetest = os.path.join(root, "runtimetest")
    rootfs = os.path.join(root, f"rootfs-{go_arch()}.tar.gz")
    missing = []
    if not tests:
        missing.append("validation/*/*.t executables")
    if not os.access(runtimetest, os.X_OK):
        missing.append("runtimetest")
    if not os.path.isfile(rootfs):
        missing.append(os.path.basename(rootfs))
    if missing:
        return None, f"skipped: {root} lacks {', '.join(missing)}; {need}"
    return Build(root, runtimetest, rootfs, tests), ""


def test_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


# ------------------------------------------------------------------ cleanup

_libc = None
MNT_DETACH = 2


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def hide_unified_cgroup(path: str = "/sys/fs/cgroup/unified") -> bool:
    """Give this process (and so every runtime it starts) a private mount namespace without the
    hybrid host's cgroup2 mount.

    crun 1.x refuses to run on a hybrid host whose cgroup2 hierarchy owns a controller ("cgroups
    in hybrid mode not supported, drop all controllers from cgroupv2"; here: hugetlb, which no v1
    hierarchy mounts).  Hiding the mount in a private namespace leaves the host untouched.
    Returns whether something was hidden.
    """
    CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 0x4000, 1 << 18
    lc = libc()
    if lc.unshare(CLONE_NEWNS) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "unshare(CLONE_NEWNS): " + os.strerror(e))
    if lc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "make / rprivate: " + os.strerror(e))
    if not os.path.ismount(path):
        return False
    if lc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"umount {path}: " + os.strerror(e))
    return True


def _umount_lazy(target: str) -> bool:
    if libc().umount2(os.fsencode(target), MNT_DETACH) == 0:
        return True
    return subprocess.run(["umount", "-l", target], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def _unescape_mountinfo(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts_under(prefix: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points at or below ``prefix``, deepest first."""
    prefix = os.path.realpath(prefix).rstrip("/")
    found = []
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                if len(fields) < 5:
                    continue
                mp = _unescape_mountinfo(fields[4])
                if mp == prefix or mp.startswith(prefix + "/"):
                    found.append(mp)
    except OSError:
        return []
    return sorted(set(found), key=lambda m: (m.count("/"), len(m)), reverse=True)


def unmount_all_under(prefix: str) -> int:
    n = 0
    for _ in range(5):  # stacked mounts need several passes
        mps = mounts_under(prefix)
        if not mps:
            break
        for mp in mps:
            if _umount_lazy(mp):
                n += 1
    return n


# cgroup paths the suite hard-codes (runtime-tools cgroups.AbsCgroupPath / RelCgroupPath)
SUITE_CGROUPS = ("cgrouptest", "testdir")


def remove_suite_cgroups(cgroot: str = "/sys/fs/cgroup") -> int:
    """rmdir (bottom-up) the cgroups the suite creates; busy ones are left alone."""
    n = 0
    tops = []
    for name in SUITE_CGROUPS:
        tops.append(os.path.join(cgroot, name))
        tops.extend(glob.glob(os.path.join(cgroot, "*", name)))
    for top in tops:
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        n += remove_cgroup_tree(top)
    return n


def remove_cgroup_tree(top: str) -> int:
    """rmdir ``top`` and every cgroup below it, deepest first; returns how many went (a busy one stays)."""
    n = 0
    for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: t[0].count("/"), reverse=True):
        try:
            os.rmdir(dirpath)
            n += 1
        except OSError:
            pass
    return n


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _state_ids(state_root: str) -> list[str]:
    try:
        return sorted(e for e in os.listdir(state_root) if os.path.isdir(os.path.join(state_root, e)))
    except OSError:
        return []


def _runtime_list(runtime: str, root_args: list[str], timeout: float = 10) -> list[str]:
    try:
        out = subprocess.run([runtime, *root_args, "list", "-q"], capture_output=True, text=True,
                             timeout=timeout, start_new_session=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


def force_delete(runtime: str, root_args: list[str], ids: Iterable[str], timeout: float = 15) -> list[str]:
    deleted = []
    for cid in ids:
        try:
            # own session: a runtime that signals its process group (kill(0, ...)) must not hit us
            r = subprocess.run([runtime, *root_args, "delete", "--force", cid], capture_output=True,
                               timeout=timeout, start_new_session=True)
            if r.returncode == 0:
                deleted.append(cid)
        except (OSError, subprocess.SubprocessError):
            pass
    return deleted


# ------------------------------------------------------------------- running


def write_wrapper(path: str, runtime: str, state_root: str | None, oci_version: str | None) -> None:
    """A /bin/sh wrapper: ``RUNTIME`` for the suite, adding ``--root`` and the ociVersion rewrite."""
    lines = ["#!/bin/sh", "# generated by conformance.runtime_tools for one test run"]
    if oci_version:
        lines += [
            'case "$1" in create|run)',
            '  b=.; prev=',
            '  for a in "$@"; do',
            '    case "$prev" in --bundle|-b) b="$a";; esac',
            '    case "$a" in --bundle=*) b="${a#--bundle=}";; esac',
            '    prev="$a"',
            '  done',
            '  if [ -f "$b/config.json" ]; then',
            "    sed -i -E 's/\"ociVersion\"[[:space:]]*:[[:space:]]*\"[^\"]*\"/\"ociVersion\": "
            + f'"{oci_version}"' + "/' \"$b/config.json\"",
            '  fi;;',
            'esac',
        ]
    root = f" --root {shlex.quote(state_root)}" if state_root else ""
    lines.append(f'exec {shlex.quote(runtime)}{root} "$@"')
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o755)


@dataclasses.dataclass
class TestRun:
    name: str
    verdict: str
    reason: str
    passed: int
    failed: int
    skipped: int
    todo: int
    returncode: int | None
    timed_out: bool
    seconds: float
    leaked_mounts: int = 0
    leaked_containers: int = 0
    stdout_tail: str = ""
    stderr_tail: str = ""


def run_one(exe: str, build: Build, runtime: str, workbase: str, timeout: float,
            isolate_root: bool = True, oci_version: str | None = None,
            keep: bool = False) -> TestRun:
    name = test_name(exe)
    work = tempfile.mkdtemp(prefix=f"{name}.", dir=workbase)
    tmp = os.path.join(work, "tmp")
    os.makedirs(tmp)
    # mkdtemp makes 0700 dirs; a container with a user namespace must be able to reach its rootfs
    os.chmod(work, 0o755)
    os.chmod(tmp, 0o1777)
    state_root = os.path.join(work, "state") if isolate_root else None
    if state_root:
        os.makedirs(state_root, mode=0o700)
    root_args = ["--root", state_root] if state_root else []
    # the suite copies ./runtimetest into every bundle and untars ./rootfs-<arch>.tar.gz
    shutil.copy2(build.runtimetest, os.path.join(work, "runtimetest"))
    os.symlink(build.rootfs, os.path.join(work, os.path.basename(build.rootfs)))
    wrapper = os.path.join(work, "runtime")
    write_wrapper(wrapper, runtime, state_root, oci_version)
    before = set() if state_root else set(_runtime_list(runtime, []))

    env = dict(os.environ, RUNTIME=wrapper, TMPDIR=tmp)
    t0 = time.monotonic()
    timed_out = False
    proc = subprocess.Popen([exe], cwd=work, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # a grandchild holds the pipes open
            out, err = b"", b""
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        _kill_group(proc)  # stray children of the test (hooks, sleepers)
    seconds = time.monotonic() - t0
    stdout = out.decode(errors="replace")
    stderr = err.decode(errors="replace")
    tap = parse_tap(stdout)
    v, reason = verdict(tap, None if timed_out else proc.returncode, timed_out, stderr)

    # cleanup: containers, mounts, cgroups, files
    if state_root:
        leftovers = sorted(set(_runtime_list(runtime, root_args)) | set(_state_ids(state_root)))
    else:
        leftovers = sorted(set(_runtime_list(runtime, [])) - before)
    force_delete(runtime, root_args, leftovers)
    leaked_mounts = unmount_all_under(work)
    remove_suite_cgroups()
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return TestRun(name=name, verdict=v, reason=reason, passed=tap.passed, failed=tap.failed,
                   skipped=tap.skipped, todo=tap.todo, returncode=proc.returncode, timed_out=timed_out,
                   seconds=round(seconds, 2), leaked_mounts=leaked_mounts,
                   leaked_containers=len(leftovers), stdout_tail=stdout[-4000:],
                   stderr_tail=stderr[-2000:])


def format_table(runs: list[TestRun]) -> str:
    w = max([len(r.name) for r in runs] + [4])
    head = f"{'test':<{w}}  {'pass':>5} {'fail':>5} {'skip':>5}  {'verdict':<7}  {'secs':>6}  reason"
    rows = [head, "-" * len(head)]
    for r in runs:
        reason = r.reason if len(r.reason) <= 110 else r.reason[:109] + "…"
        rows.append(f"{r.name:<{w}}  {r.passed:>5} {r.failed:>5} {r.skipped:>5}  {r.verdict.upper():<7}  "
                    f"{r.seconds:>6.1f}  {reason}")
    return "\n".join(rows)


def summary_line(runs: list[TestRun]) -> str:
    p = sum(1 for r in runs if r.verdict == PASS)
    f = sum(1 for r in runs if r.verdict == FAIL)
    return f"Total: {p} passed, {f} failed"


def runtime_version(runtime: str) -> str:
    try:
        out = subprocess.run([runtime, "--version"], capture_output=True, text=True, timeout=10,
                             start_new_session=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.runtime_tools", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtime-tools", metavar="DIR", default=os.environ.get("RUNTIME_TOOLS"),
                    help="a built runtime-tools tree (default: $RUNTIME_TOOLS)")
    ap.add_argument("--runtime", metavar="PATH", default=os.environ.get("OCI_RUNTIME", "runc"),
                    help="runtime binary (default: $OCI_RUNTIME or runc)")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-test timeout in seconds (120)")
    ap.add_argument("--json", metavar="OUT", help="write results as JSON to OUT")
    ap.add_argument("--filter", metavar="REGEX", help="only run tests whose name matches REGEX (re.search)")
    ap.add_argument("--oci-version", metavar="V",
                    help="rewrite the bundle's ociVersion to V before create/run (e.g. 1.0.2 for old crun)")
    ap.add_argument("--shared-root", action="store_true",
                    help="do not give the runtime a private --root per test (runtime's default root)")
    ap.add_argument("--workdir", metavar="DIR", help="parent of the per-test temporary dirs (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep each test's directory (mounts are still removed)")
    ap.add_argument("--hide-unified-cgroup", action="store_true",
                    help="run in a private mount namespace without /sys/fs/cgroup/unified (crun 1.x on a "
                         "hybrid host whose cgroup2 owns a controller); the host is not changed")
    ap.add_argument("--strict", action="store_true", help="exit 1 when any test fails (default: exit 0)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each test's TAP output")
    args = ap.parse_args(argv)

    build, why = find_build(args.runtime_tools)
    if build is None:
        print(why)
        return 0
    runtime = shutil.which(args.runtime) or args.runtime
    if not (os.path.isfile(runtime) and os.access(runtime, os.X_OK)):
        print(f"skipped: runtime {args.runtime!r} not found or not executable")
        return 0
    runtime = os.path.abspath(runtime)
    tests = build.tests
    if args.filter:
        rx = re.compile(args.filter)
        tests = [t for t in tests if rx.search(test_name(t))]
    if not tests:
        print(f"skipped: no validation executable matches {args.filter!r}")
        return 0
    if args.hide_unified_cgroup:
        hidden = hide_unified_cgroup()
        print("private mount namespace" + (" without /sys/fs/cgroup/unified" if hidden else ""), flush=True)
    workbase = tempfile.mkdtemp(prefix="ocirun-rtt.", dir=args.workdir)
    os.chmod(workbase, 0o755)
    version = runtime_version(runtime)
    print(f"runtime-tools: {build.root} ({len(tests)} tests); runtime: {runtime} {version and '(' + version + ')'}",
          flush=True)
    runs: list[TestRun] = []
    interrupted = False
    try:
        for exe in tests:
            r = run_one(exe, build, runtime, workbase, args.timeout, isolate_root=not args.shared_root,
                        oci_version=args.oci_version, keep=args.keep)
            runs.append(r)
            print(f"  {r.verdict.upper():<4} {r.name} ({r.seconds:.1f}s){': ' + r.reason if r.reason else ''}",
                  flush=True)
            if args.verbose:
                print(r.stdout_tail)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted; reporting the tests that finished", flush=True)
    finally:
        unmount_all_under(workbase)
        if not args.keep:
            shutil.rmtree(workbase, ignore_errors=True)
    print()
    print(format_table(runs))
    print()
    line = summary_line(runs)
    skipped = sum(1 for r in runs if r.verdict == SKIP)
    print(f"(of {len(runs)} tests; {skipped} skipped)")
    if args.json:
        doc = {
            "runtime": runtime, "runtime_version": version, "runtime_tools": build.root,
            "oci_version_rewrite": args.oci_version, "timeout": args.timeout,
            "passed": sum(1 for r in runs if r.verdict == PASS),
            "failed": sum(1 for r in runs if r.verdict == FAIL),
            "skipped": skipped, "total": len(runs), "interrupted": interrupted,
            "tests": [dataclasses.asdict(r) for r in runs],
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    print(line)
    if interrupted:
        return 130
    return 1 if args.strict and any(r.verdict == FAIL for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
