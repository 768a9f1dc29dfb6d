"""The typed records of the spec that the launch plan carries as they are (ocirun.plan): hooks, the user,
capability names, device nodes.  Parsed by :mod:`ocirun.config`, which re-exports them; a module of
their own so that the plan (pure, below ocirun.validate) need not import config (which reaches
validate when it loads a bundle)."""
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
