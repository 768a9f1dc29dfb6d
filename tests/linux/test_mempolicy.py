"""linux.memoryPolicy in real containers, and the validator's rules checked against the real syscall."""
import itertools
import os

import pytest

from ocirun import mempolicy
from ocirun.errors import ConfigError
from ocirun.kernel import linux as k



def _policy_line(out: str) -> str:
    """The policy column of the first /proc/self/numa_maps line (the program's text mapping)."""
    first = out.splitlines()[0]
    return first.split(" file=")[0].split(" ", 1)[1]


def test_bind_node0_is_the_policy_of_the_container_process(oci):
    spec = oci.config(args=("head", "-1", "/proc/self/numa_maps"))
    spec["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}
    r = oci.run(spec, "mp-bind")
    assert r.returncode == 0, r.stderr
    assert _policy_line(r.stdout) == "bind:0"


def test_without_memory_policy_the_default_is_kept(oci):
    r = oci.run(oci.config(args=("head", "-1", "/proc/self/numa_maps")), "mp-none")
    assert r.returncode == 0, r.stderr
    assert _policy_line(r.stdout) == "default"


@pytest.mark.parametrize("policy,expected", [
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, "interleave=static:0"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0"),
    ({"mode": "MPOL_PREFERRED_MANY", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}, "prefer (many)=balancing:0"),
    ({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]},
     "weighted interleave=relative:0"),
    ({"mode": "MPOL_LOCAL"}, "local"),
])
def test_other_modes_and_flags_reach_the_process(oci, policy, expected):
    spec = oci.config(args=("head", "-1", "/proc/self/numa_maps"))
    spec["linux"]["memoryPolicy"] = policy
    r = oci.run(spec, "mp-mode")
    assert r.returncode == 0, r.stderr
    assert _policy_line(r.stdout) == expected


def test_exec_process_gets_the_policy_too(oci):
    spec = oci.config(args=("sleep", "30"))
    spec["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0"}
    oci.write(spec)
    oci("run", "-d", "--bundle", oci.bundle, "mp-exec", check=True)
    r = oci("exec", "mp-exec", "head", "-1", "/proc/self/numa_maps")
    oci("delete", "--force", "mp-exec")
    assert r.returncode == 0, r.stderr
    assert _policy_line(r.stdout) == "interleave:0"


def test_invalid_combination_is_refused_before_anything_happens(oci):
    spec = oci.config()
    spec["linux"]["memoryPolicy"] = {"mode": "MPOL_LOCAL", "nodes": "0"}
    oci.write(spec)
    r = oci("create", "--bundle", oci.bundle, "mp-bad")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1].endswith("config.json: linux.memoryPolicy.nodes: mode MPOL_LOCAL "
                                                      "takes no nodes (got '0')")
    assert oci.ids() == []


def test_node_the_kernel_refuses_fails_create_and_leaves_nothing(oci):
    nodes = open("/sys/devices/system/node/possible").read().strip()
    absent = mempolicy.parse_nodes(nodes)[-1] + 1
    spec = oci.config()
    spec["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": str(absent)}
    oci.write(spec)
    r = oci("create", "--bundle", oci.bundle, "mp-absent")
    assert r.returncode != 0
    assert f"linux.memoryPolicy: set_mempolicy(MPOL_BIND, nodes {absent}): invalid argument" in r.stderr
    assert oci.ids() == []


def _kernel_accepts(value: int, nodes: list[int]) -> bool:
    """Try set_mempolicy in a child process (the policy must not stick to the test runner)."""
    pid = os.fork()
    if pid == 0:
        try:
            k.set_mempolicy(value, nodes)
            os._exit(0)
        except OSError:
            os._exit(1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) in (0, 1)
    return os.WEXITSTATUS(status) == 0


def test_validator_agrees_with_the_kernel_on_every_combination():
    """Every mode × flag subset × (no nodes | node 0): plan() refuses exactly what set_mempolicy refuses."""
    disagreements = []
    flag_sets = [c for r in range(len(mempolicy.FLAGS) + 1) for c in itertools.combinations(mempolicy.FLAGS, r)]
    for mode in mempolicy.MODES:
        for flags in flag_sets:
            for nodes in ("", "0"):
                policy = {"mode": mode, "nodes": nodes, "flags": list(flags)}
                try:
                    value, parsed = mempolicy.plan(policy)
                    ours = True
                except ConfigError:
                    value = mempolicy.MODES[mode] | sum(mempolicy.FLAGS[f] for f in flags)
                    parsed, ours = mempolicy.parse_nodes(nodes), False
                kernel = _kernel_accepts(value, parsed)
                if ours != kernel:
                    disagreements.append((mode, flags, nodes, "ocirun", ours, "kernel", kernel))
    assert disagreements == []
    assert len(flag_sets) * len(mempolicy.MODES) * 2 == 112
