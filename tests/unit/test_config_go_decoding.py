"""config.json read as runc (Go's encoding/json) reads it: ``null`` is an absent member.

runc 1.1.5 here runs bundles with ``"linux": {"resources": null}``, ``"hooks": null``, ``"seccomp": null``,
``"rlimits": null``, ``"annotations": null``, ``"additionalGids": null``, a namespace ``"path": null``,
mount ``"options": null``, ``"maskedPaths": null``, and an ``ioPriority`` without ``priority``; ocirun
refused each at the schema ("null is not of type ...", "required property is missing").
"""
import json

import pytest

from ocirun import config
from ocirun.specgen import default_spec


def _write(tmp_path, spec) -> str:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    spec["root"] = {"path": str(tmp_path / "rootfs")}
    (tmp_path / "config.json").write_text(json.dumps(spec))
    return str(tmp_path)


@pytest.mark.parametrize("path", ["linux.resources", "hooks", "linux.seccomp", "process.rlimits", "annotations",
                                  "process.user.additionalGids", "linux.maskedPaths", "process.env",
                                  "linux.sysctl", "process.capabilities"])
def test_null_member_is_absent(tmp_path, path):
    spec = default_spec(args=["true"], terminal=False)
    *parents, last = path.split(".")
    cur = spec
    for key in parents:
        cur = cur[key]
    cur[last] = None
    loaded = config.load(_write(tmp_path, spec))
    cur = loaded.raw
    for key in parents:
        cur = cur[key]
    assert last not in cur


def test_nested_nulls_in_arrays_of_objects(tmp_path):
    spec = default_spec(args=["true"], terminal=False)
    spec["linux"]["namespaces"].append({"type": "cgroup", "path": None})
    spec["mounts"][0]["options"] = None
    loaded = config.load(_write(tmp_path, spec))
    assert loaded.linux.namespace("cgroup").path in (None, "")
    assert "options" not in loaded.raw["mounts"][0]


def test_null_array_element_is_still_refused(tmp_path):
    spec = default_spec(args=["true", None], terminal=False)
    with pytest.raises(config.ConfigError, match=r"process\.args\[1\]"):
        config.load(_write(tmp_path, spec))


def test_io_priority_without_priority(tmp_path):
    spec = default_spec(args=["true"], terminal=False)
    spec["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE"}
    assert config.load(_write(tmp_path, spec)).process.ioPriority == {"class": "IOPRIO_CLASS_BE"}
