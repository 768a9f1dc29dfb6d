"""The device allow list: one model for v1 and v2.

``linux.resources.devices`` is applied in order, with the kernel's v1 semantics, starting from "deny all"
(as runc does, so a list without a leading wildcard is still an allow list):

* a rule of type ``a`` (or no type) switches the default: allow everything or deny everything, and
  forgets every exception (the kernel ignores major/minor/access of an ``a`` rule);
* any other rule that goes against the default adds an exception (accesses merge per device);
  one that goes with the default removes those accesses from the exact same exception.

Removing an access that a *wildcard* exception still grants (deny ``c 1:3 m`` while ``c *:* m`` is allowed)
is silently ignored by the v1 kernel; like runc we refuse it instead of leaving the device open.

The resulting :class:`DeviceState` is written to a v1 cgroup as the smallest sequence of ``devices.allow``
/ ``devices.deny`` writes (:func:`v1_transition`), or compiled into an eBPF program for v2
(:mod:`ocirun.cgroups.ebpf`) — so both versions enforce exactly the same thing.
"""
from __future__ import annotations

from ..records import Record, factory

from ..errors import CgroupError

ACCESS_ORDER = "rwm"
WILDCARD_ALL = "a *:* rwm"


class Rule(Record):
    """One device rule (treated as immutable): type "a", "b" or "c"; major/minor None = any ("*").

    A :class:`ocirun.records.Record`, not a namedtuple: ``collections`` costs ≈1.5 ms, and this module
    is imported wherever device limits are applied (create, update)."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def __hash__(self) -> int:
        return hash((self.allow, self.type, self.major, self.minor, self.access))

    def entry(self) -> str:
        return format_entry(self.type, self.major, self.minor, self.access)


def norm_access(access: str) -> str:
    return "".join(c for c in ACCESS_ORDER if c in access)


def format_entry(type_: str, major: int | None, minor: int | None, access: str) -> str:
    if type_ == "a":
        return WILDCARD_ALL
    ma = "*" if major is None or major < 0 else str(major)
    mi = "*" if minor is None or minor < 0 else str(minor)
    return f"{type_} {ma}:{mi} {norm_access(access)}"


def parse_rules(devices: list) -> list[Rule]:
    """Validate ``linux.resources.devices`` entries and turn them into :class:`Rule` s."""
    rules = []
    for i, d in enumerate(devices or []):
        if not isinstance(d, dict) or not isinstance(d.get("allow"), bool):
            raise CgroupError(f"linux.resources.devices[{i}]: \"allow\" (boolean) is required")
        type_ = d.get("type") or "a"
        if type_ not in ("a", "b", "c"):
            raise CgroupError(f"linux.resources.devices[{i}]: invalid device type {type_!r}")
        access = d.get("access")
        if access is None:
            access = "rwm"
        if not isinstance(access, str):
            raise CgroupError(f"linux.resources.devices[{i}]: invalid access {access!r}")
        if access == "":
            raise CgroupError(f"linux.resources.devices[{i}]: device access cannot be empty")  # runc's words
        # letters other than r, w and m are ignored, as runc's Permissions ignore them ("rwa" is rw)
        major, minor = d.get("major"), d.get("minor")
        for name, v in (("major", major), ("minor", minor)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < -1 or v > 0xFFFFFFFF):
                raise CgroupError(f"linux.resources.devices[{i}]: invalid {name} {v!r}")
        rules.append(Rule(d["allow"], type_, None if major in (None, -1) else major,
                          None if minor in (None, -1) else minor, norm_access(access)))
    return rules


Key = tuple  # (type, major|None, minor|None)


class DeviceState(Record):
    default_allow: bool = False
    exceptions: dict = factory(dict)   # Key → access string

    def entries(self) -> list[str]:
        return [format_entry(t, ma, mi, acc) for (t, ma, mi), acc in self.exceptions.items()]

    def allows(self, type_: str, major: int, minor: int, access: str) -> bool:
        """What the kernel decides for one access (used by tests and to cross-check the eBPF program)."""
        req = set(access)
        if self.default_allow:
            for (t, ma, mi), acc in self.exceptions.items():
                if _matches(t, ma, mi, type_, major, minor) and req & set(acc):
                    return False
            return True
        for (t, ma, mi), acc in self.exceptions.items():
            if _matches(t, ma, mi, type_, major, minor) and req <= set(acc):
                return True
        return False


def _matches(t, ma, mi, type_, major, minor) -> bool:
    return t == type_ and (ma is None or ma == major) and (mi is None or mi == minor)


def emulate(rules: list[Rule], start: DeviceState | None = None) -> DeviceState:
    st = start if start is not None else DeviceState(False, {})
    st = DeviceState(st.default_allow, dict(st.exceptions))
    for r in rules:
        if r.type == "a":
            st = DeviceState(r.allow, {})
            continue
        key = (r.type, r.major, r.minor)
        if r.allow != st.default_allow:
            st.exceptions[key] = norm_access(st.exceptions.get(key, "") + r.access)
            continue
        # removal: refuse if a broader exception keeps granting (or denying) what is being removed
        for (t, ma, mi), acc in st.exceptions.items():
            if (t, ma, mi) == key or t != r.type:
                continue
            broader = (ma is None or ma == r.major) and (mi is None or mi == r.minor)
            if broader and set(acc) & set(r.access):
                what = "deny" if not r.allow else "allow"
                raise CgroupError(f"cannot {what} {r.entry()}: it is covered by the wider exception "
                                  f"{format_entry(t, ma, mi, acc)}, which the kernel would keep")
        if key in st.exceptions:
            left = norm_access("".join(c for c in st.exceptions[key] if c not in r.access))
            if left:
                st.exceptions[key] = left
            else:
                del st.exceptions[key]
    return st


def parse_list(text: str) -> DeviceState | None:
    """devices.list → state.  None when the default is allow: the kernel then hides the exceptions."""
    exceptions = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        t, mm, acc = parts
        if t == "a":
            return None
        ma, _, mi = mm.partition(":")
        exceptions[(t, None if ma == "*" else int(ma), None if mi == "*" else int(mi))] = norm_access(acc)
    return DeviceState(False, exceptions)


def v1_transition(current: DeviceState | None, target: DeviceState) -> list[tuple[str, str]]:
    """The writes that take a v1 cgroup from ``current`` (None = unknown / default allow) to ``target``.

    When both deny by default only the difference is written (removals first), so a running container
    never loses, even briefly, a device it keeps; otherwise the default is reset with an ``a`` rule."""
    add_file = "devices.deny" if target.default_allow else "devices.allow"
    rm_file = "devices.allow" if target.default_allow else "devices.deny"
    if current is None or current.default_allow or target.default_allow:
        writes = [("devices.allow" if target.default_allow else "devices.deny", WILDCARD_ALL)]
        writes += [(add_file, e) for e in target.entries()]
        return writes
    writes = []
    for key, acc in current.exceptions.items():
        gone = norm_access("".join(c for c in acc if c not in target.exceptions.get(key, "")))
        if gone:
            writes.append((rm_file, format_entry(*key, gone)))
    for key, acc in target.exceptions.items():
        new = norm_access("".join(c for c in acc if c not in current.exceptions.get(key, "")))
        if new:
            writes.append((add_file, format_entry(*key, new)))
    return writes
