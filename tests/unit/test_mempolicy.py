"""linux.memoryPolicy: node-list parsing, the combination rules, and the system call made (fake kernel)."""
import pytest

from ocirun import mempolicy
from ocirun.errors import ConfigError, InitError
from ocirun.kernel.fake import FakeKernel


@pytest.mark.parametrize("text,nodes", [
    ("0", [0]), ("0-3,7", [0, 1, 2, 3, 7]), ("7,0-1", [0, 1, 7]), (" 2 - 3 , 2", [2, 3]),
    ("", []), (None, []), ("1023", [1023]), ("5-5", [5]),
])
def test_parse_nodes(text, nodes):
    assert mempolicy.parse_nodes(text) == nodes


@pytest.mark.parametrize("text,why", [
    ("3-1", "runs backwards"), ("a", "not a node number"), ("1,,2", "empty element"), ("1-", "not a node number"),
    ("-1", "not a node number"), ("1024", "beyond the largest possible node"), ("0x1", "not a node number"),
    ("１", "not a node number"),  # a full-width digit is isdigit() but not a node number
])
def test_parse_nodes_refuses(text, why):
    with pytest.raises(ValueError, match=why):
        mempolicy.parse_nodes(text)


@pytest.mark.parametrize("policy,value,nodes", [
    ({"mode": "MPOL_DEFAULT"}, 0, []),
    ({"mode": "MPOL_LOCAL"}, 4, []),
    ({"mode": "MPOL_PREFERRED"}, 1, []),
    ({"mode": "MPOL_PREFERRED", "nodes": "1"}, 1, [1]),
    ({"mode": "MPOL_BIND", "nodes": "0-3,7"}, 2, [0, 1, 2, 3, 7]),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "2-3", "flags": ["MPOL_F_STATIC_NODES"]}, 3 | 1 << 15, [2, 3]),
    ({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}, 6 | 1 << 14, [0]),
    ({"mode": "MPOL_PREFERRED_MANY", "nodes": "0,1", "flags": ["MPOL_F_NUMA_BALANCING"]}, 5 | 1 << 13, [0, 1]),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_STATIC_NODES"]},
     2 | 1 << 13 | 1 << 15, [0]),
    ({"mode": "MPOL_DEFAULT", "flags": ["MPOL_F_STATIC_NODES"]}, 1 << 15, []),  # the kernel accepts it
])
def test_plan(policy, value, nodes):
    assert mempolicy.plan(policy) == (value, nodes)


@pytest.mark.parametrize("policy,field,why", [
    ({}, "linux.memoryPolicy.mode", "is required"),
    ({"mode": "MPOL_FOO"}, "linux.memoryPolicy.mode", "unknown mode 'MPOL_FOO'"),
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes", "requires at least one node"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": ""}, "linux.memoryPolicy.nodes", "requires at least one node"),
    ({"mode": "MPOL_WEIGHTED_INTERLEAVE"}, "linux.memoryPolicy.nodes", "requires at least one node"),
    ({"mode": "MPOL_PREFERRED_MANY"}, "linux.memoryPolicy.nodes", "requires at least one node"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "linux.memoryPolicy.nodes", "takes no nodes"),
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, "linux.memoryPolicy.nodes", "takes no nodes"),
    ({"mode": "MPOL_LOCAL", "flags": ["MPOL_F_STATIC_NODES"]}, "linux.memoryPolicy.flags", "takes no flags"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "linux.memoryPolicy.flags", "cannot be used together"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
     "linux.memoryPolicy.flags", "requires mode MPOL_BIND or MPOL_PREFERRED_MANY"),
    ({"mode": "MPOL_PREFERRED", "flags": ["MPOL_F_RELATIVE_NODES"]}, "linux.memoryPolicy.nodes", "requires a node"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_BOGUS"]}, r"linux.memoryPolicy.flags\[0\]",
     "unknown flag"),
    ({"mode": "MPOL_BIND", "nodes": "4-2"}, "linux.memoryPolicy.nodes", "runs backwards"),
    ({"mode": "MPOL_BIND", "nodes": 3}, "linux.memoryPolicy.nodes", "must be a string"),
])
def test_plan_refuses_with_the_field(policy, field, why):
    with pytest.raises(ConfigError, match=f"^config.json: {field}: .*{why}"):
        mempolicy.plan(policy)


def test_tables_match_the_schema():
    """The names the code acts on are exactly the spec's enums (spec/defs-linux.json)."""
    import json
    import os

    import ocirun

    spec_dir = os.path.join(os.path.dirname(os.path.dirname(ocirun.__file__)), "spec")
    with open(os.path.join(spec_dir, "defs-linux.json")) as f:
        defs = json.load(f)["definitions"]
    assert set(mempolicy.MODES) == set(defs["MemoryPolicyMode"]["enum"])
    assert set(mempolicy.FLAGS) == set(defs["MemoryPolicyFlag"]["enum"])


def test_apply_makes_one_set_mempolicy_call(monkeypatch):
    fk = FakeKernel(monkeypatch)
    mempolicy.apply({"mode": "MPOL_INTERLEAVE", "nodes": "0-1,4", "flags": ["MPOL_F_STATIC_NODES"]})
    assert fk.calls == [("set_mempolicy", (3 | 1 << 15, [0, 1, 4]))]


def test_apply_reports_the_kernel_refusal_with_mode_and_nodes(monkeypatch):
    FakeKernel(monkeypatch, {"set_mempolicy": OSError(22, "set_mempolicy: Invalid argument")})
    with pytest.raises(InitError, match=r"^linux.memoryPolicy: set_mempolicy\(MPOL_BIND, nodes 3\): Invalid argument$"):
        mempolicy.apply({"mode": "MPOL_BIND", "nodes": "3"})
