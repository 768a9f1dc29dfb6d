"""`exec` reads the container's config.json once, and a missing one fails where and as it always did:
unwrapped when the process comes from it, as the seccomp profile's otherwise, and after the checks on
a --process file.  The stage and the launch are faked: no root, no container."""
import json
import os
from types import SimpleNamespace

import pytest

from ocirun import config, exec as ex, launcher
from ocirun.errors import ConfigError, OciError

PROCESS = {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "env": ["A=1"]}


class _Log:
    def warning(self, msg):
        pass


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """execute() with a fake stage and launch; records config.json reads, discards and the launch."""
    rec = SimpleNamespace(reads=[], discarded=0, launched=None, bundle=str(tmp_path / "bundle"))
    os.mkdir(rec.bundle)
    real = config.read_json

    def read_json(path, what):
        rec.reads.append(os.path.basename(path))
        return real(path, what)

    def discard(pid, sock):
        rec.discarded += 1

    def launch(rt, st, raw, opts, terminal, subs, seccomp_wire, from_config, paused, init):
        rec.launched = SimpleNamespace(raw=raw, seccomp=seccomp_wire, from_config=from_config)
        return 0

    monkeypatch.setattr(config, "read_json", read_json)
    monkeypatch.setattr(launcher, "spawn_init", lambda *a, **kw: (None, None))
    monkeypatch.setattr(launcher, "discard_init", discard)
    monkeypatch.setattr(ex, "_launch", launch)
    st = SimpleNamespace(status="running", pid=1, bundle=rec.bundle)
    rec.rt = SimpleNamespace(load=lambda cid: (None, st), log=_Log())
    rec.write = lambda name, obj: (tmp_path / "bundle" / name).write_text(json.dumps(obj))
    return rec


def test_config_json_is_read_once_for_the_process_and_the_memory_policy(fake):
    fake.write("config.json", {"process": PROCESS, "linux": {"memoryPolicy": {"mode": "MPOL_BIND"}}})
    assert ex.execute(fake.rt, "c", ex.ExecOptions(args=["true"], env=["B=2"])) == 0
    assert fake.reads == ["config.json"]
    assert fake.launched.raw["args"] == ["true"] and fake.launched.raw["env"] == ["A=1", "B=2"]
    assert fake.launched.from_config == {"memory_policy": {"mode": "MPOL_BIND"}}
    assert fake.launched.seccomp is None


def test_with_a_process_file_config_json_is_still_read_once(fake, tmp_path):
    fake.write("config.json", {"process": PROCESS, "linux": {"memoryPolicy": {"mode": "MPOL_BIND"}}})
    fake.write("p.json", dict(PROCESS, args=["id"]))
    opts = ex.ExecOptions(process_file=os.path.join(fake.bundle, "p.json"))
    assert ex.execute(fake.rt, "c", opts) == 0
    assert sorted(fake.reads) == ["config.json", "p.json"]
    assert fake.launched.raw["args"] == ["id"]
    assert fake.launched.from_config == {"memory_policy": {"mode": "MPOL_BIND"}}


def test_missing_config_json_fails_unwrapped_when_the_process_comes_from_it(fake):
    with pytest.raises(ConfigError) as e:
        ex.execute(fake.rt, "c", ex.ExecOptions(args=["true"]))
    assert not isinstance(e.value, ex.ExecFailed)
    assert str(e.value) == f"config file {fake.bundle}/config.json: no such file or directory"
    assert fake.discarded == 1 and fake.launched is None


def test_missing_config_json_fails_as_the_seccomp_profile_with_a_process_file(fake):
    fake.write("p.json", PROCESS)
    with pytest.raises(ex.ExecFailed) as e:
        ex.execute(fake.rt, "c", ex.ExecOptions(process_file=os.path.join(fake.bundle, "p.json")))
    assert str(e.value) == (f"cannot read the container's seccomp profile: config file "
                            f"{fake.bundle}/config.json: no such file or directory")
    assert fake.discarded == 1


def test_missing_args_win_over_a_missing_config_json(fake):
    with pytest.raises(ex.ExecFailed, match="^process args cannot be empty$"):
        ex.execute(fake.rt, "c", ex.ExecOptions())
    assert fake.reads == []


def test_process_file_checks_win_over_a_missing_config_json(fake):
    fake.write("p.json", dict(PROCESS, terminal=True))
    opts = ex.ExecOptions(process_file=os.path.join(fake.bundle, "p.json"), detach=True)
    with pytest.raises(OciError, match="cannot allocate tty if runc will detach"):
        ex.execute(fake.rt, "c", opts)
    with pytest.raises(ex.ExecFailed, match="invalid --cgroup argument"):
        ex.execute(fake.rt, "c", ex.ExecOptions(process_file=opts.process_file, cgroups=["a:b:c"]))
    assert "config.json" not in fake.reads
