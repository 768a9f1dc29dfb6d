"""The state a test run shares with the rest of the machine: read cheaply, compared purely.

``tests/hostguard.py`` takes a :class:`Snapshot` when the pytest session starts and another one
when it ends, and fails the run with the lines of :func:`differences` when they differ.  Reading
and comparing are kept apart: the readers only open, list and stat under /proc, /sys, /run/netns
and /dev/null (nothing here writes, forks or mounts), and :func:`differences` is pure, so its rules
are unit-tested on made-up snapshots (``tests/unit/test_hoststate.py``).

What is compared, and why:

* ``/sys/fs/cgroup``'s listing and whether it is read-only: a systemd that shared the host's
  tmpfs superblock once remounted it read-only and left ``cpu,cpuacct``, ``net_cls`` ... behind,
  which broke podman and every later test on the machine;
* the mount table (``/proc/self/mountinfo``): a leaked mount pins a directory, and a changed
  option or propagation of a host mount changes what every other program sees;
* ``/dev/null``'s type, mode, owner and device number: a device-node bug that replaces or chmods
  it breaks the whole host;
* cgroup directories up to :data:`CGROUP_DEPTH` levels under each hierarchy: what a deleted
  container must not leave;
* processes: a container or helper that outlived its test;
* network namespaces (``/run/netns``) and the interfaces of the runner's network namespace
  (veth pairs, bridges).

Other programs change some of this all the time (a supervisor makes a cgroup per command it runs,
daemons start helpers).  A process counts only when there is evidence that the run made it
(:func:`why_ours`), and a new cgroup only when it is empty or holds such a process; the design
assumes one test run at a time on the machine.
"""
from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass

from ocirun import mountinfo

CGROUP_ROOT = "/sys/fs/cgroup"
#: Levels of cgroup directories compared under each hierarchy: deep enough for the tests' own
#: layouts (``ocirun-test/<pid>-<n>``, ``ocirun-sdtest-<pid>/system.slice/<unit>/...``), shallow
#: enough that a systemd host's thousands of nested cgroups are not all read.
CGROUP_DEPTH = 4
#: The environment variable a guarded session exports, so that its descendants carry it even
#: after they were reparented away from pytest (double-forked daemons, containers' monitors).
MARKER_VAR = "OCIRUN_HOSTGUARD_SESSION"


@dataclass(frozen=True)
class Proc:
    """One process.  ``(pid, start)`` identifies it across the two snapshots (pids are reused);
    the evidence fields are read only for processes that are new since the first snapshot."""
    pid: int
    start: int              # starttime, clock ticks after boot (proc(5), stat field 22)
    ppid: int
    state: str              # "R", "S", "Z", ...
    cmdline: str = ""
    cwd: str = ""
    exe: str = ""
    cgroups: tuple[str, ...] = ()       # the paths of /proc/<pid>/cgroup
    marker: str = ""                    # the value of MARKER_VAR in its environment
    mount_roots: tuple[str, ...] = ()   # the roots of its mount table (a container's rootfs dir)


@dataclass(frozen=True)
class Mount:
    """What identifies a mount for comparison (not the mount id, which a remount keeps anyway)."""
    mountpoint: str
    root: str
    fstype: str
    source: str
    device: str
    options: str
    super_options: str
    propagation: str

    def describe(self) -> str:
        return f"{self.fstype} {self.source or '-'} [{self.options}; {self.super_options}]"


@dataclass(frozen=True)
class Snapshot:
    cgroup_listing: dict[str, str]        # name under /sys/fs/cgroup -> "dir", "file", "symlink -> target"
    cgroup_readonly: bool | None          # None: no /sys/fs/cgroup
    mounts: tuple[Mount, ...]
    dev_null: str                         # "crw-rw-rw- 0:0 1:3" (mode, owner, device)
    procs: dict[int, Proc]
    cgroups: dict[str, frozenset[int]]    # "memory/ocirun-test/12-3" -> the pids in its cgroup.procs
    netns: tuple[str, ...] | None         # /run/netns entries; None: the directory does not exist
    links: tuple[str, ...]                # /sys/class/net


@dataclass(frozen=True)
class Context:
    """What the comparison needs to know about the run it guards."""
    pytest_pid: int
    #: the value of MARKER_VAR this session exported
    token: str
    #: this run's temporary directories (its basetemp, absolute and as a mount root may show it
    #: when /tmp is a filesystem of its own): found in a new process's command line, cwd,
    #: executable or mount roots, they show that the run made it (a container's rootfs is there)
    own_paths: tuple[str, ...]
    #: other runs' temporary directories (pytest's temporary root): such a process is theirs
    foreign_paths: tuple[str, ...] = ()
    #: a new process with an argument of this base name runs the runtime (or monitors it: conmon -r)
    program_names: tuple[str, ...] = ("ocirun",)
    #: ... or these words in its command line: ocirun's init stage (``python -I -S -c ...``)
    cmdline_markers: tuple[str, ...] = ("from ocirun.stage.entry import",)
    #: a new process in a cgroup whose path contains one of these is a test container's (and an
    #: idle cgroup so named that goes away was an earlier run's leftover)
    cgroup_markers: tuple[str, ...] = ("ocirun",)
    #: mounts that were there at the start and may go: under pytest's temporary root, which
    #: pytest itself prunes (earlier runs' directories)
    vanishing_mounts_under: tuple[str, ...] = ()


# --- reading -------------------------------------------------------------------------------------

def _read(path: str, mode: str = "r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return b"" if "b" in mode else ""


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def parse_stat(text: str) -> tuple[int, str, int] | None:
    """``(ppid, state, starttime)`` from a /proc/<pid>/stat line; the command name may hold
    spaces and parentheses, so the fields are counted from the last ``)``."""
    _, sep, rest = text.rpartition(")")
    fields = rest.split()
    if not sep or len(fields) < 20:
        return None
    return int(fields[1]), fields[0], int(fields[19])


def read_procs(since: Snapshot | None = None, proc: str = "/proc") -> dict[int, Proc]:
    """Every process; with ``since``, the evidence of those that are new since that snapshot
    (kernel threads excepted: children of kthreadd come and go and are nobody's leak)."""
    out: dict[int, Proc] = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        pid = int(name)
        parsed = parse_stat(_read(f"{proc}/{name}/stat"))
        if parsed is None:
            continue        # gone meanwhile
        ppid, state, start = parsed
        old = since.procs.get(pid) if since is not None else None
        if since is None or (old is not None and old.start == start) or ppid == 2 or pid == 2:
            out[pid] = Proc(pid, start, ppid, state)
            continue
        env = b"\0" + _read(f"{proc}/{name}/environ", "rb")
        at = env.find(b"\0" + MARKER_VAR.encode() + b"=")
        value = env[at + len(MARKER_VAR) + 2:].split(b"\0", 1)[0].decode(errors="replace") if at >= 0 else ""
        out[pid] = Proc(
            pid, start, ppid, state,
            cmdline=_read(f"{proc}/{name}/cmdline", "rb").replace(b"\0", b" ").decode(errors="replace").strip(),
            cwd=_readlink(f"{proc}/{name}/cwd"), exe=_readlink(f"{proc}/{name}/exe"),
            cgroups=tuple(line.split(":", 2)[-1] for line in _read(f"{proc}/{name}/cgroup").splitlines()),
            marker=value,
            mount_roots=tuple(sorted({m.root for m in mountinfo.parse(_read(f"{proc}/{name}/mountinfo"))})))
    return out


def read_cgroups(mounts: tuple[Mount, ...], root: str = CGROUP_ROOT, depth: int = CGROUP_DEPTH):
    """The cgroup directories of every hierarchy mounted at or under ``root``, keyed by their
    path relative to ``root``, with the pids each one holds."""
    out: dict[str, frozenset[int]] = {}
    tops = sorted({m.mountpoint for m in mounts if m.fstype in ("cgroup", "cgroup2")
                   and (m.mountpoint == root or m.mountpoint.startswith(root + "/"))})

    def walk(path: str, level: int) -> None:
        rel = os.path.relpath(path, root)
        pids = _read(os.path.join(path, "cgroup.procs")).split()
        out[rel] = frozenset(int(p) for p in pids)
        if level >= depth:
            return
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False) and os.path.join(path, e.name) not in tops:
                walk(os.path.join(path, e.name), level + 1)

    for top in tops:
        walk(top, 0)
    return out


def read_mounts(path: str = "/proc/self/mountinfo") -> tuple[Mount, ...]:
    return tuple(Mount(m.mountpoint, m.root, m.fstype, m.source, m.device, m.options, m.super_options,
                       " ".join(m.optional)) for m in mountinfo.read(path))


def _listing(path: str) -> dict[str, str]:
    out = {}
    try:
        names = os.listdir(path)
    except OSError:
        return out
    for name in names:
        full = os.path.join(path, name)
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode):
            out[name] = f"symlink -> {_readlink(full)}"
        else:
            out[name] = "dir" if stat.S_ISDIR(st.st_mode) else "file"
    return out


def describe_node(path: str) -> str:
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"missing ({e.strerror})"
    return (f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid} "
            f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")


def take(since: Snapshot | None = None) -> Snapshot:
    """Read the host's state now (see the module docstring for what, and :func:`read_procs`)."""
    mounts = read_mounts()
    try:
        readonly = bool(os.statvfs(CGROUP_ROOT).f_flag & os.ST_RDONLY)
    except OSError:
        readonly = None
    netns = tuple(sorted(os.listdir("/run/netns"))) if os.path.isdir("/run/netns") else None
    try:
        links = tuple(sorted(os.listdir("/sys/class/net")))
    except OSError:
        links = ()
    return Snapshot(cgroup_listing=_listing(CGROUP_ROOT), cgroup_readonly=readonly, mounts=mounts,
                    dev_null=describe_node("/dev/null"), procs=read_procs(since),
                    cgroups=read_cgroups(mounts), netns=netns, links=links)


# --- comparing (pure) ----------------------------------------------------------------------------

def descendants(procs: dict[int, Proc], pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out, todo = set(), list(children.get(pid, ()))
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(children.get(p, ()))
    return out


def ancestors(procs: dict[int, Proc], pid: int) -> set[int]:
    out = set()
    while pid in procs and pid not in out:
        out.add(pid)
        pid = procs[pid].ppid
    return out


def _mentions(text: str, paths) -> bool:
    return any(text == p or (p.rstrip("/") + "/") in text + "/" for p in paths)


def why_ours(p: Proc, ctx: Context, procs: dict[int, Proc], new: set[int], tree: set[int],
             above: set[int]) -> str | None:
    """The evidence that the run made this new process, or None when there is none or it is
    evidently another run's or another program's (``tree``: pytest's descendants, ``above``:
    pytest and its ancestors, ``new``: the pids that are new since the first snapshot)."""
    if p.pid in tree:
        return "a child of pytest"
    if p.marker:
        return f"carries {MARKER_VAR}" if p.marker == ctx.token else None
    texts = [("command line", p.cmdline), ("cwd", p.cwd), ("executable", p.exe)]
    texts += [("root", r) for r in p.mount_roots]
    for what, text in texts:
        if _mentions(text, ctx.own_paths):
            return f"{what} {text}"
    if p.ppid in procs and p.ppid not in new and p.ppid not in above:
        return None         # a child of a program that ran before the session: its business
    if any(_mentions(text, ctx.foreign_paths) for _, text in texts):
        return None         # another run's bundle or state
    for cg in p.cgroups:
        if any(m in cg for m in ctx.cgroup_markers):
            return f"cgroup {cg}"
    for arg in p.cmdline.split():
        if os.path.basename(arg) in ctx.program_names:
            return f"runs {arg}"
    if any(m in p.cmdline for m in ctx.cmdline_markers):
        return "ocirun's init stage"
    return None


def leaked_procs(before: Snapshot, after: Snapshot, ctx: Context) -> dict[int, str]:
    """The processes the run made that are still alive, each with the evidence."""
    new = {p.pid for p in after.procs.values()
           if p.pid not in before.procs or before.procs[p.pid].start != p.start}
    tree = descendants(after.procs, ctx.pytest_pid)
    above = ancestors(after.procs, ctx.pytest_pid)
    out = {}
    for pid in sorted(new):
        p = after.procs[pid]
        if pid == ctx.pytest_pid or p.state == "Z":
            continue
        why = why_ours(p, ctx, after.procs, new, tree, above)
        if why:
            out[pid] = why
    return out


def _under(path: str, prefixes) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def _mount_lines(before: Snapshot, after: Snapshot, ctx: Context) -> list[str]:
    gone = Counter(before.mounts) - Counter(after.mounts)
    new = Counter(after.mounts) - Counter(before.mounts)
    lines = []
    new_at = {}
    for m in new.elements():
        new_at.setdefault(m.mountpoint, []).append(m)
    for m in sorted(gone.elements(), key=lambda m: m.mountpoint):
        if new_at.get(m.mountpoint):
            n = new_at[m.mountpoint].pop(0)
            changes = [f"{k} {getattr(m, k)!r} -> {getattr(n, k)!r}"
                       for k in ("fstype", "source", "root", "device", "options", "super_options", "propagation")
                       if getattr(m, k) != getattr(n, k)]
            lines.append(f"mount changed: {m.mountpoint}: {', '.join(changes)}")
        elif not _under(m.mountpoint, ctx.vanishing_mounts_under):
            lines.append(f"mount removed: {m.mountpoint} ({m.describe()})")
    for point in sorted(new_at):
        for m in new_at[point]:
            lines.append(f"mount added: {m.mountpoint} ({m.describe()})")
    return lines


def _cgroup_lines(before: Snapshot, after: Snapshot, ours: set[int], ctx: Context) -> list[str]:
    new = sorted(set(after.cgroups) - set(before.cgroups))
    lines = []
    for path in new:
        if any(path.startswith(top + "/") for top in new):
            continue        # reported with its topmost new ancestor
        below = [p for p in new if p == path or p.startswith(path + "/")]
        pids = set().union(*(after.cgroups[p] for p in below))
        if pids and not (pids & ours):
            continue        # someone else's (a supervisor's per-command cgroup, another daemon)
        held = f"holds pid {', '.join(map(str, sorted(pids)))}" if pids else "empty"
        extra = f", {len(below) - 1} more below" if len(below) > 1 else ""
        lines.append(f"cgroup left behind: {CGROUP_ROOT}/{path} ({held}{extra})")
    gone = sorted(set(before.cgroups) - set(after.cgroups))
    for path in gone:
        if any(path.startswith(top + "/") for top in gone):
            continue
        if set().union(*(before.cgroups[p] for p in gone if p == path or p.startswith(path + "/"))):
            continue        # it held processes, which exited, and their manager removed it
        if any(m in path for m in ctx.cgroup_markers):
            continue        # a test cgroup an earlier run left, which this one's cleanup removed
        lines.append(f"cgroup removed: {CGROUP_ROOT}/{path} (was empty)")
    return lines


def differences(before: Snapshot, after: Snapshot, ctx: Context) -> list[str]:
    """One line per thing the run changed, naming it; empty when the host is as it was."""
    lines = []
    if before.cgroup_readonly != after.cgroup_readonly:
        state = {True: "read-only", False: "read-write", None: "missing"}
        lines.append(f"{CGROUP_ROOT} is {state[after.cgroup_readonly]} (was {state[before.cgroup_readonly]})")
    for name in sorted(set(before.cgroup_listing) | set(after.cgroup_listing)):
        was, now = before.cgroup_listing.get(name), after.cgroup_listing.get(name)
        if was == now:
            continue
        if was is None:
            lines.append(f"{CGROUP_ROOT}: new entry {name!r} ({now})")
        elif now is None:
            lines.append(f"{CGROUP_ROOT}: entry {name!r} removed (was {was})")
        else:
            lines.append(f"{CGROUP_ROOT}: entry {name!r} is {now} (was {was})")
    if before.dev_null != after.dev_null:
        lines.append(f"/dev/null is {after.dev_null} (was {before.dev_null})")
    lines += _mount_lines(before, after, ctx)
    leaked = leaked_procs(before, after, ctx)
    for pid in sorted(leaked):
        p = after.procs[pid]
        lines.append(f"process left running: pid {pid} {p.cmdline or '?'!r} (parent {p.ppid}; {leaked[pid]})")
    lines += _cgroup_lines(before, after, set(leaked) | {ctx.pytest_pid}, ctx)
    if before.netns != after.netns:
        if before.netns is None:
            lines.append(f"/run/netns created (holds {list(after.netns)})")
        elif after.netns is None:
            lines.append("/run/netns removed")
        else:
            lines += [f"network namespace added: /run/netns/{n}" for n in sorted(set(after.netns) - set(before.netns))]
            lines += [f"network namespace removed: /run/netns/{n}"
                      for n in sorted(set(before.netns) - set(after.netns))]
    lines += [f"network interface added: {n}" for n in sorted(set(after.links) - set(before.links))]
    lines += [f"network interface removed: {n}" for n in sorted(set(before.links) - set(after.links))]
    return lines
