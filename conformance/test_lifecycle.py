"""runtime.md: state, lifecycle and the operations create / start / kill / delete / state."""
from __future__ import annotations

import json
import os
import re
import time

import pytest

MUST = "MUST"
WAIT = "sleep 300"
TRAP_LOOP = "trap 'echo {sig} > /share/{sig}; exit 0' {sig}; echo ready > /share/ready; while :; do sleep 0.05; done"


def _schema_validate(state: dict) -> None:
    """Validate against the project's state schema when it exists (spec/state-schema.json)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(here, "spec", "state-schema.json")
    if not os.path.exists(path):
        return
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    spec_dir = os.path.dirname(path)
    registry = Registry()
    for name in os.listdir(spec_dir):
        if name.endswith(".json"):
            with open(os.path.join(spec_dir, name)) as f:
                registry = registry.with_resource(name, Resource.from_contents(json.load(f), DRAFT4))
    with open(path) as f:
        schema = json.load(f)
    jsonschema.Draft4Validator(schema, registry=registry).validate(state)


# --------------------------------------------------------------------------- state

@pytest.mark.req(MUST, "runtime.md", "State")
def test_state_fields_created(ctr):
    """`ociVersion`, `id`, `status`, `pid` (REQUIRED when `status` is `created` or `running` on
    Linux) and `bundle` (the absolute path to the container's bundle directory) are REQUIRED;
    "When serialized in JSON, the format MUST adhere to the JSON Schema"."""
    ctr.config["annotations"] = {"org.example.key": "value"}
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    st = ctr.state()
    assert st is not None
    assert re.match(r"^\d+\.\d+\.\d+", st["ociVersion"]), st
    assert st["id"] == ctr.id
    assert st["status"] == "created"
    assert isinstance(st["pid"], int) and st["pid"] > 0
    assert os.path.isabs(st["bundle"]) and os.path.samefile(st["bundle"], ctr.bundle)
    _schema_validate(st)


@pytest.mark.req(MUST, "runtime.md", "State")
def test_state_annotations(ctr):
    """`annotations` (map, OPTIONAL) contains the list of annotations associated with the container."""
    ann = {"org.example.key": "value", "com.example.empty": ""}
    ctr.config["annotations"] = ann
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    assert ctr.state().get("annotations") == ann


@pytest.mark.req(MUST, "runtime.md", "State")
def test_state_status_values(ctr):
    """`created`: the runtime has finished the create operation ...; `running`: the container process
    has executed the user-specified program but has not exited; `stopped`: the container process
    has exited."""
    ctr.script("read x < /share/fifo")
    os.mkfifo(os.path.join(ctr.share, "fifo"))
    ctr.create_ok()
    assert ctr.state()["status"] == "created"
    assert ctr.start().returncode == 0
    st = ctr.wait_status("running", 5)
    assert st["status"] == "running" and st["pid"] > 0
    with open(os.path.join(ctr.share, "fifo"), "w") as f:
        f.write("go\n")
    assert ctr.wait_status("stopped", 10)["status"] == "stopped"


@pytest.mark.req(MUST, "runtime.md", "Query State")
def test_state_unknown_container_fails(ctr):
    """Attempting to query a container that does not exist MUST generate an error."""
    assert ctr.rt("state", ctr.id + "-nope").returncode != 0


@pytest.mark.req(MUST, "runtime.md", "Query State")
def test_state_without_id_fails(ctr):
    """This operation MUST generate an error if it is not provided the ID of a container."""
    assert ctr.rt("state").returncode != 0


# --------------------------------------------------------------------------- create

@pytest.mark.req(MUST, "runtime.md", "Create")
def test_create_without_id_fails(ctr):
    """This operation MUST generate an error if it is not provided a path to the bundle and the
    container ID to associate with the container."""
    ctr.write()
    assert ctr.rt("create", "--bundle", ctr.bundle).returncode != 0


@pytest.mark.req(MUST, "runtime.md", "Create")
def test_create_bad_bundle_fails(ctr):
    """This operation MUST generate an error if it is not provided a path to the bundle ..."""
    res = ctr.rt("create", "--bundle", os.path.join(ctr.workdir, "no-such-bundle"), ctr.id)
    assert res.returncode != 0
    assert ctr.state() is None


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.req(MUST, "runtime.md", "State")
def test_create_duplicate_id_fails(ctr):
    """If the ID provided is not unique across all containers within the scope of the runtime ...
    the implementation MUST generate an error and a new container MUST NOT be created."""
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    pid = ctr.pid
    other = ctr.sibling()
    other.id = ctr.id
    other.set_args("sh", "-c", WAIT)
    assert other.create().returncode != 0
    st = ctr.state()
    assert st["status"] == "created" and st["pid"] == pid
    assert os.path.samefile(st["bundle"], ctr.bundle)
    other.id = ctr.id + "-never"  # nothing of its own to clean


@pytest.mark.req(MUST, "runtime.md", "Create")
@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "", "."])
def test_create_invalid_id_fails(ctr, bad_id):
    """If the ID provided ... is not valid in any other way, the implementation MUST generate an
    error and a new container MUST NOT be created."""
    ctr.write()
    res = ctr.rt("create", "--bundle", ctr.bundle, bad_id)
    assert res.returncode != 0
    listing = ctr.rt("list", "-q")
    assert listing.stdout.strip() == ""
    assert not os.path.exists(os.path.join(ctr.workdir, "escape"))


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
@pytest.mark.req(MUST, "runtime.md", "Create")
def test_create_does_not_run_program(ctr):
    """While the resources requested in the config.json MUST be created, the user-specified program
    (from process) MUST NOT be run at this time.  process.args MUST NOT be applied until triggered
    by the start operation."""
    ctr.script("echo ran > /share/ran; sleep 300")
    ctr.create_ok()
    time.sleep(0.3)
    assert ctr.share_file("ran") is None
    cmdline = open(f"/proc/{ctr.pid}/cmdline").read().split("\0")
    assert cmdline[:2] != ["sh", "-c"]
    assert ctr.start().returncode == 0
    assert ctr.wait_file("ran") == "ran\n"


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
@pytest.mark.req(MUST, "runtime.md", "Create")
def test_create_creates_namespaces(ctr):
    """The container's runtime environment MUST be created according to the configuration in
    config.json ... All of the properties configured in config.json except for process MUST be
    applied (by create)."""
    ctr.config["hostname"] = "created-host"
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    pid = ctr.pid
    for ns in ("net", "ipc", "uts", "mnt", "pid"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert os.path.isdir(f"/proc/{pid}/root/share")


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
def test_config_changes_after_create_ignored(ctr):
    """Any updates to config.json after this step MUST NOT affect the container."""
    ctr.script("hostname > /share/out")
    ctr.config["hostname"] = "before"
    ctr.create_ok()
    ctr.config["hostname"] = "after"
    ctr.script("echo changed > /share/out")
    ctr.write()
    assert ctr.start().returncode == 0
    assert ctr.wait_file("out") == "before\n"


@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
def test_create_failure_generates_error(ctr):
    """If the runtime is unable to create the environment specified in the config.json, it MUST
    generate an error."""
    ctr.add_mount("/mnt", "none", os.path.join(ctr.workdir, "does-not-exist"), ["rbind"])
    assert ctr.create().returncode != 0


@pytest.mark.req(MUST, "runtime.md", "Errors")
def test_error_leaves_no_trace(ctr, probe):
    """Unless otherwise stated, generating an error MUST leave the state of the environment as if the
    operation were never attempted."""
    ctr.add_mount("/mnt", "none", os.path.join(ctr.workdir, "does-not-exist"), ["rbind"])
    with open("/proc/self/mountinfo") as f:
        before = f.read()
    assert ctr.create().returncode != 0
    assert ctr.state() is None
    assert ctr.rt("list", "-q").stdout.strip() == ""
    assert probe.find_cgroups(ctr.id) == []
    with open("/proc/self/mountinfo") as f:
        added = set(f.read().splitlines()) - set(before.splitlines())
    # Only mounts tied to this container count: the host is shared with other tests that mount things.
    ours = [m for m in added if ctr.workdir in m or ctr.id in m or ctr.root in m]
    assert ours == []
    # The id is still free.
    ctr.config["mounts"].pop()
    ctr.create_ok()


# --------------------------------------------------------------------------- start

@pytest.mark.req(MUST, "runtime.md", "Start")
def test_start_without_id_fails(ctr):
    """This operation MUST generate an error if it is not provided the container ID."""
    assert ctr.rt("start").returncode != 0


@pytest.mark.req(MUST, "runtime.md", "Start")
def test_start_unknown_fails(ctr):
    """Attempting to start a container that is not created MUST ... generate an error."""
    assert ctr.start(ctr.id + "-nope").returncode != 0


@pytest.mark.req(MUST, "runtime.md", "Start")
def test_start_running_fails(ctr):
    """Attempting to start a container that is not created MUST have no effect on the container and
    MUST generate an error."""
    ctr.script("echo x >> /share/count; sleep 300")
    ctr.create_ok()
    assert ctr.start().returncode == 0
    assert ctr.wait_file("count") == "x\n"
    pid = ctr.pid
    assert ctr.start().returncode != 0
    time.sleep(0.2)
    st = ctr.state()
    assert st["status"] == "running" and st["pid"] == pid
    assert ctr.share_file("count") == "x\n"


@pytest.mark.req(MUST, "runtime.md", "Start")
def test_start_stopped_fails(ctr):
    """Attempting to start a container that is not created MUST have no effect on the container and
    MUST generate an error."""
    ctr.script("echo x >> /share/count")
    ctr.create_ok()
    assert ctr.start().returncode == 0
    assert ctr.wait_status("stopped")["status"] == "stopped"
    assert ctr.start().returncode != 0
    assert ctr.state()["status"] == "stopped"
    assert ctr.share_file("count") == "x\n"


@pytest.mark.req(MUST, "runtime.md", "Start")
@pytest.mark.req(MUST, "runtime.md", "Lifecycle")
def test_start_runs_program(ctr):
    """This operation MUST run the user-specified program as specified by process."""
    ctr.set_args("sh", "-c", 'echo "$0:$1:$FOO" > /share/out', "arg0", "arg1")
    ctr.process["env"].append("FOO=bar")
    ctr.create_ok()
    assert ctr.start().returncode == 0
    assert ctr.wait_file("out") == "arg0:arg1:bar\n"


@pytest.mark.req(MUST, "runtime.md", "Start")
def test_start_without_process_fails(ctr):
    """This operation MUST generate an error if `process` was not set."""
    del ctr.config["process"]
    res = ctr.create()
    if res.returncode == 0:
        assert ctr.start().returncode != 0


# --------------------------------------------------------------------------- kill

@pytest.mark.req(MUST, "runtime.md", "Kill")
def test_kill_without_id_fails(ctr):
    """This operation MUST generate an error if it is not provided the container ID."""
    assert ctr.rt("kill").returncode != 0


@pytest.mark.req(MUST, "runtime.md", "Kill")
def test_kill_sends_signal(ctr):
    """This operation MUST send the specified signal to the container process."""
    ctr.script(TRAP_LOOP.format(sig="USR1"))
    ctr.create_ok()
    assert ctr.start().returncode == 0
    assert ctr.wait_file("ready")
    assert ctr.kill("USR1").returncode == 0
    assert ctr.wait_file("USR1") == "USR1\n"
    assert ctr.wait_status("stopped")["status"] == "stopped"


@pytest.mark.req(MUST, "runtime.md", "Kill")
def test_kill_numeric_signal(ctr):
    """This operation MUST send the specified signal to the container process (signal by number)."""
    ctr.script(TRAP_LOOP.format(sig="USR2"))
    ctr.create_ok()
    assert ctr.start().returncode == 0
    assert ctr.wait_file("ready")
    assert ctr.kill("12").returncode == 0
    assert ctr.wait_file("USR2") == "USR2\n"


@pytest.mark.req(MUST, "runtime.md", "Kill")
def test_kill_default_is_sigterm(ctr):
    """`kill <container-id> <signal>`: like runc, a missing signal means SIGTERM."""
    ctr.script(TRAP_LOOP.format(sig="TERM"))
    ctr.create_ok()
    assert ctr.start().returncode == 0
    assert ctr.wait_file("ready")
    assert ctr.kill().returncode == 0
    assert ctr.wait_file("TERM") == "TERM\n"


@pytest.mark.req(MUST, "runtime.md", "Kill")
def test_kill_created_container(ctr):
    """Kill applies to a container that is `created` (signal the container process)."""
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    assert ctr.kill("KILL").returncode == 0
    assert ctr.wait_status("stopped")["status"] == "stopped"


@pytest.mark.req(MUST, "runtime.md", "Kill")
def test_kill_stopped_fails(ctr):
    """Attempting to send a signal to a container that is neither created nor running MUST have no
    effect on the container and MUST generate an error."""
    ctr.set_args("true")
    ctr.create_ok()
    assert ctr.start().returncode == 0
    assert ctr.wait_status("stopped")["status"] == "stopped"
    assert ctr.kill("KILL").returncode != 0
    assert ctr.state()["status"] == "stopped"


@pytest.mark.req(MUST, "runtime.md", "Kill")
def test_kill_unknown_fails(ctr):
    """Kill of a container that does not exist (neither created nor running) MUST generate an error."""
    assert ctr.kill("KILL", ctr.id + "-nope").returncode != 0


# --------------------------------------------------------------------------- delete

@pytest.mark.req(MUST, "runtime.md", "Delete")
def test_delete_without_id_fails(ctr):
    """This operation MUST generate an error if it is not provided the container ID."""
    assert ctr.rt("delete").returncode != 0


@pytest.mark.req(MUST, "runtime.md", "Delete")
def test_delete_running_refused(ctr):
    """Attempting to delete a container that is not stopped MUST have no effect on the container and
    MUST generate an error."""
    ctr.script("echo up > /share/up; sleep 300")
    ctr.create_ok()
    assert ctr.start().returncode == 0
    assert ctr.wait_file("up")
    pid = ctr.pid
    assert ctr.delete().returncode != 0
    st = ctr.state()
    assert st["status"] == "running" and st["pid"] == pid


@pytest.mark.req(MUST, "runtime.md", "Delete")
@pytest.mark.deviates("runc", "runc deletes a `created` container (killing it) without --force")
def test_delete_created_refused(ctr):
    """Attempting to delete a container that is not stopped MUST have no effect on the container and
    MUST generate an error."""
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    pid = ctr.pid
    assert ctr.delete().returncode != 0
    st = ctr.state()
    assert st is not None and st["status"] == "created" and st["pid"] == pid


@pytest.mark.req(MUST, "runtime.md", "Delete")
def test_delete_stopped_removes_everything(ctr, probe):
    """Deleting a container MUST delete the resources that were created during the create step."""
    ctr.linux.setdefault("resources", {})["pids"] = {"limit": 100}
    ctr.set_args("true")
    ctr.create_ok()
    assert probe.find_cgroups(ctr.id), "no cgroup was created for the container"
    assert ctr.start().returncode == 0
    assert ctr.wait_status("stopped")["status"] == "stopped"
    res = ctr.delete()
    assert res.returncode == 0, res.stderr
    assert ctr.state() is None
    assert ctr.rt("list", "-q").stdout.strip() == ""
    assert probe.find_cgroups(ctr.id) == []
    with open("/proc/self/mountinfo") as f:
        assert ctr.workdir not in f.read()
    assert os.path.isdir(ctr.share) and os.path.isfile(os.path.join(ctr.rootfs, "bin", "busybox"))


@pytest.mark.req(MUST, "runtime.md", "Delete")
@pytest.mark.deviates("runc", "runc removes a pre-existing cgroup named by cgroupsPath on delete")
def test_delete_keeps_foreign_resources(ctr, probe):
    """Note that resources associated with the container, but not created by this container, MUST NOT
    be deleted."""
    if not probe.has_controller("pids"):
        pytest.skip("no pids cgroup controller")
    path = "/" + ctr.id + "-pre"
    pre = probe.cgroup_dir("pids", path)
    os.makedirs(pre)
    ctr.linux["cgroupsPath"] = path
    ctr.linux.setdefault("resources", {})["pids"] = {"limit": 100}
    ctr.set_args("true")
    ctr.create_ok()
    assert ctr.start().returncode == 0
    assert ctr.wait_status("stopped")["status"] == "stopped"
    assert ctr.delete().returncode == 0
    assert os.path.isdir(pre)
    assert os.path.isdir(ctr.share)


@pytest.mark.req(MUST, "runtime.md", "Delete")
def test_delete_then_reuse_id(ctr):
    """Once a container is deleted its ID MAY be used by a subsequent container (and the runtime lets
    the entity that created a container use the operations against it)."""
    ctr.set_args("true")
    assert ctr.run().returncode == 0
    ctr.set_args("sh", "-c", WAIT)
    ctr.create_ok()
    assert ctr.state()["status"] == "created"
    assert ctr.delete(force=True).returncode == 0
    assert ctr.state() is None


@pytest.mark.req(MUST, "runtime.md", "Scope of a Container")
def test_operations_on_own_container(ctr):
    """The entity using a runtime to create a container MUST be able to use the operations defined in
    this specification against that same container."""
    ctr.script(TRAP_LOOP.format(sig="TERM"))
    ctr.create_ok()
    assert ctr.state()["status"] == "created"
    assert ctr.start().returncode == 0
    assert ctr.wait_file("ready")
    assert ctr.state()["status"] == "running"
    assert ctr.kill("TERM").returncode == 0
    assert ctr.wait_status("stopped")["status"] == "stopped"
    assert ctr.delete().returncode == 0
    assert ctr.state() is None
