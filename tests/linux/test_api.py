"""ocirun.api on real containers: the example runs, results and typed errors, nothing left behind."""
import os
import subprocess
import sys
import threading
import time

import pytest

from ocirun import errors
from ocirun.api import (ContainerExists, ContainerNotFound, InvalidConfig, InvalidIdError, InvalidState, NotRunning,
                        OciError, Result, Runtime, State, Timeout)

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_api_demo_example_runs():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "examples", "api_demo.py")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "run:   exit=7 stdout=b'hello from api-demo\\nsome input\\n'" in proc.stdout
    assert "after delete: ContainerNotFound" in proc.stdout


@pytest.fixture
def api(oci):
    return Runtime(root=oci.root)


def _bundle(oci, *args, **changes):
    return oci.write(oci.config(args=args, **changes))


def test_run_captures_output_and_exit_codes(oci, api):
    r = api.run("r1", _bundle(oci, "sh", "-c", "echo out; echo err >&2; exit 3"))
    assert r == Result(3, b"out\n", b"err\n") and not r.ok
    assert api.list() == []  # run deletes the container
    spec = oci.config(args=("sh", "-c", "kill -9 $$"))  # not pid 1 (which SIGKILL from inside spares)
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "pid"]
    r = api.run("r2", oci.write(spec))
    assert r.exit_code == 137
    r = api.run("r3", _bundle(oci, "cat"), input="from stdin")
    assert r.stdout == b"from stdin" and r.ok


def test_run_timeout_kills_and_cleans_up(oci, api):
    with pytest.raises(Timeout) as exc:
        api.run("t1", _bundle(oci, "sh", "-c", "echo started; sleep 30"), timeout=1)
    assert exc.value.stdout == b"started\n"
    assert api.list() == [] and not os.path.exists(os.path.join(oci.root, "t1"))


def test_run_from_a_thread_leaves_no_subreaper(oci, api):
    from ocirun.kernel import linux as k

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", api.run("th", _bundle(oci, "echo", "hi"))))
    t.start()
    t.join(60)
    assert out["r"].stdout == b"hi\n"
    assert k.child_subreaper() is False


def test_lifecycle_state_objects_and_exec(oci, api):
    st = api.create("c1", _bundle(oci, "sleep", "60"))
    assert isinstance(st, State) and st.status == "created" and st.pid > 0 and st.bundle == oci.bundle
    assert oci.state("c1")["pid"] == st.pid  # the CLI sees what the API made
    assert api.start("c1").status == "running"
    assert [s.id for s in api.list()] == ["c1"] and api.state("c1").to_oci()["status"] == "running"
    r = api.exec("c1", ["sh", "-c", "echo $A; echo oops >&2; exit 4"], env={"A": "x"})
    assert r == Result(4, b"x\n", b"oops\n")
    r = api.exec("c1", ["sh", "-c", "id -u; pwd"], user="65534:65534", cwd="/tmp")
    assert r.stdout == b"65534\n/tmp\n" and r.ok
    with pytest.raises(Timeout):
        api.exec("c1", ["sleep", "20"], timeout=0.3)
    api.kill("c1", "KILL")
    for _ in range(200):
        if api.state("c1").status == "stopped":
            break
        time.sleep(0.01)
    assert api.state("c1").status == "stopped" and api.state("c1").pid == 0
    api.delete("c1")
    assert api.list() == []


def test_pause_resume_ps_update_stats_and_events_return_values(oci, api):
    """The methods behind `pause`, `resume`, `ps`, `update` and `events` return values: what the CLI
    prints comes from them."""
    st = api.create("p1", _bundle(oci, "sleep", "60"))
    api.start("p1")
    try:
        assert api.ps("p1") == [st.pid]
        assert api.pause("p1") is None and api.state("p1").status == "paused"
        with pytest.raises(NotRunning):
            api.pause("p1")
        api.resume("p1")
        assert api.state("p1").status == "running"
        with pytest.raises(InvalidState, match="container not paused"):
            api.resume("p1")
        kept = api.update("p1", {"pids": {"limit": 50}})
        assert kept == {"pids": {"limit": 50}}
        assert api.update("p1", {"memory": {"limit": 64 << 20}}) == {"pids": {"limit": 50},
                                                                      "memory": {"limit": 64 << 20}}
        with pytest.raises(InvalidConfig):
            api.update("p1", {"pids": {"limit": "many"}})
        data = api.stats("p1")
        assert data["pids"]["current"] == 1 and data["pids"]["limit"] == 50
        records = api.events("p1", interval=0.05)
        first = next(records)
        assert first["type"] == "stats" and first["id"] == "p1" and first["data"]["pids"]["current"] == 1
        api.kill("p1", "KILL")
        assert all(r["type"] in ("stats", "oom") for r in records)  # ends once the container stops
        with pytest.raises(OciError, match="greater than 0"):
            api.events("p1", interval=0)
    finally:
        api.delete("p1", force=True)
    with pytest.raises(ContainerNotFound):
        api.ps("p1")


def test_typed_errors(oci, api, tmp_path):
    bundle = _bundle(oci, "sleep", "60")
    with pytest.raises(ContainerNotFound, match="container nope does not exist") as exc:
        api.state("nope")
    assert exc.value.id == "nope"
    for call in (lambda: api.start("nope"), lambda: api.kill("nope"), lambda: api.delete("nope")):
        with pytest.raises(ContainerNotFound):
            call()
    with pytest.raises(InvalidIdError):
        api.create("../x", bundle)
    with pytest.raises(InvalidConfig, match="no such file"):
        api.create("c0", str(tmp_path / "nobundle"))
    bad = oci.config(args=("true",))
    bad["ociVersion"] = "2.0.0"
    with pytest.raises(InvalidConfig, match="ociVersion"):
        api.create("c0", oci.write(bad, str(tmp_path / "bad")))
    with pytest.raises(InvalidConfig, match="process.terminal"):
        api.run("c0", oci.write(oci.config(args=("true",), process={**bad["process"], "terminal": True}),
                                str(tmp_path / "tty")))
    assert api.list() == []  # failed creates leave no state dir
    api.create("c1", bundle)
    with pytest.raises(ContainerExists):
        api.create("c1", bundle)
    api.start("c1")
    with pytest.raises(InvalidState, match="already running"):
        api.start("c1")
    with pytest.raises(InvalidState, match="not stopped"):
        api.delete("c1")
    api.kill("c1", 9)
    for _ in range(200):
        if api.state("c1").status == "stopped":
            break
        time.sleep(0.01)
    with pytest.raises(NotRunning):
        api.kill("c1")
    with pytest.raises(InvalidState, match="stopped"):
        api.exec("c1", ["true"])
    api.delete("c1")


def test_error_hierarchy_stays_compatible():
    from ocirun.exec_process import ExecFailed, ExecRefused

    assert errors.InvalidConfig is errors.ConfigError
    assert issubclass(errors.NotRunning, errors.InvalidState)
    assert issubclass(ExecRefused, ExecFailed) and issubclass(ExecRefused, InvalidState)
    for cls in (ContainerExists, ContainerNotFound, InvalidConfig, InvalidIdError, InvalidState, Timeout):
        assert issubclass(cls, OciError)
    assert str(ContainerNotFound("x")) == "container x does not exist"
    assert str(ContainerExists("x")) == "container with id exists: x"
