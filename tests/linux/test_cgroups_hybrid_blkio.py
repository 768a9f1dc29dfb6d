"""Real checks on this host's layout: blkio statistics from the throttle files when no disk uses CFQ/BFQ, and
the hybrid unified hierarchy (hugetlb offered only there; ``unified`` keys; v1-bound keys refused)."""
from __future__ import annotations

import glob
import json
import os

import pytest

from .test_cgroup_commands import MODE, ROOT
from .test_cgroup_commands import box as boxes  # noqa: F401  (the same fixture: containers + leak check)

pytestmark = pytest.mark.root


def _v2_only_hugetlb() -> bool:
    try:
        with open(f"{ROOT}/unified/cgroup.controllers") as f:
            avail = f.read().split()
    except OSError:
        return False
    return MODE == "hybrid" and "hugetlb" in avail and not os.path.ismount(f"{ROOT}/hugetlb")  # conmon leaves plain dirs on the tmpfs


@pytest.mark.skipif(MODE not in ("v1", "hybrid") or not os.path.exists(f"{ROOT}/blkio"), reason="needs v1 blkio")
def test_blkio_stats_come_from_the_throttle_files(boxes, tmp_path):
    # 64 direct 4 KiB writes to a file on the host disk: the block layer charges them to the container's cgroup
    b = boxes("dd if=/dev/zero of=/out/blk bs=4096 count=64 oflag=direct 2>/out/dd.err; echo ok > /out/ready; "
              "sleep 1000")
    b.wait_file("ready")
    dev = os.stat(b.out).st_dev
    major, minor = os.major(dev), os.minor(dev)
    bfq = b.cg("blkio", "blkio.bfq.io_service_bytes_recursive")
    if os.path.exists(bfq):                    # this VM: BFQ files present, but no disk uses BFQ
        assert open(bfq).read().strip() == "Total 0"
    r = b.oci("events", "--stats", b.cid)
    assert r.returncode == 0, r.stderr
    blk = json.loads(r.stdout)["data"]["blkio"]
    writes = [e for e in blk["ioServiceBytesRecursive"]
              if e["major"] == major and e.get("minor", 0) == minor and e["op"] == "Write"]
    assert writes and writes[0]["value"] >= 64 * 4096, blk
    ios = [e for e in blk["ioServicedRecursive"]
           if e["major"] == major and e.get("minor", 0) == minor and e["op"] == "Write"]
    assert ios and ios[0]["value"] >= 1, blk
    # the same numbers as the kernel's throttle file
    thr = open(b.cg("blkio", "blkio.throttle.io_service_bytes_recursive")).read()
    assert f"{major}:{minor} Write {writes[0]['value']}" in thr


need_hybrid_hugetlb = pytest.mark.skipif(not _v2_only_hugetlb(),
                                         reason="needs a hybrid host whose hugetlb is only in the unified hierarchy")


@need_hybrid_hugetlb
def test_hugepage_limit_lands_in_the_unified_hierarchy(boxes):
    b = boxes("cat /sys/fs/cgroup/unified/hugetlb.2MB.max > /out/max; cat /proc/self/cgroup > /out/cg; "
              "sleep 1000", resources={"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
                                       "unified": {"hugetlb.1GB.max": "0"}})
    uni = f"{ROOT}/unified/ocirun-test/{b.name}"
    assert open(f"{uni}/hugetlb.2MB.max").read().strip() == "4194304"
    assert open(f"{uni}/hugetlb.1GB.max").read().strip() == "0"
    assert b.pid in [int(x) for x in open(f"{uni}/cgroup.procs").read().split()]
    assert b.wait_file("max") == "4194304"                  # and from inside
    assert f"0::/ocirun-test/{b.name}" in b.wait_file("cg")
    r = b.oci("events", "--stats", b.cid)
    assert "2MB" in json.loads(r.stdout)["data"]["hugetlb"]


@need_hybrid_hugetlb
def test_unified_key_of_a_v1_controller_is_refused_and_nothing_is_left(oci, tmp_path):
    spec = oci.config(args=("true",))
    name = os.path.basename(spec["linux"]["cgroupsPath"])
    spec["linux"]["resources"] = {"unified": {"memory.max": "100000000"}}
    r = oci.run(spec, "c1")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == (
        "ocirun: invalid configuration: cannot set unified resource 'memory.max' on this hybrid host: the memory controller is not "
        f"available in the cgroup v2 hierarchy {ROOT}/unified (it is bound to the cgroup v1 hierarchy "
        f"{ROOT}/memory; cgroup.controllers there: "
        + open(f"{ROOT}/unified/cgroup.controllers").read().strip() + ")")
    assert glob.glob(f"{ROOT}/*/ocirun-test/{name}") == [] and oci.ids() == []
