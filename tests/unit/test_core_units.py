"""Pure layers: mount option parsing, id rules, state derivation, CLI flags, signals, JSON, version gate."""
import os

import pytest

from ocirun import fastjson
from ocirun.cli import COMMANDS, GLOBAL_FLAGS, Usage, parse_flags
from ocirun.config import Spec, check_version
from ocirun.errors import ConfigError, InvalidIdError, UsageError
from ocirun.kernel import linux as k
from ocirun.plan import cap_mask, mount_op, parse_mount_options, personality_value, sysctl_namespace
from ocirun.signals import parse_signal
from ocirun.state import ContainerState, StateDir, check_id, read_start_time, refresh, write_atomic


# --- mount options --------------------------------------------------------------------------------
def test_later_options_win_and_unknown_ones_are_data():
    flags, clear, data, prop, rset, rclr, specials = parse_mount_options(
        ["ro", "nosuid", "rw", "mode=755", "size=1m", "rprivate", "rnoexec", "tmpcopyup"])
    assert not flags & k.MS_RDONLY and clear & k.MS_RDONLY
    assert flags & k.MS_NOSUID
    assert data == "mode=755,size=1m"
    assert prop == [k.MS_PRIVATE | k.MS_REC]
    assert rset == k.MOUNT_ATTR_NOEXEC and rclr == 0
    assert specials == {"tmpcopyup"}


def test_recursive_atime_options_clear_the_atime_field():
    _, _, _, _, rset, rclr, _ = parse_mount_options(["rnoatime"])
    assert rset == k.MOUNT_ATTR_NOATIME and rclr == k.MOUNT_ATTR__ATIME


def test_mount_op_bind_source_relative_to_bundle_and_relative_destination():
    from ocirun.config import Mount

    op = mount_op(Mount("data/x", "none", "src", ["rbind", "ro"]), "/bundle")
    assert op.bind and op.source == "/bundle/src" and op.destination == "/data/x"
    assert op.flags & k.MS_REC and op.flags & k.MS_RDONLY
    op = mount_op(Mount("/b", "bind", "/abs", []), "/bundle")
    assert op.bind and op.flags & k.MS_BIND and op.source == "/abs"
    assert mount_op(Mount("/i", "none", "/s", ["bind", "ridmap"]), "/b").idmap == "ridmap"


def test_capabilities_beyond_the_kernel_are_skipped():
    mask, skipped = cap_mask(["CAP_CHOWN", "CAP_CHECKPOINT_RESTORE", "CAP_BOGUS"], last_cap=39)
    assert mask == 1 and skipped == ["CAP_CHECKPOINT_RESTORE", "CAP_BOGUS"]


def test_sysctl_namespaces_and_personality():
    assert sysctl_namespace("net.ipv4.ip_forward") == "network"
    assert sysctl_namespace("kernel.shmmax") == "ipc" and sysctl_namespace("fs.mqueue.msg_max") == "ipc"
    assert sysctl_namespace("kernel.domainname") == "uts"
    assert sysctl_namespace("kernel.panic") is None
    assert personality_value({"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}) == 0x0040008


# --- ids and state ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "x" * 1025, "sp ace", "nul\0", "é"])
def test_bad_ids_are_refused(bad):
    with pytest.raises(InvalidIdError):
        check_id(bad)


@pytest.mark.parametrize("good", ["a", "A-b_c.d+e", "0" * 64, "cli-c-d"])
def test_good_ids(good):
    assert check_id(good) == good


def test_state_round_trip_and_atomic_write(tmp_path):
    sd = StateDir(str(tmp_path), "c1")
    os.mkdir(sd.path)
    st = ContainerState(id="c1", bundle="/b", rootfs="/b/rootfs", pid=42, pid_start=7, annotations={"a": "b"})
    sd.save(st)
    assert not [n for n in os.listdir(sd.path) if n.endswith(".tmp")]
    again = sd.load()
    assert again.to_dict() == st.to_dict()
    with pytest.raises(TypeError):
        ContainerState(nonsense=1)


def _fake_proc(tmp_path, pid, start, state="S", comm="sh (odd) name"):
    d = tmp_path / "proc" / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    fields = ["0"] * 20
    fields[19] = str(start)
    (d / "stat").write_text(f"{pid} ({comm}) {state} " + " ".join(fields[1:]) + "\n")
    return str(tmp_path / "proc")


def test_start_time_parsing_survives_odd_comm_and_zombies(tmp_path):
    proc = _fake_proc(tmp_path, 10, 12345)
    assert read_start_time(10, proc) == 12345
    proc = _fake_proc(tmp_path, 11, 1, state="Z")
    assert read_start_time(11, proc) is None
    assert read_start_time(99, proc) is None


def test_status_is_derived_from_process_and_start_socket(tmp_path):
    """created = the init is alive with its start time, its comm is still the init stage's marker (it has
    not exec'd) and the start socket is there; a socket file alone (left over by a `start` killed
    mid-way) says nothing: the program runs, whatever its name (issue 11 item 7)."""
    from ocirun.state import INIT_COMM

    proc = _fake_proc(tmp_path, 10, 500, comm=INIT_COMM)
    sd = StateDir(str(tmp_path / "root"), "c1")
    os.makedirs(sd.path)
    st = ContainerState(id="c1", pid=10, pid_start=500)
    open(sd.start_socket, "w").close()
    assert refresh(sd, st, proc).status == "created"
    os.unlink(sd.start_socket)
    assert refresh(sd, st, proc).status == "running"
    open(sd.start_socket, "w").close()
    for comm in ("sh (odd) name", "ocirun:[init]x", "sleep"):
        proc = _fake_proc(tmp_path, 10, 500, comm=comm)  # exec'd: the kernel set the program's name
        assert refresh(sd, st, proc).status == "running"
    os.unlink(sd.start_socket)
    st.pid_start = 501  # the pid was reused by another process
    assert refresh(sd, st, proc).status == "stopped"
    assert refresh(sd, ContainerState(id="c1", pid=0), proc).status == "creating"


def test_write_atomic_replaces(tmp_path):
    p = tmp_path / "f"
    write_atomic(str(p), b"one")
    write_atomic(str(p), b"two")
    assert p.read_bytes() == b"two" and os.listdir(tmp_path) == ["f"]


# --- CLI flags and signals ---------------------------------------------------------------------------
def test_flag_spellings():
    for argv in (["--bundle", "/b", "c"], ["--bundle=/b", "c"], ["-b", "/b", "c"], ["-bundle", "/b", "c"]):
        flags, rest = parse_flags(argv, COMMANDS["create"])
        assert flags["bundle"] == "/b" and rest == ["c"]
    flags, rest = parse_flags(["c1", "--force"], COMMANDS["delete"])
    assert flags == {"force": True} and rest == ["c1"]
    flags, rest = parse_flags(["id", "-t", "sh"], {"tty": (("tty", "t"), False)}, stop_at_positional=True)
    assert flags == {} and rest == ["id", "-t", "sh"]
    with pytest.raises(Usage):
        parse_flags(["--nope"], COMMANDS["start"])
    with pytest.raises(Usage):
        parse_flags(["--log"], GLOBAL_FLAGS)


@pytest.mark.parametrize("text,num", [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", 15), ("usr1", 10),
                                      ("RTMIN", 34), ("RTMIN+3", 37), ("SIGRTMAX-1", 63),
                                      ("0", 0)])  # 0: runc's `kill ID 0`, a liveness check
def test_signal_spellings(text, num):
    assert parse_signal(text) == num


@pytest.mark.parametrize("bad", ["-1", "65", "NOPE", "RTMIN+40", "RTMIN-1"])
def test_bad_signals(bad):
    with pytest.raises(UsageError):
        parse_signal(bad)


# --- JSON on the hot path -------------------------------------------------------------------------
def test_fastjson_matches_json():
    import json

    doc = {"a": [1, 2.5, None, True, False, "é\n\"\u2028"], "b": {}, "c": [], "d": {"e": -3}}
    assert fastjson.dumps(doc) == json.dumps(doc)
    assert fastjson.dumps(doc, indent=2) == json.dumps(doc, indent=2)
    assert fastjson.loads(json.dumps(doc, indent=4)) == doc
    for bad in ("", "{", "[1,]", "{} x", "nul"):
        with pytest.raises(ValueError):
            fastjson.loads(bad)


# --- config -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("v", ["1.0.0", "1.3.0", "1.0.2-dev", "1.1.0-rc.1", "1.3.0+dev", "1.2.3-rc1+abc"])
def test_version_gate_accepts_1x(v):
    check_version(v)


@pytest.mark.parametrize("v", ["2.0.0", "0.9.0", "1.0", "v1.0.0", "", None, 1])
def test_version_gate_refuses_others(v):
    with pytest.raises(ConfigError) as e:
        check_version(v)
    assert "ociVersion" in str(e.value)


def test_spec_parse_resolves_root_against_bundle():
    spec = Spec.parse({"ociVersion": "1.3.0", "root": {"path": "rootfs"}, "process": {"args": ["sh"]},
                       "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/x"}]}}, "/b")
    assert spec.root_path == "/b/rootfs" and spec.linux.namespace("network").path == "/x"
    assert spec.linux.namespace("uts") is None and spec.process.cwd == "/"
