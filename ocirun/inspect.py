"""`ocirun inspect ID`: a container's isolation as the kernel shows it, not as the config asks for it.

Everything is read from the container's init process (``/proc/<pid>/ns``, ``uid_map``, ``mountinfo``,
``status``) and its cgroup, and set beside what config.json asked for, so a reader can see that each
setting took effect: a namespace is *new* only if its inode differs from the host's (``/proc/1/ns``,
pid 1 as the runtime sees it) and from every other container under the same ``--root``; a masked or
read-only path is *verified* only if the mount table inside has the mount that does it.

The JSON shape (``--format json``, also :meth:`ocirun.api.Runtime.inspect`) is documented in
docs/inspect.md and versioned by ``inspectVersion``.  A stopped container reports what is left (its
state, config and cgroup); a created one has not exec'd its program yet, so its capabilities,
seccomp filter and no_new_privs are those of the waiting init, flagged ``"applied": false``.
Not on any hot path: imported by the `inspect` command only (ocirun.commands.isolation prints it).
"""
from __future__ import annotations

import os

from . import mountinfo
from .errors import OciError
from .plan import cap_names
from .state import CREATED, PAUSED, RUNNING, STOPPED, StateDir, list_ids, read_start_time, refresh

INSPECT_VERSION = 1
#: /proc/<pid>/ns entries, and the config.json namespace type each one belongs to
NS_FILES = {"cgroup": "cgroup", "ipc": "ipc", "mnt": "mount", "net": "network", "pid": "pid",
            "pid_for_children": "pid", "time": "time", "time_for_children": "time", "user": "user", "uts": "uts"}
CAP_SETS = (("effective", "CapEff"), ("permitted", "CapPrm"), ("inheritable", "CapInh"),
            ("bounding", "CapBnd"), ("ambient", "CapAmb"))
SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}
_UNLIMITED = 1 << 62  # v1 reports "no limit" as a page-rounded 2^63-1, v2 as "max"


class _Gone(Exception):
    """The init exited while we were reading it."""


def inspect(root: str, cid: str, proc: str = "/proc") -> dict:
    """Everything `inspect` reports about container ``cid`` under state root ``root``."""
    sd = StateDir(root, cid)
    st = refresh(sd, sd.load(), proc)
    conf = _config(sd)
    out: dict = {
        "inspectVersion": INSPECT_VERSION,
        "id": st.id, "status": st.status, "pid": st.pid if st.status != STOPPED else 0,
        "bundle": st.bundle, "created": st.created,
        "rootfs": {"path": st.rootfs, "readonly": bool((conf.get("root") or {}).get("readonly")), "verified": None},
        "hostname": {"configured": conf.get("hostname"), "actual": None},
        "namespaces": [], "hostNamespaces": None, "idMappings": None, "mounts": [],
        "cgroup": _cgroup(st), "process": None,
        "maskedPaths": [], "readonlyPaths": [], "notes": [],
    }
    linux = conf.get("linux") or {}
    alive = st.status in (CREATED, RUNNING, PAUSED) and st.pid > 0
    if alive:
        try:
            _live(out, st, conf, root, proc)
        except _Gone:
            alive = False
            out["status"], out["pid"] = STOPPED, 0
            out["namespaces"], out["idMappings"], out["mounts"], out["process"] = [], None, [], None
    if not alive:
        out["notes"].append("the container is not running: namespaces, mounts and process security "
                            "come from its process and cannot be shown")
    mounts = out["mounts"] if alive else None
    out["maskedPaths"] = [_masked(p, mounts, st.pid, proc) for p in linux.get("maskedPaths") or []]
    out["readonlyPaths"] = [_readonly(p, mounts, st.pid, proc) for p in linux.get("readonlyPaths") or []]
    if not conf:
        out["notes"].append(f"no saved config for the container ({sd.config_file}: created by an older "
                            f"ocirun?): configured values not shown")
    return out


def _config(sd: StateDir) -> dict:
    """The config create used (kept in the state dir): the bundle's may have changed since.  The config
    itself, not the launch plan the other commands read (plan.json): what is shown is what the config
    asked for, in its own terms (namespace types and paths, capability names, the seccomp profile)."""
    try:
        return sd.load_config()
    except OciError:
        return {}


# ---- the live process ----------------------------------------------------------------------------------
def _live(out: dict, st, conf: dict, root: str, proc: str) -> None:
    pid = st.pid
    base = f"{proc}/{pid}"

    def check():
        if read_start_time(pid, proc) != st.pid_start:
            raise _Gone()

    out["namespaces"] = _namespaces(st, conf, root, proc)
    out["hostNamespaces"] = host_ns_dir(proc)
    out["idMappings"] = {"uid": _id_map(f"{base}/uid_map"), "gid": _id_map(f"{base}/gid_map")}
    out["mounts"] = parse_mountinfo(_read(f"{base}/mountinfo"))
    top = _top_mounts(out["mounts"])
    rootmnt = top.get("/")
    out["rootfs"]["verified"] = bool(rootmnt and "ro" in rootmnt["options"]) == out["rootfs"]["readonly"]
    out["hostname"]["actual"] = uts_hostname(pid, proc)
    out["process"] = p = _security(_read(f"{base}/status"), conf, st.status)
    p["containerUid"] = _map_back(p["uid"], out["idMappings"]["uid"])
    p["containerGid"] = _map_back(p["gid"], out["idMappings"]["gid"])
    check()  # every value above belongs to the container only if its init is still the same process


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        raise _Gone() from None


def _ns_id(path: str):
    try:
        s = os.stat(path)
    except FileNotFoundError:
        return None
    except ProcessLookupError:
        raise _Gone() from None
    return (s.st_dev, s.st_ino)


def _namespaces(st, conf: dict, root: str, proc: str) -> list[dict]:
    configured = {ns.get("type"): ns.get("path") or "" for ns in (conf.get("linux") or {}).get("namespaces") or []}
    others = {}
    for other in list_ids(root):
        if other == st.id:
            continue
        try:
            osd = StateDir(root, other)
            ost = refresh(osd, osd.load(), proc)
        except (OciError, OSError):
            continue
        if ost.status in (CREATED, RUNNING, PAUSED) and ost.pid > 0:
            others[other] = ost
    out = []
    for name, spec_type in NS_FILES.items():
        mine = _ns_id(f"{proc}/{st.pid}/ns/{name}")
        if mine is None:
            continue  # the kernel has no such namespace type
        host = _host_ns(name, proc)
        shared = []
        for oid, ost in sorted(others.items()):
            try:
                theirs = _ns_id(f"{proc}/{ost.pid}/ns/{name}")
            except _Gone:
                continue
            if theirs == mine and read_start_time(ost.pid, proc) == ost.pid_start:
                shared.append(oid)
        conf_value = configured.get(spec_type)
        out.append({
            "type": name, "inode": mine[1],
            "sharedWithHost": mine == host,
            "sharedWith": shared,
            # config.json: "new" (no path), the path joined, or null (not listed: the runtime's own)
            "configured": None if conf_value is None else (conf_value or "new"),
        })
    return out


def host_ns_dir(proc: str = "/proc") -> str:
    """Where the host's namespaces are read: pid 1's, or ours when pid 1's are closed to us (a pid 1
    that is not dumpable, or lives in a user namespace above ours); ours are what a container without
    that namespace type gets, so "shared with the host" keeps its meaning."""
    try:
        os.stat(f"{proc}/1/ns/net")
        return f"{proc}/1/ns"
    except OSError:
        return f"{proc}/self/ns"


def _host_ns(name: str, proc: str):
    try:
        return _ns_id(f"{host_ns_dir(proc)}/{name}")
    except _Gone:
        return None


def _map_back(host_id: int | None, mapping: list[dict]) -> int | None:
    """A host id as the container's user namespace sees it (None if unmapped there)."""
    for m in mapping:
        if host_id is not None and m["hostID"] <= host_id < m["hostID"] + m["size"]:
            return m["containerID"] + host_id - m["hostID"]
    return None


def _id_map(path: str) -> list[dict]:
    rows = []
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) == 3:
            rows.append({"containerID": int(parts[0]), "hostID": int(parts[1]), "size": int(parts[2])})
    return rows


def parse_mountinfo(text: str) -> list[dict]:
    """``/proc/<pid>/mountinfo`` (proc(5)) as records; mount points are relative to that process's root."""
    out = []
    for e in mountinfo.parse(text):
        propagation = "private"
        for tag in e.optional:
            if tag.startswith("shared:"):
                propagation = tag
            elif tag.startswith("master:") and propagation == "private":
                propagation = tag
            elif tag == "unbindable":
                propagation = "unbindable"
        out.append({
            "id": e.id, "parent": e.parent, "device": e.device, "root": e.root,
            "mountPoint": e.mountpoint, "options": e.options.split(","), "propagation": propagation,
            "type": e.fstype, "source": e.source,
            "superOptions": e.super_options.split(",") if e.super_options else [],
        })
    return out


def _top_mounts(mounts: list[dict]) -> dict[str, dict]:
    """Mount point → the mount on top there (the last one listed)."""
    return {m["mountPoint"]: m for m in mounts}


def uts_hostname(pid: int, proc: str = "/proc") -> str | None:
    """The hostname in ``pid``'s UTS namespace: a forked child joins it and reads the kernel's value
    (/proc/sys/kernel/hostname answers for the reader's namespace, not the container's)."""
    try:
        fd = os.open(f"{proc}/{pid}/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        raise _Gone() from None
    r, w = os.pipe()
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                os.close(r)
                from .kernel import linux as k

                k.setns(fd, k.CLONE_NEWUTS)
                os.write(w, os.uname().nodename.encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        w = -1
        chunks = []
        while True:
            data = os.read(r, 4096)
            if not data:
                break
            chunks.append(data)
        _, status = os.waitpid(child, 0)
        return b"".join(chunks).decode(errors="replace") if status == 0 else None
    finally:
        os.close(fd)
        os.close(r)
        if w >= 0:
            os.close(w)


# ---- security ------------------------------------------------------------------------------------------
def parse_status(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _first_int(text: str | None, index: int = 1) -> int | None:
    parts = (text or "").split()
    return int(parts[index]) if len(parts) > index else None


def _security(status_text: str, conf: dict, status: str) -> dict:
    fields = parse_status(status_text)
    process = conf.get("process") or {}
    conf_caps = process.get("capabilities") or {}
    seccomp = (conf.get("linux") or {}).get("seccomp")
    caps = {}
    for name, key in CAP_SETS:
        caps[name] = cap_names(int(fields.get(key, "0"), 16))
    mode = int(fields.get("Seccomp", "0"))
    return {
        # a created container's init has not yet switched to the configured process
        "applied": status != CREATED,
        # effective ids (2nd of real/effective/saved/fs) as the host sees them; containerUid/Gid below
        "uid": _first_int(fields.get("Uid")),
        "gid": _first_int(fields.get("Gid")),
        "capabilities": caps,
        "configuredCapabilities": {name: list(conf_caps.get(name) or []) for name, _ in CAP_SETS
                                   if name in conf_caps},
        "noNewPrivileges": fields.get("NoNewPrivs") == "1",
        "configuredNoNewPrivileges": bool(process.get("noNewPrivileges")),
        "seccomp": {
            "mode": SECCOMP_MODES.get(mode, str(mode)),
            "filters": int(fields.get("Seccomp_filters", "0") or 0),
            "configured": seccomp is not None,
            "defaultAction": (seccomp or {}).get("defaultAction"),
            "rules": len((seccomp or {}).get("syscalls") or []),
            "syscalls": sum(len(r.get("names") or []) for r in (seccomp or {}).get("syscalls") or []),
        },
    }


# ---- masked and read-only paths ------------------------------------------------------------------------
def _path_state(path: str, pid: int, proc: str) -> str | None:
    """"dir", "file", "symlink" or "absent" for ``path`` inside the container (resolved in its root)."""
    import errno

    from .pathsafe import O_PATH, is_dir_fd
    from .kernel import linux as k

    try:
        rootfd = os.open(f"{proc}/{pid}/root", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = k.openat2(rootfd, path.lstrip("/"), O_PATH | os.O_NOFOLLOW, 0, k.RESOLVE_IN_ROOT)
    except OSError as e:
        return "symlink" if e.errno == errno.ELOOP else "absent"
    finally:
        os.close(rootfd)
    try:
        return "dir" if is_dir_fd(fd) else "file"
    finally:
        os.close(fd)


def _masked(path: str, mounts: list[dict] | None, pid: int, proc: str) -> dict:
    """Masked means /dev/null bound over a file, or a read-only tmpfs over a directory."""
    if mounts is None:
        return {"path": path, "verified": None, "how": None}
    m = _top_mounts(mounts).get(path)
    if m is not None:
        if m["type"] == "tmpfs" and "ro" in m["options"] and m["root"] == "/":
            return {"path": path, "verified": True, "how": "read-only tmpfs"}
        if m["root"].endswith("/null"):
            return {"path": path, "verified": True, "how": "/dev/null"}
        return {"path": path, "verified": False, "how": f"{m['type']} mount, not a mask"}
    kind = _path_state(path, pid, proc)
    if kind in ("absent", "symlink"):  # nothing there to hide (rootfs.mask_path skips these too)
        return {"path": path, "verified": True, "how": kind}
    return {"path": path, "verified": False, "how": "not masked"}


def _readonly(path: str, mounts: list[dict] | None, pid: int, proc: str) -> dict:
    if mounts is None:
        return {"path": path, "verified": None, "how": None}
    m = _top_mounts(mounts).get(path)
    if m is not None:
        ro = "ro" in m["options"]
        return {"path": path, "verified": ro, "how": "read-only mount" if ro else "read-write mount"}
    kind = _path_state(path, pid, proc)
    if kind in ("absent", "symlink"):
        return {"path": path, "verified": True, "how": kind}
    return {"path": path, "verified": False, "how": "not a mount"}


# ---- cgroup --------------------------------------------------------------------------------------------
def _cgroup(st) -> dict | None:
    cg = st.cgroup
    if not cg:
        return None
    out = {"mode": cg.get("mode"), "path": cg.get("path"), "paths": dict(cg.get("paths") or {}),
           "frozen": None, "memory": None, "pids": None, "cpu": None, "error": None}
    try:
        from .cgroups import from_state

        mgr = from_state(cg)
        if not any(os.path.isdir(p) for p in out["paths"].values()):
            out["error"] = "the cgroup no longer exists"
            return out
        out["frozen"] = mgr.is_frozen()
        stats = mgr.stats()
    except (OciError, OSError) as e:
        out["error"] = str(e)
        return out
    mem = (stats.get("memory") or {}).get("usage")
    if mem:
        out["memory"] = {"limit": _lim(mem.get("limit")), "usage": mem.get("usage", 0),
                         "maxUsage": mem.get("max", 0), "failcnt": mem.get("failcnt", 0)}
    pids = stats.get("pids")
    if pids:
        out["pids"] = {"limit": pids.get("limit") or None, "current": pids.get("current", 0)}
    usage = (stats.get("cpu") or {}).get("usage") or {}
    out["cpu"] = {"usageNs": usage.get("total", 0), **_cpu_limits(cg)}
    return out


def _lim(value) -> int | None:
    return None if value is None or value >= _UNLIMITED else value


def _cpu_limits(cg: dict) -> dict:
    """Quota, period and share/weight as the kernel holds them (v1 cpu controller, else v2's cpu.max)."""
    from .cgroups.base import read

    paths = cg.get("paths") or {}
    out = {"quotaUs": None, "periodUs": None, "shares": None, "weight": None}
    try:
        if "cpu" in paths:
            quota = int(read(paths["cpu"], "cpu.cfs_quota_us"))
            out["quotaUs"] = quota if quota >= 0 else None
            out["periodUs"] = int(read(paths["cpu"], "cpu.cfs_period_us"))
            out["shares"] = int(read(paths["cpu"], "cpu.shares"))
        elif cg.get("mode") == "unified" and "" in paths:
            quota, period = (read(paths[""], "cpu.max").split() + ["100000"])[:2]
            out["quotaUs"] = None if quota == "max" else int(quota)
            out["periodUs"] = int(period)
            out["weight"] = int(read(paths[""], "cpu.weight"))
    except (OciError, OSError, ValueError):
        pass
    return out
