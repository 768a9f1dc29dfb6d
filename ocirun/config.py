"""Load config.json: read it, gate ociVersion, validate it, and parse it into typed records (ocirun.records).

Validation order matters for "bad input leaves nothing behind": everything in
this module runs before any side effect.  Parsing is tolerant of fields we do
not model (they stay in ``Spec.raw``) but every field a later stage acts on is
typed here, so a typo in the spec cannot silently become a no-op.
"""
from __future__ import annotations

import os

from .errors import ConfigError
from .records import Record, factory
# the records the launch plan carries as they are, and the stages read: defined with the plan (see there)
from .plan import HOOK_PHASES, Capabilities, Device, Hook, Hooks, Process, Rlimit, User  # noqa: F401


class Mount(Record):
    destination: str
    type: str | None = None
    source: str | None = None
    options: list[str] = factory(list)
    uidMappings: list[dict] = factory(list)
    gidMappings: list[dict] = factory(list)


class Namespace(Record):
    type: str
    path: str | None = None


class IdMapping(Record):
    containerID: int
    hostID: int
    size: int


class Linux(Record):
    namespaces: list[Namespace] = factory(list)
    uidMappings: list[IdMapping] = factory(list)
    gidMappings: list[IdMapping] = factory(list)
    timeOffsets: dict = factory(dict)
    devices: list[Device] = factory(list)
    cgroupsPath: str | None = None
    resources: dict | None = None
    rootfsPropagation: str | None = None
    seccomp: dict | None = None
    sysctl: dict = factory(dict)
    maskedPaths: list[str] = factory(list)
    readonlyPaths: list[str] = factory(list)
    mountLabel: str | None = None
    personality: dict | None = None
    intelRdt: dict | None = None
    memoryPolicy: dict | None = None
    netDevices: dict = factory(dict)

    @classmethod
    def parse(cls, d: dict | None) -> "Linux":
        d = d or {}
        ids = lambda key: [IdMapping(m["containerID"], m["hostID"], m["size"]) for m in d.get(key) or []]  # noqa: E731
        return cls(
            namespaces=[Namespace(n["type"], n.get("path") or None) for n in d.get("namespaces") or []],
            uidMappings=ids("uidMappings"),
            gidMappings=ids("gidMappings"),
            timeOffsets=dict(d.get("timeOffsets") or {}),
            devices=[Device(x["path"], x["type"], x.get("major", 0), x.get("minor", 0), x.get("fileMode"),
                            x.get("uid"), x.get("gid")) for x in d.get("devices") or []],
            cgroupsPath=d.get("cgroupsPath"),
            resources=d.get("resources"),
            rootfsPropagation=d.get("rootfsPropagation"),
            seccomp=d.get("seccomp"),
            sysctl=dict(d.get("sysctl") or {}),
            maskedPaths=list(d.get("maskedPaths") or []),
            readonlyPaths=list(d.get("readonlyPaths") or []),
            mountLabel=d.get("mountLabel"),
            personality=d.get("personality"),
            intelRdt=d.get("intelRdt"),
            memoryPolicy=d.get("memoryPolicy"),
            netDevices=dict(d.get("netDevices") or {}),
        )

    def namespace(self, nstype: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == nstype:
                return ns
        return None


class Spec(Record):
    ociVersion: str
    root_path: str
    root_readonly: bool
    process: Process | None
    hostname: str | None
    domainname: str | None
    mounts: list[Mount]
    hooks: Hooks
    annotations: dict
    linux: Linux
    raw: dict

    @classmethod
    def parse(cls, d: dict, bundle: str) -> "Spec":
        root = d.get("root") or {}
        rpath = root.get("path") or "rootfs"
        if not os.path.isabs(rpath):
            rpath = os.path.join(bundle, rpath)
        return cls(
            ociVersion=d["ociVersion"],
            root_path=os.path.normpath(rpath),
            root_readonly=bool(root.get("readonly", False)),
            process=Process.parse(d["process"]) if d.get("process") is not None else None,
            hostname=d.get("hostname"),
            domainname=d.get("domainname"),
            mounts=[Mount(m["destination"], m.get("type"), m.get("source"), list(m.get("options") or []),
                          list(m.get("uidMappings") or []), list(m.get("gidMappings") or []))
                    for m in d.get("mounts") or []],
            hooks=Hooks.parse(d.get("hooks")),
            annotations=dict(d.get("annotations") or {}),
            linux=Linux.parse(d.get("linux")),
            raw=d,
        )


def check_version(version) -> None:
    """Accept any 1.x.y (with -rc / +dev suffixes); refuse another major with a clear message."""
    if not isinstance(version, str) or not version:
        raise ConfigError("config.json: ociVersion: missing or not a string")
    core = version.split("+", 1)[0].split("-", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"config.json: ociVersion: {version!r} is not a semantic version")
    if parts[0] != "1":
        raise ConfigError(f"config.json: ociVersion: unsupported version {version} (ocirun runs runtime-spec 1.x)")


def read_json(path: str, what: str) -> dict:
    """Read a JSON object from ``path`` ('-' = stdin), with an error naming the file."""
    try:
        if path == "-":
            import sys

            text = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: no such file or directory") from None
    except OSError as e:
        raise ConfigError(f"{what} {path}: {e.strerror}") from None
    from .fastjson import loads

    try:
        data = loads(text)
    except ValueError as e:
        raise ConfigError(f"{what} {path}: invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path}: expected a JSON object")
    if b"null" in text:
        drop_nulls(data)
    return data


def drop_nulls(obj) -> None:
    """Remove every object member whose value is ``null``, at any depth, in place.

    runc decodes with Go's encoding/json, where ``null`` leaves a pointer, slice or map unset: to runc
    (and crun) ``"seccomp": null`` is no seccomp key at all.  Engines write such configs, so ocirun reads
    them the same way rather than refusing what runc runs.  A ``null`` inside an array is kept, for the
    schema to refuse (Go would make it an empty string or a zero object, which no field wants)."""
    if isinstance(obj, dict):
        for key in [k for k, v in obj.items() if v is None]:
            del obj[key]
        for v in obj.values():
            drop_nulls(v)
    elif isinstance(obj, list):
        for v in obj:
            drop_nulls(v)


def load(bundle: str) -> Spec:
    """Read, gate, validate and parse ``<bundle>/config.json``."""
    path = os.path.join(bundle, "config.json")
    raw = read_json(path, "config file")
    check_version(raw.get("ociVersion"))
    from . import schema

    schema.check(raw, "config", source="config.json")
    spec = Spec.parse(raw, bundle)
    from .validate import validate_spec

    validate_spec(spec)
    return spec


def load_process(path: str) -> Process:
    """Read an exec --process JSON file and validate it against the process schema."""
    raw = read_json(path, "process file")
    from . import schema

    schema.check(raw, "process", source=os.path.basename(path) if path != "-" else "process")
    return Process.parse(raw)
