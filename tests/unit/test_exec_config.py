"""`exec` takes the process, the seccomp program and linux.memoryPolicy from the launch plan create kept in
the state dir (<root>/<id>/plan.json), never from the bundle's config.json; a container made by an
ocirun that kept none is refused with one line naming the file.  The stage and the launch are faked:
no root, no container."""
import json
import os
from types import SimpleNamespace

import pytest

from ocirun import config, exec as ex, launcher, stagefork, stagespawn
from ocirun.exec_process import ExecFailed, ExecOptions
from ocirun.errors import ConfigError, OciError
from ocirun.state import StateDir

PROCESS = {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "env": ["A=1"]}


def _keep(sd, **conf):
    """What create keeps of a config: its launch plan (ocirun.plan.launch_plan)."""
    from ocirun.plan import launch_plan

    spec = config.Spec.parse({"ociVersion": "1.2.0", **conf}, "/bundle")
    sd.save_plan(launch_plan(spec, "/bundle", 40))


class _Log:
    def warning(self, msg):
        pass


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """execute() with a fake stage and launch; records read_json reads (the bundle's config.json or a
    --process file), discards and the launch."""
    rec = SimpleNamespace(reads=[], discarded=0, launched=None, bundle=str(tmp_path / "bundle"))
    os.mkdir(rec.bundle)
    os.mkdir(tmp_path / "root")
    sd = StateDir(str(tmp_path / "root"), "c")
    os.mkdir(sd.path, 0o711)
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
    monkeypatch.setattr(stagefork, "allowed", lambda: False)  # the re-exec'd stage, spawned early
    monkeypatch.setattr(stagespawn, "spawn", lambda *a, **kw: (0, None))
    monkeypatch.setattr(launcher, "discard_init", discard)
    monkeypatch.setattr(ex, "_launch", launch)
    st = SimpleNamespace(status="running", pid=1, bundle=rec.bundle)
    rec.sd = sd
    rec.rt = SimpleNamespace(load=lambda cid: (sd, st), log=_Log())
    rec.write = lambda name, obj: (tmp_path / "bundle" / name).write_text(json.dumps(obj))
    return rec


def test_the_kept_config_gives_the_process_and_the_memory_policy_not_the_bundle(fake):
    _keep(fake.sd, process=PROCESS, linux={"memoryPolicy": {"mode": "MPOL_BIND"}})
    fake.write("config.json", {"process": dict(PROCESS, env=["EDITED=1"]), "linux": {}})
    assert ex.execute(fake.rt, "c", ExecOptions(args=["true"], env=["B=2"])) == 0
    assert fake.reads == []
    assert fake.launched.raw["args"] == ["true"] and fake.launched.raw["env"] == ["A=1", "B=2"]
    assert fake.launched.from_config == {"memory_policy": {"mode": "MPOL_BIND"}}
    assert fake.launched.seccomp is None


def test_with_a_process_file_the_container_options_still_come_from_the_kept_config(fake):
    _keep(fake.sd, process=PROCESS, linux={"memoryPolicy": {"mode": "MPOL_BIND"}})
    fake.write("p.json", dict(PROCESS, args=["id"]))
    opts = ExecOptions(process_file=os.path.join(fake.bundle, "p.json"))
    assert ex.execute(fake.rt, "c", opts) == 0
    assert fake.reads == ["p.json"]
    assert fake.launched.raw["args"] == ["id"]
    assert fake.launched.from_config == {"memory_policy": {"mode": "MPOL_BIND"}}


def test_the_kept_config_and_plan_are_private_to_root(fake):
    fake.sd.save_config({"process": PROCESS})
    assert os.stat(fake.sd.config_file).st_mode & 0o777 == 0o600
    assert fake.sd.load_config() == {"process": PROCESS}
    _keep(fake.sd, process=PROCESS)
    assert os.stat(fake.sd.plan_file).st_mode & 0o777 == 0o600
    assert fake.sd.load_plan().process.to_config() == dict(PROCESS, terminal=False)


@pytest.mark.parametrize("process_file", [False, True])
def test_a_container_without_a_kept_config_is_refused_not_served_from_the_bundle(fake, process_file):
    """Made by an older ocirun: the bundle's file is exactly what may no longer be the container's."""
    fake.write("config.json", {"process": PROCESS})
    fake.write("p.json", PROCESS)
    opts = (ExecOptions(process_file=os.path.join(fake.bundle, "p.json")) if process_file
            else ExecOptions(args=["true"]))
    with pytest.raises(ConfigError) as e:
        ex.execute(fake.rt, "c", opts)
    assert str(e.value) == (f"container c has no saved config ({fake.sd.path}/config.json): it was "
                            f"created by an older ocirun; recreate it")
    assert "config.json" not in fake.reads
    assert fake.discarded == 1 and fake.launched is None


def test_missing_args_are_refused(fake):
    _keep(fake.sd, process=PROCESS)
    with pytest.raises(ExecFailed, match="^process args cannot be empty$"):
        ex.execute(fake.rt, "c", ExecOptions())
    assert fake.discarded == 1


def test_process_file_checks(fake):
    _keep(fake.sd, process=PROCESS)
    fake.write("p.json", dict(PROCESS, terminal=True))
    opts = ExecOptions(process_file=os.path.join(fake.bundle, "p.json"), detach=True)
    with pytest.raises(OciError, match="cannot allocate tty if runc will detach"):
        ex.execute(fake.rt, "c", opts)
    with pytest.raises(ExecFailed, match="invalid --cgroup argument"):
        ex.execute(fake.rt, "c", ExecOptions(process_file=opts.process_file, cgroups=["a:b:c"]))


@pytest.mark.parametrize("env, msg", [("NAME", "missing '='"), ("=x", "name cannot be empty")])
def test_exec_env_without_a_name_or_equals_is_refused(fake, env, msg):
    """runc refuses these when it sets up the process environment ("invalid environment variable: ...")."""
    _keep(fake.sd, process=PROCESS)
    with pytest.raises(ExecFailed, match=f"^invalid environment variable: {msg}$"):
        ex.execute(fake.rt, "c", ExecOptions(args=["true"], env=[env]))
    assert fake.launched is None


@pytest.mark.parametrize("sub", ["..", "../x", "a/../../b", "/.."])
def test_sub_cgroup_outside_the_containers_is_refused(sub):
    """runc 1.1.5: `exec --cgroup ..` fails "bad sub cgroup path" style; ocirun clamped it to the
    container's own cgroup.  Refused now with runc's words."""
    mgr = SimpleNamespace(paths={"memory": "/sys/fs/cgroup/memory/c"})
    with pytest.raises(ExecFailed, match="is not a sub cgroup path$"):
        ex.sub_dirs_of(mgr, {"": sub})


def test_sub_cgroup_inside_is_joined():
    mgr = SimpleNamespace(paths={"memory": "/sys/fs/cgroup/memory/c"})
    assert ex.sub_dirs_of(mgr, {"": "a/./b"}) == ["/sys/fs/cgroup/memory/c/a/b"]
    assert ex.sub_dirs_of(mgr, {"": "/"}) == ["/sys/fs/cgroup/memory/c"]


def test_sub_cgroup_of_an_unknown_controller_is_refused_in_runcs_words():
    """runc's exec.bats matches "unknown controller " (`exec --cgroup whaaat:/`)."""
    mgr = SimpleNamespace(paths={"memory": "/sys/fs/cgroup/memory/c"})
    with pytest.raises(ex.ExecFailed, match="^unknown controller whaaat in SubCgroupPaths$"):
        ex.sub_dirs_of(mgr, {"whaaat": "/"})
