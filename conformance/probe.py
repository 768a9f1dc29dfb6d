"""Black-box helpers for the conformance suite.

The runtime under test is only ever run as a subprocess (``<runtime> --root R <command> ...``),
the way an engine runs it.  What happens inside the container is observed by a *probe*:
busybox shell commands whose output goes to stdout (``run``) or to files in ``/share``, a host
directory bind-mounted read-write into the container.  Host-side observations (namespace
inodes, cgroup files, ``/proc/<pid>``) are read directly by the test.

Nothing here imports the runtime's code: the suite must be as fair to runc and crun as to ocirun.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

CGROUP_ROOT = "/sys/fs/cgroup"
TIMEOUT = 30

# capabilities(7) numbers, enough to decode /proc/<pid>/status masks.
CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]


# --------------------------------------------------------------------------- runtime choice

def resolve_runtime(value: str | None = None) -> tuple[str, str | None]:
    """Return (name, path) for ``OCI_RUNTIME`` (a path or a name); path is None if missing."""
    value = value or os.environ.get("OCI_RUNTIME") or "ocirun"
    if "/" in value:
        return os.path.basename(value), value if os.access(value, os.X_OK) else None
    if value == "ocirun":
        venv = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "bin", "ocirun")
        if os.access(venv, os.X_OK):
            return value, venv
    return value, shutil.which(value)


def runtime_kind(name: str) -> str:
    for kind in ("runc", "crun", "ocirun", "youki"):
        if kind in name:
            return kind
    return name


# --------------------------------------------------------------------------- parsing

def parse_status(text: str) -> dict[str, str]:
    """/proc/<pid>/status → {field: value}."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def decode_caps(mask: str) -> set[str]:
    value = int(mask, 16)
    return {name for bit, name in enumerate(CAPS) if value & (1 << bit)}


def parse_mountinfo(text: str) -> list[dict]:
    """/proc/<pid>/mountinfo → list of dicts, in the kernel's order."""
    mounts = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ", 1)
        f = left.split()
        r = right.split()
        mounts.append({
            "id": int(f[0]), "parent": int(f[1]), "dev": f[2], "root": _unescape(f[3]),
            "mountpoint": _unescape(f[4]), "opts": set(f[5].split(",")), "optional": f[6:],
            "fstype": r[0], "source": r[1] if len(r) > 1 else "",
            "superopts": set(r[2].split(",")) if len(r) > 2 else set(),
        })
    return mounts


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mount_at(mounts: list[dict], path: str) -> dict | None:
    """The visible (last) mount whose mount point is ``path``."""
    found = [m for m in mounts if m["mountpoint"] == path]
    return found[-1] if found else None


def parse_limits(text: str) -> dict[str, tuple[str, str]]:
    """/proc/<pid>/limits → {"Max open files": (soft, hard)}."""
    out = {}
    for line in text.splitlines()[1:]:
        name = line[:26].strip()
        parts = line[26:].split()
        if len(parts) >= 2:
            out[name] = (parts[0], parts[1])
    return out


def ns_inode(pid: int | str, ns: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{ns}")


def parse_ns_listing(text: str) -> dict[str, str]:
    """Output of ``for f in /proc/self/ns/*; do echo $f $(readlink $f); done`` → {type: 'net:[...]'}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[os.path.basename(parts[0])] = parts[1]
    return out


NS_PROBE = "for f in /proc/self/ns/*; do echo $f $(readlink $f); done"

# spec namespace type → /proc/<pid>/ns entry
NS_FILE = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
           "user": "user", "cgroup": "cgroup", "time": "time"}


# --------------------------------------------------------------------------- cgroups

def cgroup_v2() -> bool:
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def cgroup_dir(controller: str, path: str) -> str:
    if cgroup_v2():
        return os.path.join(CGROUP_ROOT, path.lstrip("/"))
    return os.path.join(CGROUP_ROOT, controller, path.lstrip("/"))


def read_cgroup(controller: str, path: str, v1file: str, v2file: str | None = None) -> str:
    name = v2file if cgroup_v2() and v2file else v1file
    with open(os.path.join(cgroup_dir(controller, path), name)) as f:
        return f.read().strip()


def has_controller(controller: str) -> bool:
    if cgroup_v2():
        with open(os.path.join(CGROUP_ROOT, "cgroup.controllers")) as f:
            return controller in f.read().split()
    # a mount point, not just a directory: runc leaves plain directories (e.g. hugetlb/) in the tmpfs
    # at /sys/fs/cgroup for controllers no v1 hierarchy mounts
    return os.path.ismount(os.path.realpath(os.path.join(CGROUP_ROOT, controller)))


def remove_cgroups(name: str) -> None:
    """rmdir every (empty) cgroup directory whose name contains ``name``; deepest first."""
    if not name or not os.path.isdir(CGROUP_ROOT):
        return
    for top, dirs, _ in os.walk(CGROUP_ROOT, topdown=False):
        if name in top and os.path.basename(top) and top != CGROUP_ROOT:
            for _ in range(20):
                try:
                    os.rmdir(top)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def find_cgroups(name: str) -> list[str]:
    found = []
    for top, dirs, _ in os.walk(CGROUP_ROOT):
        for d in dirs:
            if name in d:
                found.append(os.path.join(top, d))
        if top.count("/") > 6:
            dirs[:] = []
    return found


# --------------------------------------------------------------------------- hooks

HOOK_SCRIPT = r'''#!{python}
# Conformance hook: record what the runtime gave us, then behave as told.
import json, os, sys, time
name, log = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else ""
raw = sys.stdin.read()
rec = {{"name": name, "argv": sys.argv[1:], "env": dict(os.environ), "time": time.time(),
        "mntns": os.readlink("/proc/self/ns/mnt"), "netns": os.readlink("/proc/self/ns/net")}}
try:
    rec["state"] = json.loads(raw)
except ValueError:
    rec["state"] = raw
pid = rec["state"].get("pid") if isinstance(rec["state"], dict) else None
if pid:
    try:
        with open("/proc/%d/cmdline" % pid) as f:
            rec["target_cmdline"] = f.read().split("\0")
        rec["target_mntns"] = os.readlink("/proc/%d/ns/mnt" % pid)
        rec["target_netns"] = os.readlink("/proc/%d/ns/net" % pid)
    except OSError as e:
        rec["target_error"] = str(e)
probe = os.environ.get("HOOK_PROBE_PATH")
if probe:
    rec["probe_exists"] = os.path.exists(probe)
with open(log, "a") as f:
    f.write(json.dumps(rec) + "\n")
if mode == "fail":
    sys.exit(3)
if mode.startswith("sleep"):
    time.sleep(float(mode[5:]))
'''


# --------------------------------------------------------------------------- the container

class Container:
    """One bundle + one container id + one private ``--root``, cleaned up by ``cleanup``."""

    def __init__(self, runtime: str, kind: str, workdir: str, base_rootfs: str, root: str | None = None):
        from ocirun.specgen import default_spec

        self.runtime = runtime
        self.kind = kind
        self.workdir = str(workdir)
        self.root = root or os.path.join(self.workdir, "state")
        self.id = "ocirun-test-" + uuid.uuid4().hex[:10]
        self.bundle = os.path.join(self.workdir, "bundle")
        self.rootfs = os.path.join(self.bundle, "rootfs")
        self.share = os.path.join(self.workdir, "share")
        os.makedirs(self.bundle, exist_ok=True)
        os.makedirs(self.share, exist_ok=True)
        os.chmod(self.share, 0o777)
        # A per-test copy of the rootfs made of hard links: cheap, and tests may add files.
        subprocess.run(["cp", "-a", "-l", base_rootfs, self.rootfs], check=True)
        self.config = default_spec(args=["true"], terminal=False)
        self.config["linux"]["cgroupsPath"] = "/" + self.id
        self.config["mounts"].append({"destination": "/share", "type": "none", "source": self.share,
                                      "options": ["rbind", "rw"]})
        self.out_path = os.path.join(self.workdir, "ctr.out")
        self.err_path = os.path.join(self.workdir, "ctr.err")
        self.holders: list[subprocess.Popen] = []
        self.holder_pids: list[int] = []
        self.others: list[Container] = []

    # ---- config
    @property
    def process(self) -> dict:
        return self.config["process"]

    @property
    def linux(self) -> dict:
        return self.config.setdefault("linux", {})

    def set_args(self, *args: str) -> None:
        self.process["args"] = list(args)

    def script(self, text: str) -> None:
        self.process["args"] = ["sh", "-c", text]

    def drop_namespace(self, ns_type: str) -> None:
        self.linux["namespaces"] = [n for n in self.linux.get("namespaces", []) if n["type"] != ns_type]
        if ns_type == "uts":
            self.config.pop("hostname", None)
            self.config.pop("domainname", None)

    def add_namespace(self, ns_type: str, path: str | None = None) -> None:
        self.linux["namespaces"] = [n for n in self.linux.get("namespaces", []) if n["type"] != ns_type]
        entry = {"type": ns_type}
        if path:
            entry["path"] = path
        self.linux["namespaces"].append(entry)

    def add_mount(self, destination: str, type_: str = "tmpfs", source: str = "tmpfs",
                  options: list[str] | None = None, **extra) -> dict:
        m = {"destination": destination, "type": type_, "source": source}
        if options is not None:
            m["options"] = options
        m.update(extra)
        self.config["mounts"].append(m)
        return m

    def use_userns(self, host_id: int = 100000, size: int = 65536) -> None:
        """Add a user namespace mapping 0 → host_id; drop what needs host privileges."""
        self.add_namespace("user")
        self.linux["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": size}]
        self.linux["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": size}]
        self.config["mounts"] = [m for m in self.config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
        os.makedirs(os.path.join(self.rootfs, "share"), exist_ok=True)
        # The mapped root must be able to reach the bundle: open up the (pytest 0700) ancestors.
        d = self.workdir
        while d not in ("/", "/tmp", ""):
            os.chmod(d, os.stat(d).st_mode | 0o011)
            d = os.path.dirname(d)
        for m in self.config["mounts"]:
            if m["destination"] == "/dev/pts":
                m["options"] = [o for o in m.get("options", []) if o != "gid=5"]
            if m["destination"] == "/share":
                os.chmod(self.share, 0o777)

    def hook(self, name: str, mode: str = "", env: list[str] | None = None, timeout: int | None = None,
             log: str | None = None) -> dict:
        """A Python hook (runtime namespace paths) that appends a JSON line to share/hooks.log."""
        path = os.path.join(self.workdir, "hook.py")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(HOOK_SCRIPT.format(python=sys.executable))
            os.chmod(path, 0o755)
        h = {"path": path, "args": ["hook.py", name, log or self.hooks_log] + ([mode] if mode else [])}
        if env is not None:
            h["env"] = env
        if timeout is not None:
            h["timeout"] = timeout
        return h

    @property
    def hooks_log(self) -> str:
        return os.path.join(self.share, "hooks.log")

    def hook_records(self) -> list[dict]:
        if not os.path.exists(self.hooks_log):
            return []
        with open(self.hooks_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def add_hook(self, phase: str, hook: dict) -> None:
        self.config.setdefault("hooks", {}).setdefault(phase, []).append(hook)

    def write(self) -> None:
        from ocirun.bundle import write_config

        write_config(self.bundle, self.config)

    # ---- runtime commands
    def rt(self, *args: str, timeout: float = TIMEOUT, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("stdin", subprocess.DEVNULL)
        if "stdout" not in kw and "capture_output" not in kw:
            kw["capture_output"] = True
        return subprocess.run([self.runtime, "--root", self.root, *args], text=True, timeout=timeout, **kw)

    def run(self, *extra: str, timeout: float = TIMEOUT, **kw) -> subprocess.CompletedProcess:
        """``run`` in the foreground; stdout/stderr of the container are captured."""
        self.write()
        return self.rt("run", "--bundle", self.bundle, *extra, self.id, timeout=timeout, **kw)

    def sh(self, text: str, ok: bool = True) -> str:
        """Run ``sh -c text`` as the container process; return its stdout (asserting exit 0)."""
        self.script(text)
        res = self.run()
        if ok:
            assert res.returncode == 0, f"run failed ({res.returncode}): {res.stderr.strip()} {res.stdout.strip()}"
        return res.stdout

    def create(self, *extra: str, write: bool = True, **kw) -> subprocess.CompletedProcess:
        """``create``; the container's stdio go to files (a pipe would be held open by it)."""
        if write:
            self.write()
        with open(self.out_path, "a") as out, open(self.err_path, "a") as err:
            res = self.rt("create", "--bundle", self.bundle, *extra, self.id, stdout=out, stderr=err, **kw)
        with open(self.err_path) as f:
            res.stderr = f.read()
        return res

    def create_ok(self, *extra: str) -> None:
        res = self.create(*extra)
        assert res.returncode == 0, f"create failed: {res.stderr.strip()}"

    def start(self, cid: str | None = None) -> subprocess.CompletedProcess:
        return self.rt("start", *( [cid] if cid is not None else [self.id]))

    def kill(self, sig: str | None = None, cid: str | None = None) -> subprocess.CompletedProcess:
        return self.rt("kill", cid or self.id, *([sig] if sig else []))

    def delete(self, force: bool = False) -> subprocess.CompletedProcess:
        return self.rt("delete", *(["--force"] if force else []), self.id)

    def state(self, cid: str | None = None) -> dict | None:
        res = self.rt("state", cid or self.id)
        if res.returncode != 0:
            return None
        return json.loads(res.stdout)

    @property
    def pid(self) -> int:
        st = self.state()
        assert st is not None, "state failed"
        return int(st["pid"])

    def wait_status(self, status: str, timeout: float = 10) -> dict | None:
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.state()
            if st is not None and st.get("status") == status:
                return st
            time.sleep(0.05)
        return st

    def wait_file(self, name: str, timeout: float = 10) -> str | None:
        path = os.path.join(self.share, name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    data = f.read()
                if data.endswith("\n"):
                    return data
            time.sleep(0.03)
        return None

    def output(self) -> str:
        with open(self.out_path) as f:
            return f.read()

    def share_file(self, name: str) -> str | None:
        path = os.path.join(self.share, name)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return f.read()

    def sibling(self) -> "Container":
        """Another container with its own bundle, sharing this one's --root."""
        d = os.path.join(self.workdir, f"sib{len(self.others)}")
        os.makedirs(d)
        base = self.rootfs
        c = Container(self.runtime, self.kind, d, base, root=self.root)
        self.others.append(c)
        return c

    def holder(self, *unshare_flags: str) -> int:
        """A host process in fresh namespaces (``unshare``); returns the pid that owns them."""
        flags = list(unshare_flags)
        if "--fork" in flags:
            flags.append("--kill-child")
        p = subprocess.Popen(["unshare", *flags, "sleep", "300"])
        self.holders.append(p)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            # With --fork the namespaces belong to unshare's child.
            kids = _children(p.pid)
            if "--fork" not in unshare_flags or kids:
                target = kids[0] if ("--fork" in unshare_flags) else p.pid
                if os.readlink(f"/proc/{target}/exe").endswith("sleep"):
                    self.holder_pids.append(target)
                    return target
            time.sleep(0.02)
        raise RuntimeError("unshare holder did not start")

    # ---- cleanup
    def cleanup(self) -> None:
        for c in self.others:
            c.cleanup()
        try:
            self.rt("delete", "--force", self.id, timeout=20)
        except subprocess.TimeoutExpired:
            pass
        for pid in self.holder_pids:
            send(pid)
        for p in self.holders:
            p.kill()
            p.wait()
        remove_cgroups(self.id)
        _umount_under(self.workdir)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _umount_under(path: str) -> None:
    """Lazily unmount anything a runtime left mounted below ``path`` in our namespace."""
    with open("/proc/self/mountinfo") as f:
        points = [m["mountpoint"] for m in parse_mountinfo(f.read())]
    for mp in reversed(points):
        if mp.startswith(path.rstrip("/") + "/"):
            subprocess.run(["umount", "-l", mp], capture_output=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def send(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
