"""README's "runtime-spec 1.3 Linux fields" table cannot drift: every schema field is in it, no other,
each with a known status, and what it says agrees with `ocirun features`."""
import json
import os
import re

import pytest

import ocirun
from ocirun.features import features

ROOT = os.path.dirname(os.path.dirname(ocirun.__file__))
SPEC = os.path.join(ROOT, "spec")
SECTION = "## runtime-spec 1.3 Linux fields"
STATUSES = {"implemented", "host", "warned", "refused", "n/a"}


# -- the schema's fields ------------------------------------------------------------------------------
_docs: dict = {}


def _load(name):
    if name not in _docs:
        with open(os.path.join(SPEC, name)) as f:
            _docs[name] = json.load(f)
    return _docs[name]


def _resolve(node, cur):
    while isinstance(node, dict) and "$ref" in node:
        fname, _, frag = node["$ref"].partition("#")
        cur = fname or cur
        node = _load(cur)
        for part in filter(None, frag.split("/")):
            node = node[part]
    return node, cur


def _props(node, cur):
    node, cur = _resolve(node, cur)
    out = {}
    for sub in node.get("allOf", []) + node.get("anyOf", []) + node.get("oneOf", []):
        out.update(_props(sub, cur))
    for key, value in (node.get("properties") or {}).items():
        out[key] = (value, cur)
    return out


def _walk(node, cur, prefix, out):
    node, cur = _resolve(node, cur)
    if isinstance(node.get("items"), dict):
        return _walk(node["items"], cur, prefix + "[]", out)
    props = _props(node, cur)
    for key, (value, where) in props.items():
        name = f"{prefix}.{key}" if prefix else key
        out.append(name)
        _walk(value, where, name, out)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra and not props and _props(*_resolve(extra, cur)):
        _walk(extra, cur, prefix + ".<name>", out)
    return out


def schema_fields() -> set:
    return set(_walk(_load("config-schema.json"), "config-schema.json", "", []))


# -- the README table -----------------------------------------------------------------------------------
def expand(pattern: str) -> list:
    """``a.{b,c}.{d,e}`` → the four names."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [name for alt in m.group(1).split(",")
            for name in expand(pattern[:m.start()] + alt + pattern[m.end():])]


def readme_table() -> dict:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in body.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, line
        fields_cell, status, note = cells
        for pattern in re.findall(r"`([^`]+)`", fields_cell):
            for name in expand(pattern):
                assert name not in rows, f"{name} is listed twice"
                rows[name] = (status, note)
    return rows


@pytest.fixture(scope="module")
def table():
    return readme_table()


@pytest.fixture(scope="module")
def feats():
    return features()


def test_expand():
    assert expand("a.{b,c}[].{d,e}") == ["a.b[].d", "a.b[].e", "a.c[].d", "a.c[].e"]
    assert expand("x") == ["x"]


def test_every_schema_field_is_in_the_table_and_nothing_else(table):
    fields = schema_fields()
    assert len(fields) > 200  # the walk really followed the $refs
    assert sorted(fields - set(table)) == [], "fields missing from README's table"
    assert sorted(set(table) - fields) == [], "README lists fields the schema does not have"


def test_statuses_are_known_and_explained(table):
    for name, (status, note) in table.items():
        assert status in STATUSES, name
        if status in ("host", "warned", "refused", "n/a"):
            assert note, f"{name}: a {status} field needs its reason"


def _status(table, name):
    return table[name][0]


def test_table_agrees_with_features(table, feats):
    linux = feats["linux"]
    usable = ("implemented", "host")
    for phase in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"):
        assert (_status(table, f"hooks.{phase}") in usable) == (phase in feats["hooks"]), phase
    assert (_status(table, "linux.namespaces[].type") in usable) == bool(linux["namespaces"])
    defs = _load("defs-linux.json")["definitions"]
    assert set(linux["namespaces"]) == set(defs["NamespaceType"]["enum"])
    idmap = linux["mountExtensions"]["idmap"]["enabled"]
    for name in ("mounts[].uidMappings", "mounts[].gidMappings"):
        assert (_status(table, name) in usable) == idmap
    assert (_status(table, "linux.netDevices") in usable) == linux["netDevices"]["enabled"]
    rdt = linux["intelRdt"]
    assert (_status(table, "linux.intelRdt") in usable) == rdt["enabled"]
    assert (_status(table, "linux.intelRdt.schemata") in usable) == rdt["schemata"]
    assert (_status(table, "linux.intelRdt.enableMonitoring") in usable) == rdt["monitoring"]
    mp = linux["memoryPolicy"]
    assert _status(table, "linux.memoryPolicy.mode") in usable
    assert set(mp["modes"]) == set(defs["MemoryPolicyMode"]["enum"])
    assert set(mp["flags"]) == set(defs["MemoryPolicyFlag"]["enum"])
    assert (_status(table, "linux.resources.rdma") in usable) == linux["cgroup"]["rdma"]
    # seccomp depends on libseccomp being there: "host", and every spec action/operator recognized
    assert _status(table, "linux.seccomp") == "host"
    assert set(linux["seccomp"]["actions"]) == set(defs["SeccompAction"]["enum"])
    assert set(linux["seccomp"]["operators"]) == set(defs["SeccompOperator"]["enum"])
    # LSM fields: "host" (refused where the module is absent), and features reports the module
    assert _status(table, "process.apparmorProfile") == "host" and "apparmor" in linux
    assert _status(table, "process.selinuxLabel") == "host" and "selinux" in linux
    for key in feats["potentiallyUnsafeConfigAnnotations"]:
        assert key in table["annotations"][1]


def _config(**linux):
    from ocirun.specgen import default_spec

    spec = default_spec(args=["true"], terminal=False)
    spec["linux"].update(linux)
    return spec


def test_refused_fields_are_refused_by_the_schema(table):
    from ocirun import schema

    refused = sorted(name for name, (status, _) in table.items() if status == "refused")
    assert refused == ["linux.personality.flags"]  # a new refusal needs a sample below
    errors = schema.validate(_config(personality={"domain": "LINUX", "flags": ["X"]}), "config")
    assert any("linux.personality.flags" in e for e in errors), errors


def test_the_new_fields_validate_as_the_table_says(tmp_path):
    """memoryPolicy is accepted (implemented); intelRdt reaches the resctrl check (host)."""
    from ocirun.config import Spec
    from ocirun.errors import ConfigError
    from ocirun.validate import validate_spec

    (tmp_path / "rootfs").mkdir()
    good = Spec.parse(_config(memoryPolicy={"mode": "MPOL_BIND", "nodes": "0"}), str(tmp_path))
    good.root_path = str(tmp_path / "rootfs")
    validate_spec(good)
    rdt = Spec.parse(_config(intelRdt={"closID": "x", "schemata": ["L3:0=1"]}), str(tmp_path))
    rdt.root_path = str(tmp_path / "rootfs")
    resctrl = " - resctrl " in open("/proc/self/mountinfo").read()
    if resctrl:
        pytest.skip("this host has resctrl: the refusal cannot be shown")
    with pytest.raises(ConfigError, match="^config.json: linux.intelRdt: "):
        validate_spec(rdt)
