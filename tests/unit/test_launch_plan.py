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
