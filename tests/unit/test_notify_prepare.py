"""notify.prepare adds the /run/notify mount and NOTIFY_SOCKET to the parsed spec without parsing
the config again: the result must equal a full parse of the amended config, and leave the original alone."""
import copy

import pytest

from ocirun import notify
from ocirun.config import Spec


def _raw(**changes):
    raw = {"ociVersion": "1.3.0", "root": {"path": "rootfs"},
           "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin", "NOTIFY_SOCKET=/host/sock", "A=1"],
                       "user": {"uid": 0, "gid": 0}},
           "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
           "linux": {"namespaces": [{"type": "mount"}]}}
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not DROP}


DROP = object()


@pytest.mark.parametrize("changes", [{}, {"mounts": []}, {"mounts": DROP}, {"process": DROP},
                                     {"process": {"args": ["sh"]}}])
def test_same_as_a_full_parse_of_the_amended_config(tmp_path, changes):
    raw = _raw(**changes)
    before = copy.deepcopy(raw)
    spec = Spec.parse(raw, str(tmp_path))
    state = tmp_path / "state"
    state.mkdir()
    out = notify.prepare(spec, str(state), str(tmp_path))
    assert out == Spec.parse(notify.with_notify_mount(before, str(state)), str(tmp_path))
    assert raw == before and spec == Spec.parse(before, str(tmp_path))  # the caller's config is untouched
    assert (state / "notify").is_dir()
    assert out.mounts[-1].destination == "/run/notify" and out.raw["mounts"][-1]["source"] == str(state / "notify")
    if "process" in raw:
        env = out.process.env
        assert env[-1] == "NOTIFY_SOCKET=/run/notify/notify.sock" and sum("NOTIFY_SOCKET=" in e for e in env) == 1
        assert out.raw["process"]["env"] == env


def test_with_notify_mount_leaves_its_input_alone():
    raw = _raw()
    before = copy.deepcopy(raw)
    out = notify.with_notify_mount(raw, "/run/ocirun/c1")
    assert raw == before
    assert out["mounts"][:-1] == raw["mounts"] and out["mounts"] is not raw["mounts"]
    assert out["mounts"][-1] == {"destination": "/run/notify", "type": "bind", "source": "/run/ocirun/c1/notify",
                                 "options": ["bind", "nosuid", "noexec", "nodev", "ro"]}
    assert out["process"]["env"] == ["PATH=/bin", "A=1", "NOTIFY_SOCKET=/run/notify/notify.sock"]
