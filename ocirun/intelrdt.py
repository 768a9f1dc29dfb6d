"""linux.intelRdt (config-linux.md "IntelRdt") through the resctrl filesystem.

resctrl is a flat, cgroup-like tree: each directory under its mount is a CTRL_MON group with a
``schemata`` file (cache / memory-bandwidth allocation, one resource per line) and a ``tasks``
file; ``mon_groups/<name>/`` inside one is a monitoring group with its own ``tasks``.

What the spec asks, and what this module does about it:

* the group is ``closID`` (``/`` = the root, the default CLOS) or, without one, the container id;
* ``l3CacheSchema``, then ``memBwSchema``, then every ``schemata`` line are written to its
  ``schemata`` file (one write, so the kernel applies them together, as runc does);
* a ``closID`` without any schema must already exist; an existing ``closID`` given with
  ``l3CacheSchema``/``memBwSchema`` must already hold those values (compared per cache id,
  leading zeros and case aside) — runc leaves this comparison as a TODO;
* ``enableMonitoring`` makes ``mon_groups/<container-id>/`` and puts the process there too;
* the container's pid goes to ``tasks`` (children inherit the group);
* on delete the MON group goes, and the group itself only when no closID was given and we made
  it; a failed `create` removes whatever it made;
* no resctrl mounted → an error naming the field, before any side effect; without intelRdt
  nothing here is touched.

Every function takes the resctrl root as a parameter (tests use a fake tree under tmp_path);
:func:`find_root` finds the real one from mountinfo.
"""
from __future__ import annotations

import errno
import os

from . import mountinfo as _mountinfo
from .errors import ConfigError, OciError

FIELD = "linux.intelRdt"
DEFAULT_MOUNT = "/sys/fs/resctrl"


class ResctrlError(OciError):
    """resctrl refused an operation; carries the kernel's info/last_cmd_status when there is one."""


def _fail(field: str, why: str) -> None:
    raise ConfigError(f"config.json: {FIELD}{field}: {why}")


# -- finding resctrl ------------------------------------------------------------------------------
_own_root: list[str] = []    # find_root()'s answer for /proc/self/mountinfo, once found


def find_root(mountinfo: str = "/proc/self/mountinfo", filesystems: str = "/proc/filesystems") -> str:
    """The mount point of resctrl in our mount namespace (the spec's "runtime mount namespace").

    Raises ConfigError saying whether the kernel lacks resctrl altogether or it is only unmounted.
    The answer for our own mount table is kept for the rest of the process: `create` asks at validation
    and again when it makes the group, and one mountinfo read is enough for one short-lived command.
    """
    if mountinfo == "/proc/self/mountinfo" and _own_root:
        return _own_root[0]
    found = [m.mountpoint for m in _mountinfo.read(mountinfo, ("resctrl",))]
    if found:
        root = DEFAULT_MOUNT if DEFAULT_MOUNT in found else found[0]
        if mountinfo == "/proc/self/mountinfo":
            _own_root.append(root)
        return root
    try:
        with open(filesystems, "rb") as f:
            known = any(line.split()[-1:] == [b"resctrl"] for line in f)
    except OSError:
        known = False
    if not known:
        _fail("", "Intel RDT is not available: this kernel has no resctrl filesystem "
                  "(not listed in /proc/filesystems; needs CONFIG_X86_CPU_RESCTRL and RDT-capable hardware)")
    _fail("", f"no resctrl filesystem is mounted (mount it with: mount -t resctrl resctrl {DEFAULT_MOUNT})")
    return ""  # not reached


# -- the plan -------------------------------------------------------------------------------------
def schema_lines(cfg: dict) -> list[tuple[str, str]]:
    """(field, line) in the order the spec wants them written: L3, MB, then ``schemata``."""
    lines = []
    if cfg.get("l3CacheSchema"):
        lines.append(("l3CacheSchema", cfg["l3CacheSchema"]))
    if cfg.get("memBwSchema"):
        lines.append(("memBwSchema", cfg["memBwSchema"]))
    for i, line in enumerate(cfg.get("schemata") or []):
        lines.append((f"schemata[{i}]", line))
    return lines


def group_path(root: str, cfg: dict, cid: str) -> str:
    clos = cfg.get("closID") or cid
    return root if clos == "/" else os.path.join(root, clos)


def check(cfg: dict, root: str | None = None) -> str:
    """Everything that can be known before a side effect; returns the resctrl root to use."""
    if not isinstance(cfg, dict):
        _fail("", "must be an object")
    clos = cfg.get("closID")
    if clos is not None:
        if not isinstance(clos, str) or clos in ("", ".", "..") or (clos != "/" and "/" in clos) or "\0" in clos:
            _fail(".closID", f"{clos!r} is not \"/\" or a single directory name")
    for field, line in schema_lines(cfg):
        if not isinstance(line, str) or "\n" in line:
            _fail(f".{field}", "must be one line")
        if ":" not in line:
            _fail(f".{field}", f"{line!r} is not RESOURCE:ID=VALUE;...")
    if cfg.get("memBwSchema") and not cfg["memBwSchema"].startswith("MB:"):
        _fail(".memBwSchema", f"{cfg['memBwSchema']!r} must start with 'MB:'")
    if root is None:
        root = find_root()
    info = os.path.join(root, "info")
    available = sorted(os.listdir(info)) if os.path.isdir(info) else []
    for field, line in schema_lines(cfg):
        resource = line.split(":", 1)[0].strip()
        if resource not in available:
            have = ", ".join(r for r in available if not r.endswith("_MON") and r != "last_cmd_status") or "none"
            _fail(f".{field}", f"resource {resource} is not available in {root} (info/ has: {have})")
    if cfg.get("enableMonitoring") and not any(r.endswith("_MON") for r in available):
        _fail(".enableMonitoring", f"resctrl monitoring is not available in {root} (no info/*_MON)")
    if clos:
        path = group_path(root, cfg, "")
        has_schema = bool(schema_lines(cfg))
        if not has_schema and not os.path.isdir(path):
            _fail(".closID", f"{path} does not exist (a closID without schemata must be a pre-configured group)")
        if has_schema and os.path.isdir(path):
            _compare_existing(path, cfg)
    return root


def _compare_existing(path: str, cfg: dict) -> None:
    """An existing group must already hold the l3CacheSchema / memBwSchema asked for."""
    try:
        with open(os.path.join(path, "schemata")) as f:
            current = parse_schemata(f.read())
    except OSError as e:
        _fail(".closID", f"read {path}/schemata: {e.strerror}")
    for field in ("l3CacheSchema", "memBwSchema"):
        line = cfg.get(field)
        if not line:
            continue
        want = parse_schemata(line)
        for resource, domains in want.items():
            have = current.get(resource)
            if have is None:
                _fail(f".{field}", f"the existing group {path} has no {resource} schema")
            for dom, value in domains.items():
                if _norm(have.get(dom)) != _norm(value):
                    _fail(f".{field}", f"{line!r} does not match the existing group {path} "
                                       f"({resource}:{dom}={have.get(dom)})")


def parse_schemata(text: str) -> dict[str, dict[str, str]]:
    """``"L3:0=7f0;1=1f\\n MB:0=20"`` → ``{"L3": {"0": "7f0", "1": "1f"}, "MB": {"0": "20"}}``."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        resource, _, rest = line.partition(":")
        doms = out.setdefault(resource.strip(), {})
        for item in rest.split(";"):
            dom, eq, value = item.partition("=")
            if eq:
                doms[dom.strip()] = value.strip()
    return out


def _norm(value: str | None) -> str | None:
    """Values compare without leading zeros or case (the kernel prints ``7f0`` for ``07F0``)."""
    if value is None:
        return None
    return value.lower().lstrip("0") or "0"


# -- side effects ---------------------------------------------------------------------------------
def apply(cfg: dict, cid: str, pid: int, root: str, rmdir=os.rmdir) -> dict:
    """Make/join the group, write schemata, the pid to tasks, the MON group; return the record that
    :func:`remove` needs (kept in state.json).  On failure, undo what was made and raise."""
    path = group_path(root, cfg, cid)
    made = False
    try:
        os.mkdir(path, 0o755)
        made = True
    except FileExistsError:
        pass
    except OSError as e:
        raise ResctrlError(f"{FIELD}: create {path}: {e.strerror}{_status(root)}") from None
    record = {"root": root, "path": path, "made": made, "remove": made and not cfg.get("closID"), "mon": None}
    try:
        lines = [line for _, line in schema_lines(cfg)]
        if lines:
            _write(root, os.path.join(path, "schemata"), "".join(line + "\n" for line in lines))
        _write(root, os.path.join(path, "tasks"), str(pid))
        if cfg.get("enableMonitoring"):
            mon = os.path.join(path, "mon_groups", cid)
            try:
                os.mkdir(mon, 0o755)
            except FileExistsError:
                raise ResctrlError(f"{FIELD}.enableMonitoring: MON group {mon} already exists") from None
            except OSError as e:
                raise ResctrlError(f"{FIELD}.enableMonitoring: create {mon}: {e.strerror}{_status(root)}") from None
            record["mon"] = mon
            _write(root, os.path.join(mon, "tasks"), str(pid))
    except BaseException:
        remove(record, undo=True, rmdir=rmdir)
        raise
    return record


def update_schemata(record: dict | None, cid: str, pid: int, l3: str | None, mb: str | None,
                    root: str | None = None) -> dict:
    """`ocirun update --l3-cache-schema/--mem-bw-schema` (runc's flags): check CAT/MBA is there, make and
    join the group first if the container was created without intelRdt (as runc does), write the lines.
    Returns the record to keep in state.json."""
    if root is None:
        try:
            root = find_root()
        except ConfigError as e:
            why = str(e).split(f"{FIELD}: ", 1)[-1]
            what = "Intel RDT/CAT: l3 cache schema" if l3 else "Intel RDT/MBA: memory bandwidth schema"
            raise ResctrlError(f"{what} is not enabled: {why}") from None
    for value, resource, what in ((l3, "L3", "Intel RDT/CAT: l3 cache schema"),
                                  (mb, "MB", "Intel RDT/MBA: memory bandwidth schema")):
        if value and not os.path.isdir(os.path.join(root, "info", resource)):
            raise ResctrlError(f"{what} is not enabled (no info/{resource} in {root})")
        if value and "\n" in value:
            raise ResctrlError(f"{what}: must be one line")
    if mb and not mb.startswith("MB:"):
        raise ResctrlError(f"Intel RDT/MBA: memory bandwidth schema {mb!r} must start with 'MB:'")
    if not record:
        record = apply({}, cid, pid, root)
    lines = [v for v in (l3, mb) if v]
    _write(record["root"], os.path.join(record["path"], "schemata"), "".join(v + "\n" for v in lines))
    return record


def add_task(record: dict, pid: int) -> None:
    """Put another process (`ocirun exec`) in the container's group and MON group."""
    _write(record["root"], os.path.join(record["path"], "tasks"), str(pid))
    if record.get("mon"):
        _write(record["root"], os.path.join(record["mon"], "tasks"), str(pid))


def remove(record: dict, undo: bool = False, rmdir=os.rmdir) -> None:
    """Delete the MON group, then the group if it is ours to remove (``undo``: a failed create
    removes whatever it made).  ``rmdir`` is a parameter because only resctrl (kernfs) removes a
    directory together with its control files; a plain directory tree in a test needs its own."""
    targets = []
    if record.get("mon"):
        targets.append(record["mon"])
    if record.get("remove") or (undo and record.get("made")):
        targets.append(record["path"])
    for path in targets:
        try:
            rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ResctrlError(f"{FIELD}: remove {path}: {e.strerror}") from None


def _write(root: str, path: str, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        what = text.strip().replace("\n", "\\n")
        raise ResctrlError(f"{FIELD}: write {what!r} to {path}: {e.strerror or errno.errorcode.get(e.errno)}"
                           f"{_status(root)}") from None


def _status(root: str) -> str:
    """The kernel's explanation of the last refused resctrl write (info/last_cmd_status)."""
    try:
        with open(os.path.join(root, "info", "last_cmd_status")) as f:
            text = f.read().strip()
    except OSError:
        return ""
    return f" (last_cmd_status: {text})" if text and text != "ok" else ""
