"""The compiled filter: what the parent computes and the init stage loads; the listener rules.

Kept apart from libseccomp so that the init stage (and a cache hit) never
imports it: a :class:`CompiledFilter` is just the BPF program plus the flags
for seccomp(2), and travels to the init stage as JSON (:meth:`to_json`).
"""
from __future__ import annotations

import binascii

from ..errors import SeccompError
from ..records import Record, factory

SOCK_FILTER_SIZE = 8
BPF_MAXINSNS = 4096


class CompiledFilter(Record):
    """A :class:`ocirun.records.Record`, not a dataclass: ``dataclasses`` imports ``inspect`` (with ast,
    dis, tokenize, enum, re), ≈10 ms that every ``create`` with a seccomp profile paid twice (the CLI on
    a cache hit, and the init stage), more than the rest of the seccomp work.  Compares and prints by value."""

    bpf: bytes                              # struct sock_filter[] as exported by seccomp_export_bpf
    flags: int = 0                          # SECCOMP_FILTER_FLAG_* for seccomp(2)
    needs_listener: bool = False            # some rule is SCMP_ACT_NOTIFY (flags has NEW_LISTENER)
    warnings: list[str] = factory(list)

    @property
    def instructions(self) -> int:
        return len(self.bpf) // SOCK_FILTER_SIZE

    def check(self) -> None:
        """Raise ValueError unless ``bpf`` has the shape of a loadable program."""
        if not self.bpf or len(self.bpf) % SOCK_FILTER_SIZE:
            raise ValueError(f"BPF program of {len(self.bpf)} bytes is not a whole number of instructions")
        if self.instructions > BPF_MAXINSNS:
            raise ValueError(f"BPF program has {self.instructions} instructions (kernel limit {BPF_MAXINSNS})")

    def to_json(self) -> dict:
        # binascii, not base64: base64 imports re (and enum), ≈4 ms in the init stage
        return {"bpf": binascii.b2a_base64(self.bpf, newline=False).decode("ascii"), "flags": self.flags,
                "needsListener": self.needs_listener, "warnings": list(self.warnings)}

    @classmethod
    def from_json(cls, d: dict) -> "CompiledFilter":
        # = base64.b64decode(..., validate=True): strict mode refuses non-alphabet bytes and bad padding
        f = cls(binascii.a2b_base64(d["bpf"], strict_mode=True), int(d["flags"]),
                bool(d.get("needsListener")), [str(w) for w in d.get("warnings", [])])
        f.check()
        return f


def check_listener(seccomp: dict, needs_listener: bool) -> None:
    """The listenerPath / listenerMetadata rules of config-linux.md (checked on cache hits too)."""
    path = seccomp.get("listenerPath")
    meta = seccomp.get("listenerMetadata")
    if path is not None and (not isinstance(path, str) or not path):
        raise SeccompError("linux.seccomp.listenerPath: must be a non-empty string")
    if meta is not None:
        if not isinstance(meta, str):
            raise SeccompError(f"linux.seccomp.listenerMetadata: must be a string, not {meta!r}")
        if not path:
            raise SeccompError("linux.seccomp.listenerMetadata: must not be set without listenerPath")
    if needs_listener and not path:
        raise SeccompError("linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY")
