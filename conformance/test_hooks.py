"""config.md "POSIX-platform Hooks" and runtime.md lifecycle steps 3-13."""
from __future__ import annotations

import os
import time

import pytest

MUST = "MUST"
WAIT = "sleep 300"
START_HOOK = ("{ printf '{\"name\": \"%s\", \"mntns\": \"%s\", \"state\": ' \"$0\" \"$(readlink /proc/self/ns/mnt)\";"
              " cat; printf '}\\n'; } >> /share/hooks.log")


def start_hook(name: str = "startContainer", fail: bool = False) -> dict:
    """A startContainer hook: its path (/bin/sh) resolves in the container namespace."""
    script = START_HOOK + ("; exit 4" if fail else "")
    return {"path": "/bin/sh", "args": ["sh", "-c", script, name]}


def all_hooks(ctr, fail: str | None = None) -> None:
    for phase in ("prestart", "createRuntime", "createContainer", "poststart", "poststop"):
        ctr.add_hook(phase, ctr.hook(phase, "fail" if fail == phase else ""))
    ctr.add_hook("startContainer", start_hook(fail=fail == "startContainer"))


def names(ctr) -> list[str]:
    return [r["name"] for r in ctr.hook_records()]


POSTSTART_AT_CREATE = "runc 1.1 runs poststart hooks during create, not after the program is executed by start"


@pytest.mark.req(MUST, "config.md", "POSIX-platform Hooks")
@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
@pytest.mark.req(MUST, "config.md", "Prestart")
@pytest.mark.req(MUST, "config.md", "CreateContainer Hooks")
def test_hooks_order_create_phase(ctr):
    """Hooks MUST be called in the listed order.  The prestart hooks MUST be called before the
    createRuntime hooks.  The createContainer hooks MUST be called after the createRuntime hooks."""
    all_hooks(ctr)
    ctr.add_hook("createRuntime", ctr.hook("createRuntime-2"))
    ctr.script("echo ran > /share/ran; sleep 300")
    ctr.create_ok()
    assert names(ctr)[:4] == ["prestart", "createRuntime", "createRuntime-2", "createContainer"]
    assert ctr.share_file("ran") is None


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
@pytest.mark.req(MUST, "config.md", "Poststart")
@pytest.mark.req(MUST, "config.md", "StartContainer Hooks")
@pytest.mark.deviates("runc", POSTSTART_AT_CREATE)
def test_hooks_order_start_phase(ctr):
    """The startContainer hooks MUST be called before the user-specified process is executed as part of
    the start operation; the poststart hooks MUST be called after the user-specified process is
    executed but before the start operation returns."""
    all_hooks(ctr)
    ctr.script("sleep 300")
    ctr.create_ok()
    assert names(ctr) == ["prestart", "createRuntime", "createContainer"]
    assert ctr.start().returncode == 0
    assert names(ctr)[3:] == ["startContainer", "poststart"]


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
@pytest.mark.req(MUST, "config.md", "Poststop")
def test_hooks_order_delete_phase(ctr):
    """The poststop hooks MUST be invoked by the runtime (step 13), after the container is deleted but
    before the delete operation returns; hooks MUST be called in the listed order."""
    all_hooks(ctr)
    ctr.add_hook("poststop", ctr.hook("poststop-2"))
    ctr.set_args("true")
    ctr.create_ok()
    assert ctr.start().returncode == 0
    ctr.wait_status("stopped")
    assert "poststop" not in names(ctr)
    res = ctr.delete()
    assert res.returncode == 0, res.stderr
    assert names(ctr)[-2:] == ["poststop", "poststop-2"]


@pytest.mark.req(MUST, "config.md", "POSIX-platform Hooks")
def test_hooks_get_state_on_stdin(ctr):
    """The state of the container MUST be passed to hooks over stdin so that they may do work
    appropriate to the current state of the container."""
    ctr.config["annotations"] = {"org.example.hook": "yes"}
    all_hooks(ctr)
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    assert ctr.start().returncode == 0
    pid = ctr.pid
    assert ctr.kill("KILL").returncode == 0
    ctr.wait_status("stopped")
    assert ctr.delete().returncode == 0
    recs = {r["name"]: r for r in ctr.hook_records()}
    assert set(recs) == {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}
    for name, rec in recs.items():
        st = rec["state"]
        assert isinstance(st, dict), (name, st)
        assert st["id"] == ctr.id, name
        assert os.path.samefile(st["bundle"], ctr.bundle), name
        assert st.get("ociVersion"), name
        assert st.get("annotations") == {"org.example.hook": "yes"}, name
        if name in ("prestart", "createRuntime", "poststop"):
            assert st.get("pid") in (pid, None, 0), name  # runtime namespace: the pid as seen by the runtime
    assert recs["poststop"]["state"]["status"] == "stopped"


@pytest.mark.req(MUST, "config.md", "POSIX-platform Hooks")
def test_hook_args_and_env(ctr):
    """`args` with the same semantics as execv's argv; `env` with the same semantics as environ."""
    h = ctr.hook("createRuntime", env=["HOOKVAR=one", "OTHER=two"])
    h["args"] += ["extra-arg"]
    ctr.add_hook("createRuntime", h)
    ctr.set_args("true")
    ctr.create_ok()
    rec = ctr.hook_records()[0]
    assert rec["argv"][-1] == "extra-arg"
    env = {k: v for k, v in rec["env"].items() if k not in ("PWD", "SHLVL", "_", "LC_CTYPE")}
    assert env == {"HOOKVAR": "one", "OTHER": "two"}


@pytest.mark.req(MUST, "config.md", "Prestart")
@pytest.mark.req(MUST, "config.md", "CreateRuntime Hooks")
@pytest.mark.req(MUST, "config.md", "Poststart")
@pytest.mark.req(MUST, "config.md", "Poststop")
def test_runtime_namespace_hooks(ctr):
    """The prestart / createRuntime / poststart / poststop hooks MUST be executed in the runtime
    namespace (and their path MUST resolve in the runtime namespace)."""
    all_hooks(ctr)
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    assert ctr.start().returncode == 0
    ctr.kill("KILL")
    ctr.wait_status("stopped")
    assert ctr.delete().returncode == 0
    host_mnt = os.readlink("/proc/self/ns/mnt")
    host_net = os.readlink("/proc/self/ns/net")
    recs = {r["name"]: r for r in ctr.hook_records()}
    for name in ("prestart", "createRuntime", "poststart", "poststop"):
        assert recs[name]["mntns"] == host_mnt, name
        assert recs[name]["netns"] == host_net, name


@pytest.mark.req(MUST, "config.md", "CreateRuntime Hooks")
def test_create_runtime_after_namespaces(ctr):
    """createRuntime hooks MUST be called ... after the runtime environment has been created; on Linux
    they are called after the container namespaces are created."""
    ctr.add_hook("createRuntime", ctr.hook("createRuntime"))
    ctr.add_hook("prestart", ctr.hook("prestart"))
    ctr.set_args("true")
    ctr.create_ok()
    for rec in ctr.hook_records():
        assert rec.get("target_mntns"), rec
        assert rec["target_mntns"] != os.readlink("/proc/self/ns/mnt"), rec["name"]
        assert rec["target_netns"] != os.readlink("/proc/self/ns/net"), rec["name"]


@pytest.mark.req(MUST, "config.md", "CreateContainer Hooks")
def test_create_container_hook_in_container_namespace(ctr):
    """The createContainer hooks MUST be executed in the container namespace.  The createContainer hooks'
    path MUST resolve in the runtime namespace. ... before the pivot_root operation is executed but
    after the mount namespace was created and setup."""
    h = ctr.hook("createContainer", env=[f"HOOK_PROBE_PATH={ctr.rootfs}/share/proc-is-here"])
    ctr.add_hook("createContainer", h)
    ctr.add_mount("/share/proc-is-here", "tmpfs", "tmpfs", ["size=1k"])
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    rec = ctr.hook_records()[0]
    pid = ctr.pid
    assert rec["mntns"] == os.readlink(f"/proc/{pid}/ns/mnt")
    assert rec["mntns"] != os.readlink("/proc/self/ns/mnt")
    # Still before pivot_root: the host path of the rootfs is visible, with the mounts done.
    assert rec.get("probe_exists") is True


@pytest.mark.req(MUST, "config.md", "StartContainer Hooks")
def test_start_container_hook_in_container(ctr):
    """The startContainer hooks' path MUST resolve in the container namespace.  The startContainer hooks
    MUST be executed in the container namespace.  ... called before the user-specified process is
    executed as part of the start operation."""
    os.makedirs(os.path.join(ctr.rootfs, "hookbin"))
    only_inside = os.path.join(ctr.rootfs, "hookbin", "in-container-only")
    with open(only_inside, "w") as f:
        f.write("#!/bin/sh\n" + START_HOOK.replace('"$0"', '"startContainer"') + "\n")
    os.chmod(only_inside, 0o755)
    ctr.add_hook("startContainer", {"path": "/hookbin/in-container-only"})
    ctr.script("echo program >> /share/order; sleep 300")
    ctr.create_ok()
    assert ctr.hook_records() == []
    assert ctr.start().returncode == 0
    recs = ctr.hook_records()
    assert [r["name"] for r in recs] == ["startContainer"]
    assert recs[0]["mntns"] == os.readlink(f"/proc/{ctr.pid}/ns/mnt")
    assert ctr.wait_file("order") == "program\n"


@pytest.mark.req(MUST, "config.md", "Poststart")
@pytest.mark.deviates("runc", POSTSTART_AT_CREATE)
def test_poststart_after_program_before_start_returns(ctr):
    """The poststart hooks MUST be called after the user-specified process is executed but before the
    start operation returns."""
    ctr.add_hook("poststart", ctr.hook("poststart", "sleep0.5"))
    ctr.set_args("sleep", "300")
    ctr.create_ok()
    t0 = time.time()
    assert ctr.start().returncode == 0
    recs = ctr.hook_records()
    assert len(recs) == 1, "poststart had not run when start returned"
    assert time.time() - t0 >= 0.5, "start returned before the poststart hook finished"
    assert recs[0]["target_cmdline"][:2] == ["sleep", "300"]
    assert recs[0]["state"]["status"] == "running"


@pytest.mark.req(MUST, "config.md", "Poststop")
def test_poststop_after_delete(ctr):
    """The poststop hooks MUST be called after the container is deleted but before the delete
    operation returns."""
    ctr.add_hook("poststop", ctr.hook("poststop"))
    ctr.set_args("true")
    ctr.create_ok()
    assert ctr.start().returncode == 0
    ctr.wait_status("stopped")
    assert ctr.hook_records() == []
    assert ctr.delete().returncode == 0
    assert names(ctr) == ["poststop"]


def _failed_create(ctr, phase):
    all_hooks(ctr, fail=phase)
    ctr.script("echo ran > /share/ran; sleep 300")
    res = ctr.create()
    recs = ctr.hook_records()
    pids = [r["state"].get("pid") for r in recs if r["name"] in ("prestart", "createRuntime")
            and isinstance(r["state"], dict) and r["state"].get("pid")]
    return res, recs, pids


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
@pytest.mark.parametrize("phase", ["prestart", "createRuntime", "createContainer"])
def test_create_hook_failure(ctr, probe, phase):
    """If any prestart / createRuntime / createContainer hook fails, the runtime MUST generate an
    error, stop the container, and continue the lifecycle at step 12 (the container MUST be
    destroyed)."""
    res, recs, pids = _failed_create(ctr, phase)
    assert res.returncode != 0
    time.sleep(0.2)
    for pid in pids:
        assert not probe.pid_alive(pid), f"container process {pid} still alive"
    st = ctr.state()
    assert st is None or st["status"] == "stopped"
    assert probe.find_cgroups(ctr.id) == []
    assert ctr.share_file("ran") is None


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
@pytest.mark.parametrize("phase", ["prestart", "createRuntime", "createContainer"])
def test_create_hook_failure_runs_poststop(ctr, phase):
    """If any prestart / createRuntime / createContainer hook fails, the runtime MUST ... continue the
    lifecycle at step 12; the poststop hooks MUST be invoked by the runtime (step 13)."""
    res, recs, _ = _failed_create(ctr, phase)
    assert res.returncode != 0
    assert "poststop" in [r["name"] for r in recs]


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
@pytest.mark.parametrize("phase", ["startContainer", "poststart"])
@pytest.mark.deviates("runc", "start succeeds although a startContainer hook failed (the init just exits); "
                      + POSTSTART_AT_CREATE)
def test_start_hook_failure(ctr, probe, phase):
    """If any startContainer / poststart hook fails, the runtime MUST generate an error, stop the
    container, and continue the lifecycle at step 12."""
    all_hooks(ctr, fail=phase)
    ctr.script("echo ran > /share/ran; sleep 300")
    ctr.create_ok()
    pid = ctr.pid
    res = ctr.start()
    assert res.returncode != 0
    deadline = time.time() + 5
    while probe.pid_alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not probe.pid_alive(pid)
    st = ctr.state()
    assert st is None or st["status"] == "stopped"
    if phase == "startContainer":
        assert ctr.share_file("ran") is None


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
@pytest.mark.parametrize("phase", ["startContainer", "poststart"])
@pytest.mark.deviates("runc", "runc neither destroys the container nor runs poststop hooks when a start-phase hook fails")
def test_start_hook_failure_destroys(ctr, probe, phase):
    """If any startContainer / poststart hook fails, the runtime MUST ... continue the lifecycle at step
    12 (destroy the container) and step 13 (poststop hooks)."""
    all_hooks(ctr, fail=phase)
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    assert ctr.start().returncode != 0
    time.sleep(0.3)
    assert ctr.state() is None
    assert probe.find_cgroups(ctr.id) == []
    assert "poststop" in names(ctr)


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
@pytest.mark.req(MUST, "runtime.md", "Warnings")
@pytest.mark.deviates("runc", "runc stops running poststop hooks at the first one that fails")
def test_poststop_failure_is_warning(ctr):
    """If any poststop hook fails, the runtime MUST log a warning, but the remaining hooks and lifecycle
    continue as if the hook had succeeded."""
    ctr.add_hook("poststop", ctr.hook("poststop-1", "fail"))
    ctr.add_hook("poststop", ctr.hook("poststop-2"))
    ctr.set_args("true")
    ctr.create_ok()
    assert ctr.start().returncode == 0
    ctr.wait_status("stopped")
    res = ctr.delete()
    assert res.returncode == 0, res.stderr
    assert names(ctr) == ["poststop-1", "poststop-2"]
    assert ctr.state() is None


@pytest.mark.req(MUST, "config.md", "POSIX-platform Hooks")
def test_hook_timeout_aborts(ctr):
    """`timeout` (int, OPTIONAL) is the number of seconds before aborting the hook."""
    ctr.add_hook("createRuntime", ctr.hook("createRuntime", "sleep20", timeout=1))
    ctr.set_args("true")
    t0 = time.time()
    res = ctr.create()
    assert res.returncode != 0
    assert time.time() - t0 < 10


@pytest.mark.req(MUST, "config.md", "POSIX-platform Hooks")
@pytest.mark.req(MUST, "config.md", "Valid values")
def test_hook_timeout_must_be_positive(ctr):
    """If set, `timeout` MUST be greater than zero (runtimes MUST generate an error when invalid values
    are encountered)."""
    ctr.add_hook("createRuntime", ctr.hook("createRuntime", timeout=0))
    ctr.set_args("true")
    assert ctr.create().returncode != 0


@pytest.mark.req(MUST, "config.md", "POSIX-platform Hooks")
@pytest.mark.req(MUST, "config.md", "Valid values")
def test_hook_path_must_be_absolute(ctr):
    """This specification extends the IEEE standard in that `path` MUST be absolute."""
    h = ctr.hook("createRuntime")
    h["path"] = "hook.py"
    ctr.add_hook("createRuntime", h)
    ctr.set_args("true")
    assert ctr.create().returncode != 0
