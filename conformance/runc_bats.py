"""Run runc's own bats integration suite (``tests/integration`` of a runc checkout) against a runtime.

Usage::

    python -m conformance.runc_bats --runc-src DIR [--runtime PATH] [--compare PATH] \
        [--cache DIR] [--file NAME ...] [--filter REGEX] [--timeout S] [--json OUT] [--criu PATH]

``DIR`` is a checkout of opencontainers/runc that the user made themselves (v1.1.5 is the one
measured; see docs/conformance-runc-bats.md).  Without one the harness prints one line saying what
it needs and exits 0 (skipped), so CI without runc's source stays green.

The suite is written for runc's own tree: ``helpers.bash`` finds its Go helpers at
``../../contrib/cmd/<name>/<name>`` and its images through ``get-images.sh``, which downloads them
into ``testdata/`` unless they are already there.  The harness therefore prepares, once, in a cache
directory outside this repository (``--cache``, default /var/cache/ocirun-runc-bats):

* a *suite tree*: a copy of the checkout's ``tests/``, ``contrib/`` and ``go.mod`` (the checkout is
  not written to), with ``recvtty``, ``sd-helper`` and ``seccompagent`` built into it by Debian's
  ``go`` from the checkout's vendored modules (``-mod=vendor``, ``-tags seccomp``, no proxy);
* the two images, made offline: busybox from the host's busybox-static (``/bin/busybox`` and its
  applet links, no ``/proc`` or ``/sys`` directory, like the image the suite downloads) and Debian
  from ``debootstrap --variant=minbase bookworm``; both linked into the suite tree's ``testdata/``
  under the names ``get-images.sh`` looks for, so it downloads nothing.

Each ``.bats`` file then runs in its own ``bats`` process, under ``script`` so that the suite has a
terminal (the tty tests need one), with ``RUNC`` set to the runtime and ``TMPDIR`` pointing into a
per-file work directory (every bundle and ``--root`` state dir the suite makes lands there).  bats
writes clean TAP to a report file, which is parsed; the failing assertion and the runtime's first
error line are kept for each failure.  After each file the harness removes whatever the suite left
behind: containers in the state dirs (``delete --force``), processes still running from the work
directory, mounts under it, loop devices backed by files in it, the suite's cgroups, network
namespaces and CRIU config files, and the work directory itself.

With ``--compare PATH`` the same files run a second time under another runtime (runc), and the table
shows both results side by side.

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from conformance.runtime_tools import (force_delete, go_arch, remove_cgroup_tree, runtime_version,
                                      unmount_all_under)

OK, FAIL, SKIP = "ok", "fail", "skip"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CACHE = "/var/cache/ocirun-runc-bats"
GO_HELPERS = ("recvtty", "sd-helper", "seccompagent")
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Tools the suite or the preparation calls; gawk: init_cgroup_paths() finds v1 mounts with gawk's
# \< \> word anchors, so without it every cgroup test errors.
NEEDED_TOOLS = ("bats", "script", "gawk", "jq", "go", "gcc", "tar", "xz", "ip", "losetup")

# --------------------------------------------------------------------------- TAP (bats)


@dataclasses.dataclass
class BatsTest:
    """One ``@test`` of one file, as the runtime fared."""

    file: str
    number: int
    name: str
    result: str  # ok | fail | skip
    reason: str = ""  # skip reason, or the first error line of a failure
    diagnostics: list[str] = dataclasses.field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.file}: {self.name}"


_PLAN_RE = re.compile(r"^1\.\.(\d+)\s*$")
_POINT_RE = re.compile(r"^(not ok|ok) (\d+) (.*)$")
_SKIP_RE = re.compile(r"\s#\s*skip\b\s*(.*)$", re.IGNORECASE)
_TIMEOUT_RE = re.compile(r"\s#\s*(timeout after .*?)\s*$")  # BATS_TEST_TIMEOUT expired


def parse_bats_tap(text: str, file: str) -> tuple[int | None, list[BatsTest]]:
    """Parse what bats' TAP formatter prints: ``(plan, tests)``.

    bats writes ``ok N name``, ``ok N name # skip reason`` and ``not ok N name`` followed by ``# ``
    lines (where the test failed, then its stderr and ``$output``); those comment lines are kept as
    the failing test's diagnostics.  Carriage returns (the output went through a pty) are dropped.
    """
    plan = None
    tests: list[BatsTest] = []
    last: BatsTest | None = None
    for raw in text.replace("\r", "").splitlines():
        m = _PLAN_RE.match(raw)
        if m and plan is None and not tests:
            plan = int(m.group(1))
            continue
        m = _POINT_RE.match(raw)
        if m:
            name, result, reason = m.group(3), (OK if m.group(1) == "ok" else FAIL), ""
            s = _SKIP_RE.search(name)
            t = _TIMEOUT_RE.search(name)
            if t:
                name, reason = name[: t.start()], t.group(1)
            elif s:
                name, result = name[: s.start()], SKIP
                reason = s.group(1).strip().removeprefix("(").removesuffix(")").strip() or "skipped"
            last = BatsTest(file=file, number=int(m.group(2)), name=name.strip(), result=result, reason=reason)
            tests.append(last)
            continue
        if raw.startswith("#") and last is not None and last.result == FAIL:
            last.diagnostics.append(raw[2:] if raw.startswith("# ") else raw[1:])
    for t in tests:
        if t.result == FAIL:
            why = failure_summary(t.diagnostics)
            t.reason = f"{t.reason}; {why}" if t.reason and why else (t.reason or why)
    return plan, tests


_ASSERT_RE = re.compile(r"^\s*`(.*)' failed(?: with status (\d+))?\s*$")
_CALL_RE = re.compile(r"^(\S+) (.*) \(status=(-?\d+)\):$")  # helpers.bash's runc() echoes this header


def failure_summary(diag: list[str], limit: int = 200) -> str:
    """One line saying why a test failed: the runtime's first error line, then the failing assertion.

    helpers.bash's ``runc`` wrapper echoes ``<runtime> ARGS (status=N):`` and the command's output
    after every call; bats prints those lines after ``not ok``.  The most telling call is the last one
    with a non-zero status (a failed ``runc run``); when every call succeeded the failure is in what
    the test checked of the output, so the last call's first output line is shown instead.
    """
    assertion = ""
    calls: list[tuple[str, int, list[str]]] = []  # (command, status, output lines)
    for line in diag:
        m = _ASSERT_RE.match(line)
        if m and not assertion:
            assertion = m.group(1).strip()
            continue
        m = _CALL_RE.match(line)
        if m:
            calls.append((f"{m.group(1)} {m.group(2)}", int(m.group(3)), []))
            continue
        if calls and line.strip():
            calls[-1][2].append(line.strip())
    failing = [c for c in calls if c[1] != 0]
    call = failing[-1] if failing else (calls[-1] if calls else None)
    parts = []
    if call is not None:
        cmd, status, out = call
        words = cmd.split()
        short = " ".join(words[:2]) if len(words) > 1 else cmd  # "runc run", "ocirun exec"
        first = next((ln for ln in out if not ln.startswith("(in test file")), "")
        parts.append(f"{short} (status={status}): {first}" if first else f"{short} (status={status})")
    if assertion:
        parts.append(f"`{assertion}` failed")
    if not parts:
        parts = [ln.strip() for ln in diag if ln.strip() and not ln.startswith("(in test file")][:1]
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- environment


@dataclasses.dataclass
class Checkout:
    root: str
    version: str
    commit: str
    files: list[str]  # the .bats files, sorted names

    @property
    def integration(self) -> str:
        return os.path.join(self.root, "tests", "integration")


def find_checkout(path: str | None) -> tuple[Checkout | None, str]:
    """Locate runc's integration suite under ``path``; ``(None, 'skipped: …')`` when there is none."""
    need = ("needs a checkout of opencontainers/runc (v1.1.5 measured) with tests/integration/"
            "helpers.bash; see docs/conformance-runc-bats.md")
    if not path:
        return None, f"skipped: no --runc-src DIR given; {need}"
    root = os.path.abspath(path)
    if not os.path.isdir(root):
        return None, f"skipped: runc source dir {path!r} not found; {need}"
    integration = os.path.join(root, "tests", "integration")
    if not os.path.isfile(os.path.join(integration, "helpers.bash")):
        return None, f"skipped: {root} has no tests/integration/helpers.bash; {need}"
    files = sorted(os.path.basename(f) for f in glob.glob(os.path.join(integration, "*.bats")))
    if not files:
        return None, f"skipped: {integration} holds no .bats file; {need}"
    missing = [d for d in ("contrib/cmd", "vendor", "go.mod") if not os.path.exists(os.path.join(root, d))]
    if missing:
        return None, f"skipped: {root} lacks {', '.join(missing)}; {need}"
    version = ""
    try:
        with open(os.path.join(root, "VERSION")) as f:
            version = f.read().strip()
    except OSError:
        pass
    return Checkout(root, version, git_commit(root), files), ""


def git_commit(root: str) -> str:
    try:
        r = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def missing_tools(tools=NEEDED_TOOLS) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def default_runtime() -> str:
    """This repository's launcher (``.venv/bin/ocirun``), else ``ocirun`` on PATH."""
    local = os.path.join(REPO, ".venv", "bin", "ocirun")
    return local if os.access(local, os.X_OK) else (shutil.which("ocirun") or "ocirun")


def default_criu() -> str | None:
    """``scripts/install-criu``'s CRIU (Debian 12's own criu cannot dump on this kernel)."""
    local = os.path.join(REPO, ".venv", "criu", "criu")
    return local if os.access(local, os.X_OK) else None


def inside(path: str, parent: str) -> bool:
    path, parent = os.path.realpath(path), os.path.realpath(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


# ------------------------------------------------------------------ preparation


def run_logged(cmd: list[str], what: str, **kw) -> None:
    """Run a preparation step; on failure raise with its last output lines."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        tail = "\n".join(r.stdout.strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed (exit {r.returncode}): {shlex.join(cmd)}\n{tail}")


def go_build_env(cache: str) -> dict[str, str]:
    """Offline, vendored module builds with cgo (seccompagent links libseccomp)."""
    return dict(os.environ, GOFLAGS="-mod=vendor", GOPROXY="off", GO111MODULE="on", CGO_ENABLED="1",
                GOCACHE=os.path.join(cache, "go-build"), GOPATH=os.path.join(cache, "gopath"),
                GOTOOLCHAIN="local")


def go_build_command(helper: str, out: str) -> list[str]:
    return ["go", "build", "-tags", "seccomp", "-o", out, f"./contrib/cmd/{helper}"]


def suite_dir_name(co: Checkout) -> str:
    tag = co.commit[:12] or re.sub(r"[^\w.+-]", "_", co.version) or "unknown"
    return f"suite-{tag}"


def prepare_suite(co: Checkout, cache: str, rebuild: bool = False) -> str:
    """Build the suite tree in ``cache`` (see the module docstring); return its root.

    ``tests/`` is copied afresh every time (cheap, and edits to the checkout show up); the Go
    helpers are built only when missing or with ``rebuild``.
    """
    suite = os.path.join(cache, suite_dir_name(co))
    os.makedirs(suite, exist_ok=True)
    shutil.rmtree(os.path.join(suite, "tests"), ignore_errors=True)
    shutil.copytree(os.path.join(co.root, "tests"), os.path.join(suite, "tests"), symlinks=True)
    shutil.copy2(os.path.join(co.root, "go.mod"), os.path.join(suite, "go.mod"))
    for helper in GO_HELPERS:
        src = os.path.join(co.root, "contrib", "cmd", helper)
        if not os.path.isdir(src):
            continue
        dst = os.path.join(suite, "contrib", "cmd", helper)
        os.makedirs(dst, exist_ok=True)
        for f in os.listdir(src):  # scripts next to the helper (gen-seccomp-example-cfg.sh)
            if not f.endswith(".go") and os.path.isfile(os.path.join(src, f)):
                shutil.copy2(os.path.join(src, f), os.path.join(dst, f))
        binary = os.path.join(dst, helper)
        if rebuild or not os.access(binary, os.X_OK):
            print(f"building {helper} (go, -tags seccomp, vendored modules)", flush=True)
            run_logged(go_build_command(helper, binary + ".new"), f"go build {helper}", cwd=co.root,
                       env=go_build_env(cache))
            os.replace(binary + ".new", binary)
    return suite


def find_static_busybox() -> str:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.access(p, os.X_OK):
            return p
    raise RuntimeError("busybox not found (apt-get install busybox-static)")


def make_busybox_tree(root: str, busybox: str) -> None:
    """A minimal busybox root filesystem; no proc/ or sys/ (the runtime must create the mount points)."""
    for d in ("bin", "dev", "etc", "home", "root", "tmp", "usr/bin", "usr/sbin", "var/tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    os.chmod(os.path.join(root, "var", "tmp"), 0o1777)
    os.chmod(os.path.join(root, "root"), 0o700)
    shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = os.path.join(root, "bin", applet)
        if "/" not in applet and not os.path.lexists(link):
            os.symlink("busybox", link)
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                      "nobody:x:65534:65534:nobody:/home:/bin/false\n",
        "etc/group": "root:x:0:\ndaemon:x:1:\ntty:x:5:\nusers:x:100:\nnogroup:x:65534:\n",
        "etc/hostname": "busybox\n",
    }
    for rel, text in files.items():
        with open(os.path.join(root, rel), "w") as f:
            f.write(text)


def pack_tree(root: str, out: str) -> None:
    """tar (members named ``./…``, as helpers.bash's ``--exclude './dev/*'`` expects) + xz."""
    tmp = out + ".new"
    os.chmod(root, 0o755)  # the tree's "./" becomes the bundle's rootfs mode: mkdtemp made it 0700
    run_logged(["tar", "--numeric-owner", "-C", root, "-I", "xz -T0 -3", "-cf", tmp, "."], f"pack {out}")
    os.replace(tmp, out)


def make_busybox_image(out: str) -> None:
    with tempfile.TemporaryDirectory(prefix="busybox-rootfs.", dir=os.path.dirname(out)) as tmp:
        make_busybox_tree(tmp, find_static_busybox())
        pack_tree(tmp, out)


def debootstrap_command(target: str, suite: str = DEBIAN_SUITE, mirror: str = DEBIAN_MIRROR) -> list[str]:
    return ["debootstrap", "--variant=minbase", suite, target, mirror]


def make_debian_image(out: str, mirror: str = DEBIAN_MIRROR) -> None:
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap not found (apt-get install debootstrap)")
    tmp = tempfile.mkdtemp(prefix="debian-rootfs.", dir=os.path.dirname(out))
    try:
        print(f"debootstrap --variant=minbase {DEBIAN_SUITE} (a few minutes, once)", flush=True)
        run_logged(debootstrap_command(tmp, mirror=mirror), "debootstrap")
        unmount_all_under(tmp)  # debootstrap mounts proc/sys in the target while installing
        for junk in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"):  # downloaded packages
            for path in glob.glob(os.path.join(tmp, junk)):
                os.unlink(path)
        pack_tree(tmp, out)
    finally:
        unmount_all_under(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def prepare_images(cache: str, suite: str, mirror: str = DEBIAN_MIRROR) -> dict[str, str]:
    """Make (once) and link the two images where get-images.sh looks; return their paths."""
    images = os.path.join(cache, "images")
    os.makedirs(images, exist_ok=True)
    arch = go_arch()
    made = {
        "busybox": os.path.join(images, f"busybox-{arch}.tar.xz"),
        "debian": os.path.join(images, f"debian-{DEBIAN_SUITE}-{arch}.tar.xz"),
    }
    if not os.path.isfile(made["busybox"]):
        print("making the busybox image from busybox-static", flush=True)
        make_busybox_image(made["busybox"])
    if not os.path.isfile(made["debian"]):
        make_debian_image(made["debian"], mirror)
    testdata = os.path.join(suite, "tests", "integration", "testdata")
    for name, path in made.items():
        link = os.path.join(testdata, f"{name}-{arch}.tar.xz")  # get-images.sh's names
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(path, link)
    return made


# ------------------------------------------------------------------ cleanup

# Container ids the suite uses (test_busybox, test_update, ct1, testbusyboxdelete, ...) and the
# cgroup parent set_cgroups_path() makes; a cgroup with such a name that appears during a file is the
# suite's.
SUITE_CGROUP_PARENT = "runc-cgroups-integration-test"
_SUITE_CGROUP_NAME = re.compile(r"^(test[\w.-]*|ct\d+)$")
_SUITE_NETNS = re.compile(r"^tmp\.[A-Za-z0-9]{10}$")  # checkpoint.bats: basename of mktemp


def cgroup_dirs(cgroot: str = "/sys/fs/cgroup") -> set[str]:
    found = set()
    for dirpath, _dirs, _files in os.walk(cgroot):
        found.add(dirpath)
    return found


def thaw_cgroup_tree(top: str) -> int:
    """Thaw every frozen cgroup under ``top`` (cgroups.bats freezes one on purpose; a frozen task
    cannot die, so its cgroup could never be removed)."""
    n = 0
    for dirpath, _d, _f in os.walk(top):
        for name, thawed in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            path = os.path.join(dirpath, name)
            try:
                with open(path) as f:
                    if f.read().strip() in (thawed, "THAWED"):
                        continue
                with open(path, "w") as f:
                    f.write(thawed)
                n += 1
            except OSError:
                pass
    return n


def suite_cgroups(before: set[str], after: set[str]) -> list[str]:
    """New cgroups that are the suite's (by name), shallowest first, and the fixed parent anywhere."""
    picked = [d for d in after - before if _SUITE_CGROUP_NAME.match(os.path.basename(d))]
    picked += [d for d in after if os.path.basename(d) == SUITE_CGROUP_PARENT]
    tops = []
    for d in sorted(set(picked), key=lambda p: (p.count("/"), p)):
        if not any(inside(d, t) for t in tops):
            tops.append(d)
    return tops


NETNS_DIR = "/run/netns"


def mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def stray_cgroup_roots(before: set[str], cgroot: str = "/sys/fs/cgroup") -> list[str]:
    """Directories the suite made on the cgroup tmpfs itself, beside the mounted hierarchies (helpers
    that assume a v1 controller is mounted ``mkdir -p`` its path, e.g. ``hugetlb``): new since
    ``before``, not mount points, empty."""
    mounted = mount_points()
    try:
        names = os.listdir(cgroot)
    except OSError:
        return []
    return sorted(p for p in (os.path.join(cgroot, n) for n in names)
                  if p not in before and p not in mounted and os.path.isdir(p) and not os.path.islink(p)
                  and not os.listdir(p))


def netns_names() -> set[str]:
    try:
        return {n for n in os.listdir("/run/netns")}
    except OSError:
        return set()


def processes_under(work: str, bats_too: bool = True) -> list[int]:
    """Pids whose command line names ``work``, whose cwd lies in it, or whose root filesystem is a
    directory in it (recvtty, seccompagent, the processes of a container whose delete failed).

    A container's ``/proc/PID/root`` reads ``/`` from outside after pivot_root, so its root is found
    in its mount table instead: the mount on ``/`` is a bind of ``…/bundle/rootfs``.
    With ``bats_too=False`` only runtime commands (``--root`` in ``work``) and container processes are
    named: bats' own command line and cwd lie in ``work`` too.
    """
    me = os.getpid()
    found = []
    needle = os.fsencode(work) if bats_too else b"--root\0" + os.fsencode(work)
    work_src = source_path(work)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(pid)
                    continue
            if bats_too and inside(os.readlink(f"/proc/{pid}/cwd"), work):
                found.append(pid)
                continue
            root = root_mount_source(pid)
            if root not in (None, "/") and work_src and inside_path(root, work_src):
                found.append(pid)
        except OSError:
            continue
    return found


def inside_path(path: str, parent: str) -> bool:
    """``inside`` without resolving symlinks (for paths seen in another mount namespace)."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _mountinfo_lines(pid: int | str) -> list[list[str]]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.split() for line in f]


def root_mount_source(pid: int) -> str | None:
    """The directory (within its filesystem) mounted on ``/`` in ``pid``'s mount namespace."""
    try:
        lines = _mountinfo_lines(pid)
    except OSError:
        return None
    roots = [fields[3] for fields in lines if len(fields) > 4 and fields[4] == "/"]
    return unescape_mountinfo(roots[-1]) if roots else None


def source_path(path: str) -> str | None:
    """``path`` as a directory within its filesystem (what another namespace's mountinfo shows
    for a bind mount of it)."""
    real = os.path.realpath(path)
    try:
        lines = _mountinfo_lines("self")
    except OSError:
        return None
    best = None
    for fields in lines:
        if len(fields) < 5:
            continue
        mp = unescape_mountinfo(fields[4])
        if inside_path(real, mp) and (best is None or len(mp) >= len(best[0])):
            best = (mp, unescape_mountinfo(fields[3]))
    if best is None:
        return None
    mp, root = best
    rest = real[len(mp):].lstrip("/") if mp != "/" else real.lstrip("/")
    return os.path.join(root, rest) if rest else root


def unescape_mountinfo(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def loop_devices_under(work: str) -> list[str]:
    try:
        out = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    devs = []
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].strip().startswith(work.rstrip("/") + "/"):
            devs.append(parts[0])
    return devs


def state_dirs(work: str) -> list[str]:
    """The ``--root`` dirs of setup_bundle (``$BATS_RUN_TMPDIR/runc.XXXXXX/state``)."""
    return sorted(glob.glob(os.path.join(work, "tmp", "bats-run-*", "runc.*", "state")))


def list_ids(runtime: str, root: str) -> list[str]:
    try:
        out = subprocess.run([runtime, "--root", root, "list", "-q"], capture_output=True, text=True,
                             timeout=20, start_new_session=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    ids = [ln.strip() for ln in out.splitlines() if ln.strip()]
    try:
        ids += [e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e))]
    except OSError:
        pass
    return sorted(set(ids))


CRIU_CONF = "/etc/criu/default.conf"  # checkpoint.bats writes it and never removes it


@dataclasses.dataclass
class HostSnapshot:
    cgroups: set[str]
    netns: set[str]
    criu_tmp: set[str]
    criu_conf: bytes | None
    criu_dir: bool
    #: /run/netns existed, and was a mount (``ip netns add`` makes it a shared mount of itself)
    netns_dir: bool = False
    netns_mount: bool = False

    @classmethod
    def take(cls) -> "HostSnapshot":
        conf = None
        try:
            with open(CRIU_CONF, "rb") as f:
                conf = f.read()
        except OSError:
            pass
        return cls(cgroup_dirs(), netns_names(), set(glob.glob("/tmp/runc-criu-*")), conf,
                   os.path.isdir(os.path.dirname(CRIU_CONF)), os.path.isdir(NETNS_DIR),
                   NETNS_DIR in mount_points())


@dataclasses.dataclass
class Leftovers:
    containers: int = 0
    processes: int = 0
    mounts: int = 0
    loops: int = 0
    cgroups: int = 0
    netns: int = 0
    files: int = 0
    stalls: int = 0  # times a stuck test had to be freed (see break_stall)

    def describe(self) -> str:
        return ", ".join(f"{v} {k}" for k, v in dataclasses.asdict(self).items() if v)


def clean_up(work: str, runtime: str, before: HostSnapshot) -> Leftovers:
    """Remove what one file's run left behind; return what had to be removed."""
    left = Leftovers()
    cgroup_tops = suite_cgroups(before.cgroups, cgroup_dirs())
    for top in cgroup_tops:
        thaw_cgroup_tree(top)
    for root in state_dirs(work):
        ids = list_ids(runtime, root)
        left.containers += len(ids)
        force_delete(runtime, ["--root", root], ids)
    for _ in range(3):
        pids = processes_under(work)
        if not pids:
            break
        left.processes = max(left.processes, len(pids))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
    left.mounts = unmount_all_under(work)
    for dev in loop_devices_under(work):
        if subprocess.run(["losetup", "-d", dev], capture_output=True).returncode == 0:
            left.loops += 1
    for top in suite_cgroups(before.cgroups, cgroup_dirs()):
        left.cgroups += remove_cgroup_tree(top)
    for name in sorted(netns_names() - before.netns):
        if _SUITE_NETNS.match(name):
            if subprocess.run(["ip", "netns", "del", name], capture_output=True).returncode == 0:
                left.netns += 1
    for path in stray_cgroup_roots(before.cgroups):
        try:
            os.rmdir(path)
            left.cgroups += 1
        except OSError:
            pass
    if not before.netns_mount and not netns_names() and NETNS_DIR in mount_points():
        if subprocess.run(["umount", NETNS_DIR], capture_output=True).returncode == 0:
            left.mounts += 1
    if not before.netns_dir and os.path.isdir(NETNS_DIR) and not netns_names():
        try:
            os.rmdir(NETNS_DIR)
        except OSError:
            pass
    for path in set(glob.glob("/tmp/runc-criu-*")) - before.criu_tmp:
        try:
            os.unlink(path)
            left.files += 1
        except OSError:
            pass
    left.files += restore_criu_conf(before)
    shutil.rmtree(work, ignore_errors=True)
    return left


def restore_criu_conf(before: HostSnapshot) -> int:
    try:
        with open(CRIU_CONF, "rb") as f:
            now = f.read()
    except OSError:
        now = None
    if now == before.criu_conf:
        return 0
    if before.criu_conf is None:
        os.unlink(CRIU_CONF)
        if not before.criu_dir:
            try:
                os.rmdir(os.path.dirname(CRIU_CONF))
            except OSError:
                pass
    else:
        with open(CRIU_CONF, "wb") as f:
            f.write(before.criu_conf)
    return 1


# ------------------------------------------------------------------- running


@dataclasses.dataclass
class FileRun:
    file: str
    runtime: str
    tests: list[BatsTest]
    plan: int | None
    returncode: int | None
    timed_out: bool
    seconds: float
    leftovers: str = ""
    output_tail: str = ""


def bats_command(file: str, report_dir: str, name_filter: str | None = None) -> list[str]:
    """bats prints TAP on the terminal and writes a clean copy (no pty carriage returns) to
    ``report_dir/report.tap``."""
    cmd = ["bats", "--tap", "--report-formatter", "tap", "--output", report_dir]
    if name_filter:
        cmd += ["--filter", name_filter]
    return cmd + [file]


def under_terminal(cmd: list[str]) -> list[str]:
    """Run ``cmd`` under util-linux ``script`` so it has a pty as stdin/stdout (-e: its exit status)."""
    return ["script", "--quiet", "--return", "--command", shlex.join(cmd), "/dev/null"]


def suite_env(runtime: str, work: str, criu_dir: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one bats run.

    No ``BATS_TEST_TIMEOUT``: bats implements it with a background ``sleep`` in the test's shell, and
    events.bats' bare ``wait`` then waits for that sleep, so every such test would time out.
    """
    env = dict(os.environ if base is None else base)
    for var in ("RUNC_USE_SYSTEMD", "ROOTLESS_FEATURES", "ROOTLESS_TESTPATH", "BATS_TMPDIR", "BATS_TEST_TIMEOUT"):
        env.pop(var, None)
    env["RUNC"] = runtime
    env["TMPDIR"] = os.path.join(work, "tmp")
    env["SHELL"] = "/bin/bash"
    if criu_dir:
        env["PATH"] = criu_dir + os.pathsep + env.get("PATH", os.defpath)
    return env


def runtime_named_runc(runtime: str, work: str) -> str:
    """The path bats calls as ``$RUNC``: the runtime itself when it is already named ``runc``, else a
    symlink ``work/bin/runc`` to it.

    runc's help, version and usage tests match the program's own name in its output (``runc version``,
    ``NAME: runc``), and ocirun, like runc, names itself after argv[0]. So ocirun is measured as it is
    deployed as a drop-in (a ``runc`` link, or containerd's ``BinaryName``), not as a differently named tool.
    """
    if os.path.basename(runtime) == "runc":
        return runtime
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir, exist_ok=True)
    link = os.path.join(bindir, "runc")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(os.path.abspath(runtime), link)
    return link


def run_file(file: str, suite: str, runtime: str, workbase: str, timeout: float,
             name_filter: str | None = None, criu_dir: str | None = None,
             stall: float | None = 120.0) -> FileRun:
    """Run one .bats file under ``script`` and clean up after it."""
    work = tempfile.mkdtemp(prefix=f"{file.removesuffix('.bats')}.", dir=workbase)
    os.chmod(work, 0o755)  # userns tests reach their rootfs as another uid
    for d in ("tmp", "report"):
        os.makedirs(os.path.join(work, d))
    os.chmod(os.path.join(work, "tmp"), 0o1777)
    integration = os.path.join(suite, "tests", "integration")
    before = HostSnapshot.take()
    cmd = under_terminal(bats_command(file, os.path.join(work, "report"), name_filter))
    t0 = time.monotonic()
    env = suite_env(runtime_named_runc(runtime, work), work, criu_dir)
    proc = subprocess.Popen(cmd, cwd=integration, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    # A test stalls when a runtime command hangs (ocirun on a pre-frozen cgroup) or a process it
    # started outlives it holding its output pipe (bats waits for EOF; checkpoint.bats' lazy-pages
    # test under runc): after ``stall`` seconds without a result, free it (break_stall).
    try:
        out, timed_out, stalls = watch(proc, timeout, stall, lambda: break_stall(work, before, proc.pid),
                                       lambda: _kill_tree(proc, work))
    except BaseException:
        _kill_tree(proc, work)
        proc.wait()
        clean_up(work, runtime, before)
        raise
    seconds = time.monotonic() - t0
    output = out.decode(errors="replace").replace("\r", "")
    try:
        with open(os.path.join(work, "report", "report.tap")) as f:
            tap = f.read()
    except OSError:
        tap = output  # bats died before writing its report: the terminal copy is all there is
    plan, tests = parse_bats_tap(tap, file)
    tests = complete_plan(file, plan, tests, timed_out, proc.returncode)
    for t in tests:
        if t.number in stalls:
            t.reason = f"stalled {stall:.0f}s, freed by the harness; {t.reason}"
    left = clean_up(work, runtime, before)
    left.stalls = len(stalls)
    return FileRun(file=file, runtime=runtime, tests=tests, plan=plan,
                   returncode=None if timed_out else proc.returncode, timed_out=timed_out,
                   seconds=round(seconds, 1), leftovers=left.describe(), output_tail=output[-3000:])


def watch(proc: subprocess.Popen, timeout: float, stall: float | None, on_stall,
          on_timeout) -> tuple[bytes, bool, list[int]]:
    """Collect ``proc``'s output until it exits, or ``timeout`` expires (then ``on_timeout`` kills
    it); call ``on_stall`` whenever no TAP test line arrived for ``stall`` seconds.  Returns
    ``(output, timed_out, numbers of the tests that stalled)`` (bats runs a file's tests in order,
    so the stalled one is the one after the last result seen)."""
    import threading

    chunks: list[bytes] = []
    last = [time.monotonic()]
    results = [0]

    def reader() -> None:
        for line in iter(proc.stdout.readline, b""):
            chunks.append(line)
            if line.startswith((b"ok ", b"not ok ")):
                last[0] = time.monotonic()
                results[0] += 1

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    start, timed_out, stalls = time.monotonic(), False, []
    while True:
        try:
            proc.wait(timeout=2)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now - start > timeout:
            timed_out = True
            on_timeout()
            proc.wait()
            break
        if stall and now - last[0] > stall:
            stalls.append(results[0] + 1)
            last[0] = now
            on_stall()
    t.join(timeout=10)
    return b"".join(chunks), timed_out, stalls


def break_stall(work: str, before: "HostSnapshot", script_pid: int) -> None:
    """Free a test bats is stuck on: thaw the suite's cgroups, then kill this file's runtime commands
    and container processes, and the orphans that name the work dir (a recvtty a failed test never
    killed holds bats' output pipe); not bats itself, whose command line names ``work`` too."""
    for top in suite_cgroups(before.cgroups, cgroup_dirs()):
        thaw_cgroup_tree(top)
    bats = set(descendants(script_pid))
    orphans = [p for p in processes_under(work) if p not in bats and p != script_pid]
    for pid in set(processes_under(work, bats_too=False)) | set(orphans):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def complete_plan(file: str, plan: int | None, tests: list[BatsTest], timed_out: bool,
                  returncode: int | None) -> list[BatsTest]:
    """Tests the plan announced but bats never reported (timeout, crash) count as failures."""
    if plan is None or len(tests) >= plan:
        if plan is None and not tests and (timed_out or returncode):
            why = "timeout" if timed_out else f"bats exited {returncode} before printing a plan"
            return [BatsTest(file, 0, "(whole file)", FAIL, why)]
        return tests
    why = "not run: timeout" if timed_out else f"not run: bats exited {returncode}"
    done = {t.number for t in tests}
    extra = [BatsTest(file, n, f"(test #{n})", FAIL, why) for n in range(1, plan + 1) if n not in done]
    return tests + extra


def _kill_tree(proc: subprocess.Popen, work: str) -> None:
    """Kill ``script``, everything in bats' pty session (orphans included) and what runs from ``work``."""
    pids = set(session_members(child_pids(proc.pid))) | set(processes_under(work))
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # state ppid pgrp session ...


def child_pids(parent: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[1]) == parent:
                kids.append(int(entry))
    return kids


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def session_members(sids: list[int]) -> list[int]:
    """Processes in the sessions ``sids`` (script's child leads the pty session bats runs in)."""
    wanted, found = set(sids), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[3]) in wanted:
                found.append(int(entry))
    return found


# ------------------------------------------------------------------- reporting


def counts(tests: list[BatsTest]) -> tuple[int, int, int]:
    return (sum(t.result == OK for t in tests), sum(t.result == FAIL for t in tests),
            sum(t.result == SKIP for t in tests))


def summary_line(tests: list[BatsTest]) -> str:
    p, f, s = counts(tests)
    return f"{p} passed, {f} failed, {s} skipped"


def label(runtime: str, version: str) -> str:
    word = version.split()[0] if version else ""
    return word if word and word not in ("version",) else os.path.basename(runtime)


def _cell(t: BatsTest | None) -> str:
    return "-" if t is None else ("FAIL" if t.result == FAIL else t.result)


def format_table(primary: list[BatsTest], compare: list[BatsTest] | None = None,
                 names: tuple[str, str] = ("runtime", "compare")) -> str:
    other = {t.key: t for t in (compare or [])}
    keys = [t.key for t in primary] + [k for k in other if k not in {t.key for t in primary}]
    mine = {t.key: t for t in primary}
    w = min(max([len(k) for k in keys] + [4]), 90)
    cols = [f"{names[0]:<7}"] + ([f"{names[1]:<7}"] if compare is not None else [])
    head = f"{'test':<{w}}  " + " ".join(cols) + "  first error"
    rows = [head, "-" * len(head)]
    for k in keys:
        a, b = mine.get(k), other.get(k)
        shown = k if len(k) <= w else k[: w - 1] + "…"
        cells = [f"{_cell(a):<7}"] + ([f"{_cell(b):<7}"] if compare is not None else [])
        why = a.reason if a and a.result == FAIL else (b.reason if b and b.result == FAIL else "")
        if a and a.result != FAIL and b and b.result == FAIL:
            why = f"({names[1]}) {why}"
        rows.append(f"{shown:<{w}}  " + " ".join(cells) + (f"  {why}" if why else ""))
    return "\n".join(rows)


def regressions(primary: list[BatsTest], compare: list[BatsTest]) -> list[tuple[BatsTest, BatsTest]]:
    """Tests the comparison runtime passes and the primary one fails."""
    other = {t.key: t for t in compare}
    return [(t, other[t.key]) for t in primary if t.result == FAIL and t.key in other
            and other[t.key].result == OK]


# ------------------------------------------------------------------- main


def run_suite(files: list[str], suite: str, runtime: str, workbase: str, timeout: float,
              name_filter: str | None, criu_dir: str | None, tag: str,
              stall: float | None = 120.0) -> list[FileRun]:
    runs = []
    for file in files:
        r = run_file(file, suite, runtime, workbase, timeout, name_filter, criu_dir, stall)
        runs.append(r)
        p, f, s = counts(r.tests)
        extra = " TIMEOUT" if r.timed_out else ""
        extra += f"; cleaned up {r.leftovers}" if r.leftovers else ""
        print(f"  [{tag}] {file}: {p} ok, {f} failed, {s} skipped ({r.seconds:.0f}s){extra}", flush=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.runc_bats", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runc-src", metavar="DIR", default=os.environ.get("RUNC_SRC"),
                    help="a checkout of opencontainers/runc (default: $RUNC_SRC)")
    ap.add_argument("--runtime", metavar="PATH", default=None,
                    help="runtime under test (default: this repository's .venv/bin/ocirun)")
    ap.add_argument("--compare", metavar="PATH", help="also run the suite with this runtime (e.g. /usr/sbin/runc)")
    ap.add_argument("--cache", metavar="DIR", default=os.environ.get("RUNC_BATS_CACHE", DEFAULT_CACHE),
                    help=f"where the helpers, images and suite tree are kept (default: {DEFAULT_CACHE})")
    ap.add_argument("--file", metavar="NAME", action="append",
                    help="only this .bats file (repeatable; 'exec' or 'exec.bats')")
    ap.add_argument("--filter", metavar="REGEX", help="only tests whose name matches REGEX (bats --filter)")
    ap.add_argument("--timeout", type=float, default=900.0, help="per-file timeout in seconds (900)")
    ap.add_argument("--stall", type=float, default=120.0,
                    help="seconds without a test result after which the file's runtime and container "
                         "processes are killed and the suite's cgroups thawed (120; 0: never)")
    ap.add_argument("--json", metavar="OUT", help="write results as JSON to OUT")
    ap.add_argument("--criu", metavar="PATH", default=None,
                    help="criu put first on PATH for checkpoint.bats (default: .venv/criu/criu from "
                         "scripts/install-criu, if present)")
    ap.add_argument("--debian-mirror", metavar="URL", default=DEBIAN_MIRROR, help="for debootstrap")
    ap.add_argument("--workdir", metavar="DIR", help="parent of the per-file work dirs (default: $TMPDIR)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the Go helpers")
    ap.add_argument("--prepare-only", action="store_true", help="build helpers and images, run nothing")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a test fails (default: exit 0)")
    args = ap.parse_args(argv)

    co, why = find_checkout(args.runc_src)
    if co is None:
        print(why)
        return 0
    missing = missing_tools()
    if missing:
        print(f"skipped: missing {', '.join(missing)} (apt-get install bats gawk jq golang-go gcc xz-utils "
              f"iproute2 util-linux busybox-static debootstrap libseccomp-dev pkg-config)")
        return 0
    if os.geteuid() != 0:
        print("skipped: runc's suite needs root here (rootless mode is not set up by this harness)")
        return 0
    cache = os.path.abspath(args.cache)
    if inside(cache, REPO) or inside(cache, co.root):
        print(f"error: --cache {cache} must be outside this repository and the runc checkout", file=sys.stderr)
        return 2
    runtimes = []
    for r in [args.runtime or default_runtime()] + ([args.compare] if args.compare else []):
        path = shutil.which(r) or r
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print(f"skipped: runtime {r!r} not found or not executable")
            return 0
        runtimes.append(os.path.abspath(path))
    files = co.files
    if args.file:
        wanted = {f if f.endswith(".bats") else f + ".bats" for f in args.file}
        unknown = wanted - set(files)
        if unknown:
            print(f"error: no such .bats file in {co.integration}: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        files = [f for f in files if f in wanted]

    os.makedirs(cache, exist_ok=True)
    try:
        suite = prepare_suite(co, cache, args.rebuild)
        images = prepare_images(cache, suite, args.debian_mirror)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"runc source: {co.root} (VERSION {co.version or '?'}, commit {co.commit[:12] or '?'}); "
          f"suite tree: {suite}; images: {', '.join(images.values())}", flush=True)
    if args.prepare_only:
        return 0

    criu = args.criu or default_criu()
    if criu is None:
        # helpers.bash takes whatever `criu` PATH has (Debian 12's 3.17 cannot dump on 6.x kernels), or
        # skips the CRIU tests without one: say which, since either changes checkpoint.bats' counts.
        found = shutil.which("criu")
        print(f"note: no --criu and no {os.path.join(REPO, '.venv', 'criu', 'criu')} (scripts/install-criu): "
              + (f"checkpoint.bats uses {found} from PATH" if found else "checkpoint.bats' CRIU tests skip"),
              flush=True)
    workbase = tempfile.mkdtemp(prefix="ocirun-runc-bats.", dir=args.workdir)
    os.chmod(workbase, 0o755)
    criu_dir = None
    if criu:
        criu_dir = os.path.join(workbase, "criu-bin")
        os.makedirs(criu_dir)
        os.symlink(os.path.abspath(criu), os.path.join(criu_dir, "criu"))

    results: list[dict] = []
    interrupted = False
    try:
        for rt in runtimes:
            version = runtime_version(rt)
            tag = label(rt, version)
            print(f"{tag}: {rt} ({version or 'version unknown'}), {len(files)} files", flush=True)
            t0 = time.monotonic()
            runs = run_suite(files, suite, rt, workbase, args.timeout, args.filter, criu_dir, tag,
                             args.stall or None)
            results.append({"runtime": rt, "version": version, "label": tag, "runs": runs,
                            "seconds": round(time.monotonic() - t0, 1)})
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted; reporting what finished", flush=True)
    finally:
        unmount_all_under(workbase)
        shutil.rmtree(workbase, ignore_errors=True)
    if not results:
        return 130

    tests = [[t for r in res["runs"] for t in r.tests] for res in results]
    names = tuple(res["label"] for res in results) + ("",)
    print()
    print(format_table(tests[0], tests[1] if len(tests) > 1 else None, names[:2]))
    print()
    for res, ts in zip(results, tests):
        print(f"{res['label']}: {summary_line(ts)} ({res['seconds']:.0f}s)")
    worse = regressions(tests[0], tests[1]) if len(tests) > 1 else []
    if len(tests) > 1:
        print(f"\n{names[1]} passes, {names[0]} fails: {len(worse)}")
        for mine, _theirs in worse:
            print(f"  {mine.key}: {mine.reason}")
    if args.json:
        doc = {
            "runc_src": co.root, "runc_version": co.version, "runc_commit": co.commit,
            "suite": suite, "images": images, "criu": criu, "filter": args.filter, "files": files,
            "interrupted": interrupted,
            "runtimes": [{
                "runtime": res["runtime"], "version": res["version"], "label": res["label"],
                "seconds": res["seconds"],
                "passed": counts(ts)[0], "failed": counts(ts)[1], "skipped": counts(ts)[2],
                "files": [{k: v for k, v in dataclasses.asdict(r).items() if k != "tests"} for r in res["runs"]],
                "tests": [dataclasses.asdict(t) for t in ts],
            } for res, ts in zip(results, tests)],
            "compare_passes_runtime_fails": [m.key for m, _ in worse],
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    print(summary_line(tests[0]))
    if interrupted:
        return 130
    return 1 if args.strict and counts(tests[0])[1] else 0


if __name__ == "__main__":
    sys.exit(main())
