"""Fake cgroup trees in a tmp dir (helpers for the test_cgroups* modules; no tests here)."""
from __future__ import annotations

import os
from pathlib import Path

V1_HIERARCHIES = ["cpu,cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
                  "net_cls,net_prio", "rdma", "name=systemd"]


def _dirname(opts: str) -> str:
    return opts.split("=", 1)[1] if opts.startswith("name=") else opts


class FakeHost:
    def __init__(self, tmp: Path, mode: str = "v1", hierarchies=None, own: dict | None = None,
                 mount_roots: dict | None = None):
        self.tmp = tmp
        self.root = str(tmp / "cg")
        os.makedirs(self.root)
        lines = [f"20 1 0:20 / {tmp}/otherfs rw - ext4 /dev/vda rw"]
        if mode == "unified":
            lines.append(f"30 1 0:30 / {self.root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate")
        else:
            lines.append(f"29 1 0:29 / {self.root} rw - tmpfs tmpfs rw,mode=755")
            for i, h in enumerate(hierarchies or V1_HIERARCHIES):
                mp = os.path.join(self.root, _dirname(h))
                os.makedirs(mp)
                mroot = (mount_roots or {}).get(h, "/")
                lines.append(f"{40 + i} 29 0:{40 + i} {mroot} {mp} rw,nosuid,nodev,noexec,relatime - cgroup cgroup "
                             f"rw,{h}")
            if mode == "hybrid":
                mp = os.path.join(self.root, "unified")
                os.makedirs(mp)
                lines.append(f"60 29 0:60 / {mp} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate")
        self.mountinfo = str(tmp / "mountinfo")
        Path(self.mountinfo).write_text("\n".join(lines) + "\n")
        own = own or {}
        self.proc_self_cgroup = str(tmp / "self_cgroup")
        text = []
        if mode != "unified":
            for i, h in enumerate(hierarchies or V1_HIERARCHIES):
                text.append(f"{i + 1}:{h}:{own.get(h, '/')}")
        text.append(f"0::{own.get('', '/')}")
        Path(self.proc_self_cgroup).write_text("\n".join(text) + "\n")

    def kw(self) -> dict:
        return dict(root=self.root, mountinfo=self.mountinfo, proc_self_cgroup=self.proc_self_cgroup)


def touch(d: str, files: dict | list) -> None:
    """Create control files in ``d`` (a list → empty files; a dict → name: content)."""
    os.makedirs(d, exist_ok=True)
    if isinstance(files, list):
        files = {f: "" for f in files}
    for name, content in files.items():
        Path(d, name).write_text(content)


def content(d: str, name: str) -> str:
    return Path(d, name).read_text()
