"""The typed records of the spec that the launch plan carries as they are (ocirun.plan: hooks, the user,
capability names, device nodes) and the process object `exec` parses (its stage and its parent).  Parsed
by :mod:`ocirun.config`, which re-exports them; a module of their own so that the plan (pure, below
ocirun.validate) need not import config (which reaches validate when it loads a bundle), nor the stages,
which read the plan and a process object, not a config."""
from __future__ import annotations

from .records import Record, factory


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
