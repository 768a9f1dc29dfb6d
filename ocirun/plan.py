"""Pure conversion: spec → the operations the init stage performs.

No I/O here.  These tables are also what `ocirun features` prints, so what we
claim and what we do cannot drift apart (STYLE.md, "one source for tables").
"""
from __future__ import annotations

from .records import Record, factory

from .kernel import constants as k  # numbers only: building a plan loads no ctypes

# --- the spec's own records ---------------------------------------------------------------------------
# Parsed by ocirun.config (which imports them from here), and carried by the launch plan as they are;
# here rather than in config because the plan (below ocirun.validate) must not import config, which
# reaches validate when it loads a bundle; and the stages, which read the plan and `exec`'s process
# object, then need no config.

class Hook(Record):
    path: str
    args: list[str] = factory(list)
    #: None (no "env" in the config): the hook inherits the environment of the process running it, as
    #: runc's hooks do (Go's exec with a nil Env); [] is an empty environment
    env: list[str] | None = None
    timeout: int | None = None

    @classmethod
    def parse(cls, d: dict) -> "Hook":
        env = d.get("env")
        return cls(d["path"], list(d.get("args") or []), None if env is None else list(env), d.get("timeout"))


HOOK_PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class Hooks(Record):
    prestart: list[Hook] = factory(list)
    createRuntime: list[Hook] = factory(list)
    createContainer: list[Hook] = factory(list)
    startContainer: list[Hook] = factory(list)
    poststart: list[Hook] = factory(list)
    poststop: list[Hook] = factory(list)

    @classmethod
    def parse(cls, d: dict | None) -> "Hooks":
        d = d or {}
        return cls(**{p: [Hook.parse(h) for h in d.get(p) or []] for p in HOOK_PHASES})


class User(Record):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additionalGids: list[int] = factory(list)
    username: str | None = None


class Capabilities(Record):
    bounding: list[str] = factory(list)
    effective: list[str] = factory(list)
    inheritable: list[str] = factory(list)
    permitted: list[str] = factory(list)
    ambient: list[str] = factory(list)


class Device(Record):
    path: str
    type: str
    major: int = 0
    minor: int = 0
    fileMode: int | None = None
    uid: int | None = None
    gid: int | None = None


class Rlimit(Record):
    type: str
    soft: int
    hard: int


class Process(Record):
    args: list[str]
    cwd: str = "/"
    env: list[str] = factory(list)
    terminal: bool = False
    consoleSize: dict | None = None
    user: User = factory(User)
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] = factory(list)
    noNewPrivileges: bool = False
    oomScoreAdj: int | None = None
    apparmorProfile: str | None = None
    selinuxLabel: str | None = None
    scheduler: dict | None = None
    ioPriority: dict | None = None
    execCPUAffinity: dict | None = None
    commandLine: str | None = None

    @classmethod
    def parse(cls, d: dict) -> "Process":
        u = d.get("user") or {}
        caps = d.get("capabilities")
        return cls(
            args=list(d.get("args") or []),
            cwd=d.get("cwd") or "/",
            env=list(d.get("env") or []),
            terminal=bool(d.get("terminal", False)),
            consoleSize=d.get("consoleSize"),
            user=User(u.get("uid", 0), u.get("gid", 0), u.get("umask"), list(u.get("additionalGids") or []),
                      u.get("username")),
            capabilities=None if caps is None else Capabilities(
                **{k: list(caps.get(k) or []) for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}),
            rlimits=[Rlimit(r["type"], r["soft"], r["hard"]) for r in d.get("rlimits") or []],
            noNewPrivileges=bool(d.get("noNewPrivileges", False)),
            oomScoreAdj=d.get("oomScoreAdj"),
            apparmorProfile=d.get("apparmorProfile"),
            selinuxLabel=d.get("selinuxLabel"),
            scheduler=d.get("scheduler"),
            ioPriority=d.get("ioPriority"),
            execCPUAffinity=d.get("execCPUAffinity"),
            commandLine=d.get("commandLine"),
        )


# --- namespaces ------------------------------------------------------------------------------
#: spec namespace type → (clone flag, /proc/self/ns entry name)
NAMESPACES = {
    "user": (k.CLONE_NEWUSER, "user"),
    "pid": (k.CLONE_NEWPID, "pid"),
    "network": (k.CLONE_NEWNET, "net"),
    "mount": (k.CLONE_NEWNS, "mnt"),
    "ipc": (k.CLONE_NEWIPC, "ipc"),
    "uts": (k.CLONE_NEWUTS, "uts"),
    "cgroup": (k.CLONE_NEWCGROUP, "cgroup"),
    "time": (k.CLONE_NEWTIME, "time"),
}
#: order in which namespaces are joined by path: user first (it grants the rights for the others),
#: mount last among the ones that change what paths mean.
JOIN_ORDER = ("user", "pid", "network", "ipc", "uts", "cgroup", "time", "mount")
#: The same order by /proc/<pid>/ns entry name: what `exec` opens of the container's init and its
#: stage joins (ocirun.stage.exec), with each entry's clone flag.
PROC_JOIN_ORDER = tuple(NAMESPACES[t][1] for t in JOIN_ORDER)
PROC_NS_FLAGS = {proc: flag for flag, proc in NAMESPACES.values()}

# --- mount options ----------------------------------------------------------------------------
#: option → (flags to set, flags to clear) for mount(2)
MOUNT_FLAGS: dict[str, tuple[int, int]] = {
    "async": (0, k.MS_SYNCHRONOUS),
    "atime": (0, k.MS_NOATIME),
    "defaults": (0, 0),
    "dev": (0, k.MS_NODEV),
    "diratime": (0, k.MS_NODIRATIME),
    "dirsync": (k.MS_DIRSYNC, 0),
    "exec": (0, k.MS_NOEXEC),
    "iversion": (1 << 23, 0),
    "noiversion": (0, 1 << 23),
    "lazytime": (k.MS_LAZYTIME, 0),
    "nolazytime": (0, k.MS_LAZYTIME),
    "loud": (0, k.MS_SILENT),
    "silent": (k.MS_SILENT, 0),
    "mand": (k.MS_MANDLOCK, 0),
    "nomand": (0, k.MS_MANDLOCK),
    "noatime": (k.MS_NOATIME, 0),
    "nodev": (k.MS_NODEV, 0),
    "nodiratime": (k.MS_NODIRATIME, 0),
    "noexec": (k.MS_NOEXEC, 0),
    "nosuid": (k.MS_NOSUID, 0),
    "suid": (0, k.MS_NOSUID),
    "norelatime": (0, k.MS_RELATIME),
    "relatime": (k.MS_RELATIME, 0),
    "nostrictatime": (0, k.MS_STRICTATIME),
    "strictatime": (k.MS_STRICTATIME, 0),
    "nosymfollow": (k.MS_NOSYMFOLLOW, 0),
    "symfollow": (0, k.MS_NOSYMFOLLOW),
    "remount": (k.MS_REMOUNT, 0),
    "ro": (k.MS_RDONLY, 0),
    "rw": (0, k.MS_RDONLY),
    "sync": (k.MS_SYNCHRONOUS, 0),
    "bind": (k.MS_BIND, 0),
    "rbind": (k.MS_BIND | k.MS_REC, 0),
}
#: propagation options → propagation flags (applied with a separate mount call)
PROPAGATION: dict[str, int] = {
    "private": k.MS_PRIVATE, "rprivate": k.MS_PRIVATE | k.MS_REC,
    "shared": k.MS_SHARED, "rshared": k.MS_SHARED | k.MS_REC,
    "slave": k.MS_SLAVE, "rslave": k.MS_SLAVE | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE, "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}
#: recursive options → (MOUNT_ATTR_* to set, to clear), applied with mount_setattr(AT_RECURSIVE)
RECURSIVE_ATTRS: dict[str, tuple[int, int]] = {
    "rro": (k.MOUNT_ATTR_RDONLY, 0),
    "rrw": (0, k.MOUNT_ATTR_RDONLY),
    "rnosuid": (k.MOUNT_ATTR_NOSUID, 0),
    "rsuid": (0, k.MOUNT_ATTR_NOSUID),
    "rnodev": (k.MOUNT_ATTR_NODEV, 0),
    "rdev": (0, k.MOUNT_ATTR_NODEV),
    "rnoexec": (k.MOUNT_ATTR_NOEXEC, 0),
    "rexec": (0, k.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (k.MOUNT_ATTR_NODIRATIME, 0),
    "rdiratime": (0, k.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (k.MOUNT_ATTR_NOSYMFOLLOW, 0),
    "rsymfollow": (0, k.MOUNT_ATTR_NOSYMFOLLOW),
    # atime modes are one field: setting one clears the others (MOUNT_ATTR__ATIME)
    "rrelatime": (k.MOUNT_ATTR_RELATIME, k.MOUNT_ATTR__ATIME),
    "rnorelatime": (k.MOUNT_ATTR_STRICTATIME, k.MOUNT_ATTR__ATIME),  # norelatime = strict semantics
    "rnoatime": (k.MOUNT_ATTR_NOATIME, k.MOUNT_ATTR__ATIME),
    "ratime": (k.MOUNT_ATTR_RELATIME, k.MOUNT_ATTR__ATIME),
    "rstrictatime": (k.MOUNT_ATTR_STRICTATIME, k.MOUNT_ATTR__ATIME),
    "rnostrictatime": (k.MOUNT_ATTR_RELATIME, k.MOUNT_ATTR__ATIME),
}
#: options we handle ourselves and never pass to mount(2)
SPECIAL_OPTIONS = ("tmpcopyup", "idmap", "ridmap")


def known_mount_options() -> list[str]:
    return sorted(set(MOUNT_FLAGS) | set(PROPAGATION) | set(RECURSIVE_ATTRS) | set(SPECIAL_OPTIONS))


class MountOp(Record):
    """One config mount, parsed into what the syscalls need."""

    destination: str
    source: str | None
    fstype: str | None
    flags: int = 0
    clear: int = 0
    data: str = ""
    propagation: list[int] = factory(list)
    rec_set: int = 0
    rec_clr: int = 0
    bind: bool = False
    tmpcopyup: bool = False
    idmap: str | None = None  # "idmap" or "ridmap"
    uid_mappings: list = factory(list)
    gid_mappings: list = factory(list)

    @property
    def readonly(self) -> bool:
        return bool(self.flags & k.MS_RDONLY)



def parse_mount_options(options: list[str]) -> tuple[int, int, str, list[int], int, int, set[str]]:
    """Split options into (flags, cleared flags, data, propagation list, rec_set, rec_clr, specials).

    Later options win over earlier ones (``ro`` then ``rw`` is rw), as mount(8) does.
    Unknown options are filesystem data, passed through to mount(2).
    """
    flags = clear = rec_set = rec_clr = 0
    data: list[str] = []
    prop: list[int] = []
    specials: set[str] = set()
    for opt in options:
        if opt in MOUNT_FLAGS:
            s, c = MOUNT_FLAGS[opt]
            flags = (flags & ~c) | s
            clear = (clear & ~s) | c
        elif opt in PROPAGATION:
            prop.append(PROPAGATION[opt])
        elif opt in RECURSIVE_ATTRS:
            s, c = RECURSIVE_ATTRS[opt]
            rec_set = (rec_set & ~c) | s
            rec_clr = (rec_clr & ~s) | c
        elif opt in SPECIAL_OPTIONS:
            specials.add(opt)
        else:
            data.append(opt)
    return flags, clear, ",".join(data), prop, rec_set, rec_clr, specials


def mount_op(m, bundle: str) -> MountOp:
    """Turn a config Mount into a MountOp; bind sources are resolved against the bundle."""
    import os

    flags, clear, data, prop, rset, rclr, specials = parse_mount_options(m.options)
    bind = bool(flags & k.MS_BIND) or m.type == "bind"
    if m.type == "bind":
        flags |= k.MS_BIND  # "type": "bind" without the option is common in the wild (runc accepts it)
    source = m.source
    if bind and source and not os.path.isabs(source):
        source = os.path.join(bundle, source)
    dest = m.destination if m.destination.startswith("/") else "/" + m.destination
    idmap = "ridmap" if "ridmap" in specials else ("idmap" if "idmap" in specials else None)
    return MountOp(
        destination=os.path.normpath(dest), source=source, fstype=m.type, flags=flags, clear=clear,
        data=data, propagation=prop, rec_set=rset, rec_clr=rclr, bind=bind,
        tmpcopyup="tmpcopyup" in specials, idmap=idmap,
        uid_mappings=list(m.uidMappings), gid_mappings=list(m.gidMappings),
    )


#: mount types runc never adds an SELinux ``context=`` to (ocirun.lsm applies labels; this is the data)
_UNLABELLED = {"proc", "sysfs", "mqueue", "cgroup", "cgroup2", "bind", "none"}


def labelled_mount_data(fstype: str | None, bind: bool, data: str, label: str | None) -> str:
    """The mount's data string with ``context="label"`` added where runc adds it."""
    if not label or bind or (fstype or "") in _UNLABELLED:
        return data
    opt = f'context="{label}"'
    return f"{data},{opt}" if data else opt


class ProcessPlan(Record):
    """``process``, as the init stage applies it.  The attribute names are :class:`ocirun.config.Process`'s,
    so that the steps the init shares with `exec` (ocirun.security, sched, lsm, terminal) read either;
    what differs is decided here: rlimits are (resource number, soft, hard) triples."""

    args: list[str]
    cwd: str = "/"
    env: list[str] = factory(list)
    terminal: bool = False
    #: {"height": rows, "width": columns}, or None
    consoleSize: dict | None = None
    user: User = factory(User)
    #: the names as configured (the init applies :attr:`LaunchPlan.capabilities`, the masks; `exec` adds
    #: its --cap names to these and decides its own masks)
    capabilities: Capabilities | None = None
    #: (RLIMIT_* number, soft, hard), in config order
    rlimits: list[tuple[int, int, int]] = factory(list)
    noNewPrivileges: bool = False
    oomScoreAdj: int | None = None
    apparmorProfile: str | None = None
    selinuxLabel: str | None = None
    scheduler: dict | None = None
    ioPriority: dict | None = None
    execCPUAffinity: dict | None = None
    commandLine: str | None = None

    def to_wire(self) -> dict:
        d = self.to_dict()
        d["user"] = self.user.to_dict()
        d["capabilities"] = None if self.capabilities is None else self.capabilities.to_dict()
        d["rlimits"] = [list(r) for r in self.rlimits]
        return d

    @classmethod
    def from_wire(cls, d: dict) -> "ProcessPlan":
        caps = d["capabilities"]
        return cls(**{**d, "user": User(**d["user"]), "capabilities": None if caps is None else Capabilities(**caps),
                      "rlimits": [tuple(r) for r in d["rlimits"]]})

    def to_config(self) -> dict:
        """The process object of config.json this plan was made from (what `exec` starts from without
        --process: runc's getProcess takes the container's process and applies the flags to it)."""
        out = {"terminal": self.terminal, "user": {"uid": self.user.uid, "gid": self.user.gid},
               "args": list(self.args), "env": list(self.env), "cwd": self.cwd}
        u = self.user
        for key, value in (("umask", u.umask), ("additionalGids", list(u.additionalGids) or None),
                           ("username", u.username)):
            if value is not None:
                out["user"][key] = value
        if self.consoleSize is not None:
            out["consoleSize"] = self.consoleSize
        if self.capabilities is not None:
            out["capabilities"] = {name: list(v) for name, v in self.capabilities.to_dict().items()}
        if self.rlimits:
            out["rlimits"] = [{"type": RLIMIT_NAMES[n], "soft": soft, "hard": hard} for n, soft, hard in self.rlimits]
        if self.noNewPrivileges:
            out["noNewPrivileges"] = True
        for key in ("oomScoreAdj", "apparmorProfile", "selinuxLabel", "scheduler", "ioPriority", "execCPUAffinity",
                    "commandLine"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def process_plan(process) -> ProcessPlan:
    """A validated :class:`ocirun.config.Process` → :class:`ProcessPlan`."""
    fields = process.to_dict()
    fields["rlimits"] = [(RLIMITS[r.type], r.soft, r.hard) for r in process.rlimits]
    return ProcessPlan(**fields)


class DeviceRule(Record):
    """One rule of the device cgroup, as ``linux.resources.devices`` writes it (None: not given, a wildcard)."""

    allow: bool
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None

    def to_config(self) -> dict:
        return {f: getattr(self, f) for f in self._fields if getattr(self, f) is not None}


#: Device rules every container gets after its own (runc 1.1's AllowedDevices): mknod of any
#: device node (opening one still needs its own rule), the default devices of config-linux.md,
#: /dev/console, /dev/ptmx, the devpts slaves and /dev/net/tun (containers that mknod it with
#: CAP_NET_ADMIN, as VPN images do under Docker, rely on it).
DENY_ALL_DEVICES = {"allow": False, "access": "rwm"}
DEFAULT_DEVICE_RULES = [
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
]


def resources_with_default_devices(resources: dict | None, *, rootless: bool = False) -> dict:
    """The device rules to enforce: deny everything, then the spec's rules, then the defaults.

    The leading deny-all is runc's: its rule list is an allowlist that starts empty, so a config without
    ``linux.resources.devices`` still gets only the default devices, not every host device (a container
    with CAP_MKNOD could otherwise make and open /dev/sda).  ``linux.devices`` adds nothing here: which
    nodes exist in /dev and which devices may be opened are separate policies (as in runc), so a node the
    config creates is usable only if a rule allows it -- an engine passing ``--device`` sends that rule
    itself, and an explicit deny in ``linux.resources.devices`` stays a deny.  A rootless container has no
    device cgroup of its own to write (and cannot mknod): there only rules the spec asks for are applied."""
    out = dict(resources or {})
    if "devices" in out or not rootless:
        out["devices"] = [DENY_ALL_DEVICES, *(out.get("devices") or ()), *DEFAULT_DEVICE_RULES]
    return out


#: timeOffsets clock name → the clock id /proc/self/timens_offsets takes
TIME_CLOCKS = {"monotonic": 1, "boottime": 7}


class LaunchPlan(Record):
    """What `create` decided from the validated config: built once, in the parent, by :func:`launch_plan`
    (pure: nothing is opened or asked of the kernel), and executed by the init stage, which gets it in
    CONFIG when re-exec'd (:meth:`to_wire`) or in its memory when forked (ocirun.stagefork): the stage
    reads nothing else of the config.  The runtime's own steps (the idmapped and user-namespace bind
    trees) read the same mount operations, so no mount is parsed twice and what the parent prepared is
    exactly what the stage mounts.  Kept in the state dir once the container is created
    (ocirun.state.StateDir.save_plan): `exec` and `checkpoint` read it there."""

    # --- namespaces
    #: namespaces joined by path, in JOIN_ORDER (user first, mount last): [type, path]
    joins: list = factory(list)
    #: a new user namespace, made on its own first (the parent writes its maps)
    new_user: bool = False
    #: CLONE_* flags of every other namespace made new, in one unshare
    unshare_flags: int = 0
    #: timeOffsets of a time namespace the config lists: (clock id, secs, nanosecs)
    time_offsets: list[tuple[int, int, int]] = factory(list)
    # --- the filesystem
    #: root.path, resolved against the bundle
    root_path: str = ""
    root_readonly: bool = False
    #: linux.rootfsPropagation (a PROPAGATION_ROOTFS key), or None
    rootfs_propagation: str | None = None
    #: the config's mounts, in order, parsed (bundle-relative bind sources resolved, mountLabel applied)
    mounts: list[MountOp] = factory(list)
    mount_label: str | None = None
    #: linux.devices: the nodes made in /dev after the default ones
    devices: list[Device] = factory(list)
    masked_paths: list[str] = factory(list)
    readonly_paths: list[str] = factory(list)
    # --- the rest of the container's setup
    #: set only with a uts namespace (without one, the host's name is not the container's to change)
    hostname: str | None = None
    domainname: str | None = None
    sysctl: dict = factory(dict)
    #: linux.personality as personality(2)'s value
    personality: int | None = None
    #: linux.memoryPolicy (ocirun.mempolicy applies it)
    memory_policy: dict | None = None
    hooks: Hooks = factory(Hooks)
    # --- the process
    process: ProcessPlan | None = None
    #: the highest capability this kernel knows (/proc/sys/kernel/cap_last_cap, read by the parent)
    last_cap: int = 0
    #: process.capabilities as the five masks (bounding, effective, inheritable, permitted, ambient);
    #: empty without a process
    capabilities: dict = factory(dict)
    #: (level, text) notes on capabilities that cannot be granted, logged by the parent as it builds the plan
    notes: list = factory(list)
    #: the seccomp program the parent compiled (an ocirun.seccomp.model.CompiledFilter), or None
    seccomp: object = None
    #: the seccomp agent's socket, only when the program has an SCMP_ACT_NOTIFY rule, and its metadata
    seccomp_listener: str | None = None
    seccomp_metadata: str | None = None
    # --- the cgroup (the parent's part).  Where it was made is the state's (ocirun.state.ContainerState.cgroup),
    # recorded before its first directory exists, so that `delete --force` finds it after any crash.
    cgroups_path: str | None = None
    #: linux.resources without its device rules
    resources: dict = factory(dict)
    #: the device cgroup's rules as the parent applies them (deny-all, the config's, the defaults);
    #: None: none applied (rootless without rules of its own)
    device_rules: list[DeviceRule] | None = None

    # --- what the stages ask of it
    @property
    def user_namespace(self) -> bool:
        """A user namespace, new or joined."""
        return self.new_user or any(t == "user" for t, _ in self.joins)

    @property
    def mount_namespace(self) -> str | None:
        """"joined", "new", or None when the config lists none (the container shares the runtime's)."""
        if any(t == "mount" for t, _ in self.joins):
            return "joined"
        return "new" if self.unshare_flags & k.CLONE_NEWNS else None

    @property
    def new_network(self) -> bool:
        return bool(self.unshare_flags & k.CLONE_NEWNET)

    def cgroup_resources(self) -> dict:
        """The resources the parent writes to the cgroup (the drivers' form, device rules included)."""
        out = dict(self.resources)
        if self.device_rules is not None:
            out["devices"] = [r.to_config() for r in self.device_rules]
        return out

    # --- the wire (CONFIG, plan.json)
    def to_wire(self) -> dict:
        d = self.to_dict()
        d["time_offsets"] = [list(t) for t in self.time_offsets]
        d["mounts"] = [m.to_dict() for m in self.mounts]
        d["devices"] = [x.to_dict() for x in self.devices]
        d["hooks"] = {p: [h.to_dict() for h in getattr(self.hooks, p)] for p in HOOK_PHASES
                      if getattr(self.hooks, p)}
        d["process"] = None if self.process is None else self.process.to_wire()
        d["seccomp"] = None if self.seccomp is None else self.seccomp.to_json()
        d["device_rules"] = None if self.device_rules is None else [r.to_config() for r in self.device_rules]
        d["notes"] = [list(n) for n in self.notes]
        return d

    @classmethod
    def from_wire(cls, d: dict) -> "LaunchPlan":
        d = dict(d)
        d["joins"] = [list(j) for j in d["joins"]]
        d["time_offsets"] = [tuple(t) for t in d["time_offsets"]]
        d["mounts"] = [MountOp(**m) for m in d["mounts"]]
        d["devices"] = [Device(**x) for x in d["devices"]]
        d["hooks"] = Hooks(**{p: [Hook(**h) for h in hooks] for p, hooks in d["hooks"].items()})
        d["notes"] = [tuple(n) for n in d["notes"]]
        if d["process"] is not None:
            d["process"] = ProcessPlan.from_wire(d["process"])
        if d["seccomp"] is not None:
            from .seccomp.model import CompiledFilter  # only with a filter: binascii and the seccomp package

            d["seccomp"] = CompiledFilter.from_json(d["seccomp"])
        if d["device_rules"] is not None:
            d["device_rules"] = [DeviceRule(**r) for r in d["device_rules"]]
        return cls(**d)


def launch_plan(spec, bundle: str, last_cap: int, seccomp=None, rootless: bool = False) -> LaunchPlan:
    """The plan of ``spec`` (a validated :class:`ocirun.config.Spec`) for the bundle at ``bundle``, on a
    kernel whose highest capability is ``last_cap``.  ``seccomp``: linux.seccomp as the parent compiled it
    (an ocirun.seccomp.model.CompiledFilter; compiling is not pure: libseccomp and its cache).
    ``rootless``: the device cgroup is not ours to write (see :func:`resources_with_default_devices`)."""
    linux = spec.linux
    by_type = {ns.type: ns for ns in linux.namespaces}
    joins = [[t, by_type[t].path] for t in JOIN_ORDER if t in by_type and by_type[t].path]
    new = [ns.type for ns in linux.namespaces if not ns.path]
    flags = 0
    for t in new:
        if t != "user":
            flags |= NAMESPACES[t][0]
    mounts = []
    for m in spec.mounts:
        op = mount_op(m, bundle)
        if linux.mountLabel:
            op.data = labelled_mount_data(op.fstype, op.bind, op.data, linux.mountLabel)
        mounts.append(op)
    caps, notes = capability_sets(spec.process, last_cap) if spec.process is not None else ({}, [])
    offsets = []
    if "time" in by_type:
        offsets = [(TIME_CLOCKS[clock], int(off.get("secs", 0)), int(off.get("nanosecs", 0)))
                   for clock, off in linux.timeOffsets.items()]
    profile = linux.seccomp or {}
    listener = profile.get("listenerPath") if seccomp is not None and seccomp.needs_listener else None
    applied = resources_with_default_devices(linux.resources, rootless=rootless)
    rules = applied.pop("devices", None)
    return LaunchPlan(
        joins=joins, new_user="user" in new, unshare_flags=flags, time_offsets=offsets,
        root_path=spec.root_path, root_readonly=spec.root_readonly, rootfs_propagation=linux.rootfsPropagation,
        mounts=mounts, mount_label=linux.mountLabel, devices=list(linux.devices),
        masked_paths=list(linux.maskedPaths), readonly_paths=list(linux.readonlyPaths),
        hostname=spec.hostname if "uts" in by_type else None, domainname=spec.domainname,
        sysctl=dict(linux.sysctl),
        personality=None if not linux.personality else personality_value(linux.personality),
        memory_policy=linux.memoryPolicy, hooks=spec.hooks,
        process=None if spec.process is None else process_plan(spec.process),
        last_cap=last_cap, capabilities=caps, notes=notes,
        seccomp=seccomp, seccomp_listener=listener,
        seccomp_metadata=profile.get("listenerMetadata") if listener else None,
        cgroups_path=linux.cgroupsPath, resources=applied,
        device_rules=None if rules is None else [DeviceRule(**r) for r in rules])


PROPAGATION_ROOTFS = {
    "private": k.MS_PRIVATE, "rprivate": k.MS_PRIVATE | k.MS_REC,
    "slave": k.MS_SLAVE, "rslave": k.MS_SLAVE | k.MS_REC,
    "shared": k.MS_SHARED, "rshared": k.MS_SHARED | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE, "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}

# --- rlimits ---------------------------------------------------------------------------------
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
RLIMIT_NAMES = {n: name for name, n in RLIMITS.items()}

# --- capabilities ----------------------------------------------------------------------------
CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBERS = {name: i for i, name in enumerate(CAPABILITIES)}


def cap_mask(names: list[str], last_cap: int) -> tuple[int, list[str]]:
    """Names → bit mask; names unknown or beyond the kernel's cap_last_cap are returned as skipped."""
    mask = 0
    skipped = []
    for name in names:
        n = CAP_NUMBERS.get(name.upper())
        if n is None or n > last_cap:
            skipped.append(name)
            continue
        mask |= 1 << n
    return mask, skipped


def cap_names(mask: int) -> list[str]:
    """Bit mask → names, lowest bit first (the inverse of :func:`cap_mask`); ``CAP_<n>`` for a bit
    this table has no name for (a newer kernel's)."""
    return [CAPABILITIES[bit] if bit < len(CAPABILITIES) else f"CAP_{bit}"
            for bit in range(mask.bit_length()) if mask >> bit & 1]


def capability_sets(process, last_cap: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Masks for the five sets, and notes ``(level, text)`` on what cannot be granted.

    An absent ``capabilities`` object means five empty sets, as in runc: a process never
    keeps the runtime's own capabilities by omission.  Names this kernel does not know are a
    warning, in runc's words.  An ambient capability the kernel will not raise (it must be in
    both permitted and inheritable) is dropped as runc drops it, without a warning (runc's own
    default config.json asks for such ambient capabilities): an ``info`` note, which shows with
    --debug and in the --log file but not on stderr."""
    caps = process.capabilities
    masks, unknown, notes = {}, [], []
    for name in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        mask, bad = cap_mask(getattr(caps, name) if caps else [], last_cap)
        masks[name] = mask
        unknown += [c for c in bad if c not in unknown]
    if unknown:
        notes.append(("warning", f"ignoring unknown or unavailable capabilities: [{' '.join(unknown)}]"))
    lost = masks["ambient"] & ~(masks["permitted"] & masks["inheritable"])
    if lost:
        names = ", ".join(cap_names(lost))
        notes.append(("info", f"process.capabilities.ambient: {names} not also permitted and inheritable "
                              "(the kernel cannot raise them): dropped"))
    masks["ambient"] &= ~lost
    return masks, notes


# --- sysctl ↔ namespace (runc's rules) ---------------------------------------------------------
IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def sysctl_namespace(key: str) -> str | None:
    """The namespace a sysctl belongs to, or None when it is not namespaced (then refused)."""
    if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


# --- personality -------------------------------------------------------------------------------
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
PERSONALITY_FLAGS = {
    "UNAME26": 0x0020000, "ADDR_NO_RANDOMIZE": 0x0040000, "FDPIC_FUNCPTRS": 0x0080000,
    "MMAP_PAGE_ZERO": 0x0100000, "ADDR_COMPAT_LAYOUT": 0x0200000, "READ_IMPLIES_EXEC": 0x0400000,
    "ADDR_LIMIT_32BIT": 0x0800000, "SHORT_INODE": 0x1000000, "WHOLE_SECONDS": 0x2000000,
    "STICKY_TIMEOUTS": 0x4000000, "ADDR_LIMIT_3GB": 0x8000000,
}


def personality_value(p: dict) -> int:
    value = PERSONALITY_DOMAINS[p["domain"]]
    for flag in p.get("flags") or []:
        value |= PERSONALITY_FLAGS[flag]
    return value
