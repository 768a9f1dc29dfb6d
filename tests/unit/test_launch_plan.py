"""ocirun.plan.launch_plan: the spec → plan step `create` runs once in the parent; the init stage executes
the result (re-exec'd: from CONFIG through to_wire/from_wire; forked: the object itself)."""
from ocirun.config import Spec
from ocirun.kernel import constants as k
from ocirun.plan import LaunchPlan, MountOp, launch_plan


def _spec(**linux):
    raw = {"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"},
           "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                      {"destination": "data/", "type": "bind", "source": "vol", "options": ["rbind", "ro"]},
                      {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}],
           "linux": linux}
    return Spec.parse(raw, "/b")


def test_namespaces_joined_in_join_order_created_in_one_unshare():
    p = launch_plan(_spec(namespaces=[{"type": "mount"}, {"type": "network", "path": "/run/netns/n"},
                                      {"type": "pid"}, {"type": "user", "path": "/proc/1/ns/user"},
                                      {"type": "uts"}]), "/b", 40)
    assert p.joins == [["user", "/proc/1/ns/user"], ["network", "/run/netns/n"]]  # user first
    assert p.new_user is False
    assert p.unshare_flags == k.CLONE_NEWNS | k.CLONE_NEWPID | k.CLONE_NEWUTS


def test_a_new_user_namespace_is_made_on_its_own():
    p = launch_plan(_spec(namespaces=[{"type": "user"}, {"type": "ipc"}],
                          uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
                          gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]), "/b", 40)
    assert p.new_user is True and p.joins == [] and p.unshare_flags == k.CLONE_NEWIPC


def test_mounts_in_config_order_parsed_once():
    p = launch_plan(_spec(), "/b", 40)
    assert [m.destination for m in p.mounts] == ["/proc", "/data", "/tmp"]
    bind = p.mounts[1]
    assert bind.bind and bind.source == "/b/vol" and bind.readonly  # bundle-relative source resolved
    assert bind.flags & k.MS_BIND and bind.propagation == []
    assert p.mounts[2].data == "mode=1777" and not p.mounts[2].bind


def test_mount_label_goes_into_the_data_where_runc_puts_it():
    p = launch_plan(_spec(mountLabel="system_u:object_r:container_file_t:s0"), "/b", 40)
    assert p.mounts[0].data == ""  # proc: never labelled
    assert p.mounts[1].data == ""  # a bind: never labelled
    assert p.mounts[2].data == 'mode=1777,context="system_u:object_r:container_file_t:s0"'


def test_the_plan_travels_in_config_unchanged():
    p = launch_plan(_spec(namespaces=[{"type": "user"}, {"type": "network", "path": "/n"}],
                          uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
                          gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]), "/b", 40)
    import json

    back = LaunchPlan.from_wire(json.loads(json.dumps(p.to_wire())))
    assert back == p and all(isinstance(m, MountOp) for m in back.mounts)


def test_capability_masks_decided_with_the_kernels_last_cap_and_noted_once():
    """runc's default process: ambient CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE without inheritable are
    dropped (an info note, as runc drops them silently); an unknown name is a warning."""
    raw_caps = {"bounding": ["CAP_KILL", "CAP_NOPE"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                "ambient": ["CAP_KILL"]}
    spec = _spec()
    from ocirun.config import Process

    spec.process = Process.parse({"args": ["sh"], "cwd": "/", "capabilities": raw_caps})
    p = launch_plan(spec, "/b", 40)
    assert p.last_cap == 40
    assert p.capabilities == {"bounding": 1 << 5, "effective": 1 << 5, "inheritable": 0, "permitted": 1 << 5,
                              "ambient": 0}
    assert [level for level, _ in p.notes] == ["warning", "info"]
    assert p.notes[0][1] == "ignoring unknown or unavailable capabilities: [CAP_NOPE]"


# --- the rest of what the stages execute, field by field ---------------------------------------------------
from ocirun.config import Capabilities, Device, Hook, User  # noqa: E402
from ocirun.plan import DeviceRule, ProcessPlan, RLIMITS, process_plan  # noqa: E402
from ocirun.seccomp.model import CompiledFilter  # noqa: E402

PROGRAM = CompiledFilter(b"\x06\x00\x00\x00\x00\x00\xff\x7f", 0, False, ["a warning"])


def _full(process=None, **config):
    """A config with every field the plan carries."""
    raw = {"ociVersion": "1.2.0", "root": {"path": "rootfs", "readonly": True}, "hostname": "box",
           "domainname": "example.org",
           "process": {"args": ["sh", "-c", "true"], "cwd": "/w", "env": ["A=1"], "terminal": True,
                       "consoleSize": {"height": 24, "width": 80},
                       "user": {"uid": 1000, "gid": 100, "umask": 0o027, "additionalGids": [10, 11]},
                       "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
                                   {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
                       "noNewPrivileges": True, "oomScoreAdj": 100, "apparmorProfile": "prof", "selinuxLabel": "lbl",
                       "scheduler": {"policy": "SCHED_OTHER", "nice": 5},
                       "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
                       "execCPUAffinity": {"initial": "0"},
                       "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                        "permitted": ["CAP_KILL"]},
                       **(process or {})},
           "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
           "hooks": {"prestart": [{"path": "/bin/pre"}],
                     "createContainer": [{"path": "/bin/cc", "args": ["cc", "x"], "env": ["E=1"], "timeout": 3}],
                     "poststop": [{"path": "/bin/post"}]},
           "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "uts", "time", "network")],
                     "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666,
                                  "uid": 0, "gid": 0}],
                     "resources": {"memory": {"limit": 1 << 20},
                                   "devices": [{"allow": True, "type": "c", "major": 10, "minor": 229,
                                                "access": "rwm"}]},
                     "cgroupsPath": "/ocirun/c1", "rootfsPropagation": "rshared",
                     "sysctl": {"net.ipv4.ip_forward": "1", "kernel.msgmax": "8192"},
                     "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
                     "timeOffsets": {"monotonic": {"secs": 5}, "boottime": {"secs": 1, "nanosecs": 2}},
                     "personality": {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]},
                     "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"},
                     "mountLabel": "system_u:object_r:container_file_t:s0",
                     "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                                 "listenerMetadata": "meta"}}}
    raw["linux"].update(config)
    return Spec.parse(raw, "/b")


def test_the_process_is_a_typed_record_with_rlimits_as_resource_numbers():
    p = launch_plan(_full(), "/b", 40).process
    assert isinstance(p, ProcessPlan)
    assert p.args == ["sh", "-c", "true"] and p.cwd == "/w" and p.env == ["A=1"]
    assert p.terminal is True and p.consoleSize == {"height": 24, "width": 80}
    assert p.user == User(uid=1000, gid=100, umask=0o027, additionalGids=[10, 11])
    assert p.rlimits == [(RLIMITS["RLIMIT_NOFILE"], 1024, 4096), (RLIMITS["RLIMIT_CORE"], 0, 0)]
    assert p.noNewPrivileges is True and p.oomScoreAdj == 100
    assert (p.apparmorProfile, p.selinuxLabel) == ("prof", "lbl")
    assert p.scheduler == {"policy": "SCHED_OTHER", "nice": 5}
    assert p.ioPriority == {"class": "IOPRIO_CLASS_BE", "priority": 4} and p.execCPUAffinity == {"initial": "0"}
    assert p.capabilities == Capabilities(bounding=["CAP_KILL"], effective=["CAP_KILL"], permitted=["CAP_KILL"])


def test_no_process_no_process_plan_and_no_masks():
    spec = _full()
    spec.process = None
    p = launch_plan(spec, "/b", 40)
    assert p.process is None and p.capabilities == {} and p.notes == []


def test_the_process_goes_back_to_the_config_object_exec_starts_from():
    raw = {"args": ["sh"], "cwd": "/", "env": ["A=1"], "terminal": False, "user": {"uid": 0, "gid": 0},
           "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}], "noNewPrivileges": True,
           "oomScoreAdj": -5, "capabilities": {"bounding": ["CAP_KILL"], "effective": [], "inheritable": [],
                                               "permitted": [], "ambient": []},
           "consoleSize": {"height": 1, "width": 2}}
    from ocirun.config import Process

    assert process_plan(Process.parse(raw)).to_config() == raw


def test_the_filesystem_fields():
    p = launch_plan(_full(), "/b", 40)
    assert p.root_path == "/b/rootfs" and p.root_readonly is True and p.rootfs_propagation == "rshared"
    assert p.devices == [Device(path="/dev/fuse", type="c", major=10, minor=229, fileMode=0o666, uid=0, gid=0)]
    assert p.masked_paths == ["/proc/kcore"] and p.readonly_paths == ["/proc/sys"]
    assert p.mount_label == "system_u:object_r:container_file_t:s0"


def test_hostname_only_with_a_uts_namespace():
    assert launch_plan(_full(), "/b", 40).hostname == "box"
    assert launch_plan(_full(namespaces=[{"type": "mount"}]), "/b", 40).hostname is None
    assert launch_plan(_full(), "/b", 40).domainname == "example.org"


def test_sysctl_personality_memory_policy():
    p = launch_plan(_full(), "/b", 40)
    assert p.sysctl == {"net.ipv4.ip_forward": "1", "kernel.msgmax": "8192"}
    assert p.personality == 0x0008 | 0x0040000  # LINUX32 | ADDR_NO_RANDOMIZE
    assert p.memory_policy == {"mode": "MPOL_BIND", "nodes": "0"}
    assert launch_plan(_full(personality=None), "/b", 40).personality is None


def test_time_offsets_as_clock_ids_only_with_a_time_namespace():
    assert launch_plan(_full(), "/b", 40).time_offsets == [(1, 5, 0), (7, 1, 2)]
    assert launch_plan(_full(namespaces=[{"type": "mount"}]), "/b", 40).time_offsets == []


def test_namespace_questions_the_stages_ask():
    p = launch_plan(_full(), "/b", 40)
    assert p.new_network and p.mount_namespace == "new" and not p.user_namespace
    joined = launch_plan(_full(namespaces=[{"type": "mount", "path": "/m"}, {"type": "user", "path": "/u"}]),
                         "/b", 40)
    assert joined.mount_namespace == "joined" and joined.user_namespace and not joined.new_network
    assert launch_plan(_full(namespaces=[{"type": "pid"}]), "/b", 40).mount_namespace is None


def test_hooks_by_phase():
    h = launch_plan(_full(), "/b", 40).hooks
    assert h.prestart == [Hook(path="/bin/pre")] and h.poststop == [Hook(path="/bin/post")]
    assert h.createContainer == [Hook(path="/bin/cc", args=["cc", "x"], env=["E=1"], timeout=3)]
    assert h.createRuntime == [] and h.startContainer == []


def test_the_seccomp_program_and_its_agent():
    p = launch_plan(_full(), "/b", 40, PROGRAM)
    assert p.seccomp is PROGRAM
    assert p.seccomp_listener is None and p.seccomp_metadata is None  # no SCMP_ACT_NOTIFY rule: no agent
    notify = CompiledFilter(PROGRAM.bpf, 1 << 3, True, [])
    p = launch_plan(_full(), "/b", 40, notify)
    assert (p.seccomp_listener, p.seccomp_metadata) == ("/run/agent.sock", "meta")
    assert launch_plan(_full(), "/b", 40).seccomp is None


def test_device_rules_deny_all_then_the_configs_then_the_defaults():
    from ocirun.plan import DEFAULT_DEVICE_RULES

    p = launch_plan(_full(), "/b", 40)
    assert p.cgroups_path == "/ocirun/c1"
    assert p.resources == {"memory": {"limit": 1 << 20}}  # its device rules are the plan's own field
    assert p.device_rules[:2] == [DeviceRule(allow=False, access="rwm"),
                                  DeviceRule(allow=True, type="c", major=10, minor=229, access="rwm")]
    assert [r.to_config() for r in p.device_rules[2:]] == DEFAULT_DEVICE_RULES
    assert p.cgroup_resources()["devices"][0] == {"allow": False, "access": "rwm"}
    rootless = launch_plan(_full(resources={"memory": {"limit": 1}}), "/b", 40, rootless=True)
    assert rootless.device_rules is None and rootless.cgroup_resources() == {"memory": {"limit": 1}}


def test_every_field_round_trips_through_the_wire():
    import json

    p = launch_plan(_full(), "/b", 40, CompiledFilter(PROGRAM.bpf, 1 << 3, True, ["w"]))
    p.cgroup = {"mode": "unified", "path": "/ocirun/c1", "paths": {"": "/sys/fs/cgroup/ocirun/c1"}}
    wire = json.loads(json.dumps(p.to_wire()))
    back = LaunchPlan.from_wire(wire)
    assert back == p
    assert back.to_wire() == wire
    assert isinstance(back.process, ProcessPlan) and isinstance(back.seccomp, CompiledFilter)
    assert all(isinstance(r, tuple) for r in back.process.rlimits + back.time_offsets)
    assert set(wire["hooks"]) == {"prestart", "createContainer", "poststop"}  # empty phases stay off the wire
    empty = launch_plan(Spec.parse({"ociVersion": "1.2.0"}, "/b"), "/b", 40)
    assert LaunchPlan.from_wire(json.loads(json.dumps(empty.to_wire()))) == empty


def test_the_wire_stays_small():
    """CONFIG and plan.json: a few KB for a full config without a seccomp program."""
    import json

    assert len(json.dumps(launch_plan(_full(), "/b", 40).to_wire())) < 3000
