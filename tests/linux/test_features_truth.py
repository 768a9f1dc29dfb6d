"""`ocirun features` tells the truth: every item it lists is tried on this machine.

Each test takes the list from the CLI's own output and does the thing: creates every namespace,
mounts with every mount option, grants every capability, compiles every seccomp action, operator
and architecture, runs every hook phase, sets every memory-policy mode and flag, moves a network
device, makes an idmapped mount, acts on every listed annotation.  Where the host cannot show a
feature (rdma hardware, resctrl, a running systemd, cgroup v2 controllers on this hybrid host), the
test checks the refusal is the documented one and says so.
"""
import json
import os
import re
import subprocess
import sys

import pytest

from .conftest import OCIRUN
from . import test_namespaces

#: fixture: a veth pair made for the test
veth = test_namespaces.veth

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def feats():
    out = subprocess.run([OCIRUN, "features"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _status(out, key):
    for line in out.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(key)


# -- the lists are the code's tables ----------------------------------------------------------------
def test_lists_are_the_tables_the_code_consults(feats):
    from ocirun import checkpoint, config, mempolicy, plan, security, validate
    from ocirun.features import unsafe_annotations
    from ocirun.seccomp import translate

    assert validate.NAMESPACES is plan.NAMESPACES  # the validator refuses what is not listed
    assert feats["linux"]["namespaces"] == sorted(plan.NAMESPACES)
    assert feats["linux"]["capabilities"] == plan.CAPABILITIES
    assert feats["hooks"] == list(config.HOOK_PHASES) == list(config.Hooks.__annotations__)
    assert feats["mountOptions"] == plan.known_mount_options()
    assert feats["linux"]["seccomp"]["actions"] == sorted(translate.ACTIONS)
    assert feats["linux"]["seccomp"]["operators"] == sorted(translate.OPERATORS)
    assert feats["linux"]["seccomp"]["knownFlags"] == sorted(translate.FLAGS)
    assert feats["linux"]["memoryPolicy"] == {"modes": list(mempolicy.MODES), "flags": list(mempolicy.FLAGS)}
    assert feats["potentiallyUnsafeConfigAnnotations"] == unsafe_annotations() == [
        security.KEEP_GROUPS_ANNOTATION, checkpoint.CRIU_CONFIG_ANNOTATION]


def test_version_range_is_what_the_gate_accepts(feats):
    from ocirun.config import check_version
    from ocirun.errors import ConfigError

    check_version(feats["ociVersionMin"])
    check_version(feats["ociVersionMax"])
    with pytest.raises(ConfigError):
        check_version("2.0.0")


# -- namespaces, capabilities -------------------------------------------------------------------------
NS_FILE = {"mount": "mnt", "network": "net"}


def test_every_listed_namespace_is_created(oci, feats):
    names = feats["linux"]["namespaces"]
    files = [NS_FILE.get(n, n) for n in names]
    spec = oci.config(args=("sh", "-c", " ".join(f"readlink /proc/self/ns/{f};" for f in files)))
    spec["linux"]["namespaces"] = [{"type": n} for n in names]
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    r = oci.run(spec, "ft-ns")
    assert r.returncode == 0, r.stderr
    inside = r.stdout.split()
    host = [os.readlink(f"/proc/self/ns/{f}") for f in files]
    assert len(inside) == len(files)
    shared = [n for n, a, b in zip(names, inside, host) if a == b]
    assert shared == []


def test_every_listed_capability_is_granted(oci, feats):
    """Every listed capability this kernel has and the runtime itself holds is granted, in all five sets;
    one the runtime lacks (this VM's root has no CAP_SYS_RESOURCE) is refused by name, not dropped."""
    from ocirun.kernel import linux as k
    from ocirun.plan import CAP_NUMBERS

    caps = feats["linux"]["capabilities"]
    last = k.cap_last_cap()
    held = int(_status(open("/proc/self/status").read(), "CapBnd"), 16)
    grantable = [c for c in caps if CAP_NUMBERS[c] > last or held >> CAP_NUMBERS[c] & 1]
    spec = oci.config(args=("grep", "-E", "^Cap(Eff|Bnd|Prm|Inh|Amb)", "/proc/self/status"))
    spec["process"]["capabilities"] = {s: grantable for s in ("bounding", "effective", "permitted", "inheritable",
                                                              "ambient")}
    r = oci.run(spec, "ft-caps")
    assert r.returncode == 0, r.stderr
    every = ((1 << (last + 1)) - 1) & held
    for key in ("CapEff", "CapBnd", "CapPrm", "CapInh", "CapAmb"):
        assert int(_status(r.stdout, key), 16) == every, key
    assert len(caps) >= last + 1  # every capability of this kernel is listed
    assert all(name in r.stderr for name in caps[last + 1:])  # one it lacks is a warning, not silence
    lacking = [c for c in caps if CAP_NUMBERS[c] <= last and not held >> CAP_NUMBERS[c] & 1]
    if lacking:
        spec["process"]["capabilities"] = {s: grantable + lacking[:1] for s in ("bounding", "effective", "permitted")}
        r = oci.run(spec, "ft-caps2")
        assert r.returncode != 0 and f"the runtime does not hold {lacking[0]}" in r.stderr


def test_capability_numbers_agree_with_libcap(feats):
    import ctypes
    import ctypes.util

    from ocirun.plan import CAP_NUMBERS

    path = ctypes.util.find_library("cap")
    if not path:
        pytest.skip("libcap is not installed: no independent numbering to compare with")
    libcap = ctypes.CDLL(path)
    value = ctypes.c_int()
    for name in feats["linux"]["capabilities"]:
        if libcap.cap_from_name(name.lower().encode(), ctypes.byref(value)) != 0:
            continue  # a libcap older than the capability
        assert CAP_NUMBERS[name] == value.value, name


# -- mount options --------------------------------------------------------------------------------------
#: option → what /proc/self/mountinfo shows for the mount (per-mount options column)
VISIBLE = {"ro": "ro", "nosuid": "nosuid", "nodev": "nodev", "noexec": "noexec", "noatime": "noatime",
           "nodiratime": "nodiratime", "nosymfollow": "nosymfollow", "rro": "ro", "rnosuid": "nosuid",
           "rnodev": "nodev", "rnoexec": "noexec", "rnoatime": "noatime", "rnosymfollow": "nosymfollow",
           "rnodiratime": "nodiratime"}
BIND_ONLY = {"bind", "rbind", "idmap", "ridmap"}


def test_every_listed_mount_option_is_accepted(oci, feats, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "owned").write_text("x")
    os.chown(src / "owned", 5, 5)
    opts = feats["mountOptions"]
    spec = oci.config(args=("sh", "-c", "cat /proc/self/mountinfo; echo ===; stat -c '%n %u' /mnt/idmap/owned "
                                        "/mnt/ridmap/owned"))
    mounts = spec["mounts"]
    mounts.append({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]})
    ids = [{"containerID": 0, "hostID": 100000, "size": 1000}]
    for opt in opts:
        dest = f"/mnt/{opt}"
        if opt in BIND_ONLY:
            m = {"destination": dest, "type": "bind", "source": str(src), "options": [opt]}
            if opt in ("idmap", "ridmap"):
                m["options"] = ["rbind", opt]
                m["uidMappings"] = m["gidMappings"] = ids
        elif opt == "remount":  # remount acts on a mount that is already there
            mounts.append({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
            m = {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["remount", "ro"]}
        elif opt == "tmpcopyup":
            m = {"destination": "/mnt/tmpcopyup", "type": "tmpfs", "source": "tmpfs", "options": [opt]}
        else:
            m = {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": [opt]}
        mounts.append(m)
    r = oci.run(spec, "ft-mnt")
    assert r.returncode == 0, r.stderr
    table, _, stats = r.stdout.partition("===\n")
    per_mount = {}
    for line in table.splitlines():
        fields = line.split()
        per_mount[fields[4]] = set(fields[5].split(","))  # the last mount on a path wins
    missing = [o for o in opts if f"/mnt/{o}" not in per_mount]
    assert missing == []
    wrong = [o for o, flag in VISIBLE.items() if o in opts and flag not in per_mount[f"/mnt/{o}"]]
    assert wrong == []
    assert "ro" in per_mount["/mnt/remount"]
    # the idmapped mounts (0:100000:1000, runc's reading: on disk containerID shows as hostID) show the
    # file owned by uid 5 on disk as uid 100005
    assert stats.split() == ["/mnt/idmap/owned", "100005", "/mnt/ridmap/owned", "100005"]


BIG_ENDIAN = {"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64",
              "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X"}


# -- seccomp ----------------------------------------------------------------------------------------------
def test_every_listed_seccomp_action_operator_and_arch_compiles(feats):
    from ocirun.errors import SeccompError
    from ocirun.seccomp import compile_filter

    sc = feats["linux"]["seccomp"]
    assert sc["enabled"] is True
    for action in sc["actions"]:
        rule = {"names": ["getcwd"], "action": action}
        if action == "SCMP_ACT_ERRNO":
            rule["errnoRet"] = 1
        profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
        if action == "SCMP_ACT_NOTIFY":
            profile["listenerPath"] = "/run/nonexistent.sock"
        assert compile_filter(profile).to_json(), action
    for op in sc["operators"]:
        arg = {"index": 0, "value": 1, "op": op}
        if op == "SCMP_CMP_MASKED_EQ":
            arg["valueTwo"] = 1
        profile = {"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [arg]}]}
        assert compile_filter(profile).to_json(), op
    # archs are the ones "recognized" (features-linux.md): libseccomp builds a filter for each, except that
    # one filter cannot mix byte orders, so on a little-endian host the big-endian ones are refused.
    refused = []
    for arch in sc["archs"]:
        profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [arch],
                   "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
        try:
            assert compile_filter(profile).to_json(), arch
        except SeccompError as e:
            assert "architectures[0]" in str(e)
            refused.append(arch)
    other_order = BIG_ENDIAN if sys.byteorder == "little" else set(sc["archs"]) - BIG_ENDIAN
    assert set(refused) <= other_order


@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                  "SECCOMP_FILTER_FLAG_TSYNC"])
def test_supported_seccomp_flags_load_in_a_container(oci, feats, flag):
    if flag not in feats["linux"]["seccomp"]["supportedFlags"]:
        pytest.skip(f"{flag} is not supported by this kernel (features says so)")
    spec = oci.config(args=("sh", "-c", "grep Seccomp: /proc/self/status"))
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag],
                                "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}
    r = oci.run(spec, "ft-scf")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Seccomp:", "2"]


# -- hooks ----------------------------------------------------------------------------------------------------
def test_every_listed_hook_phase_runs(oci, feats, tmp_path):
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    spec = oci.config(args=("true",))
    spec["mounts"].append({"destination": "/hooklog", "type": "bind", "source": str(logdir),
                           "options": ["rbind", "rw"]})
    hooks = {}
    for phase in feats["hooks"]:
        # startContainer's path and files are the container's (after pivot_root); the others' the host's
        target = "/hooklog/log" if phase == "startContainer" else str(logdir / "log")
        hooks[phase] = [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {phase} >> {target}"]}]
    spec["hooks"] = hooks
    r = oci.run(spec, "ft-hooks")
    assert r.returncode == 0, r.stderr
    oci("delete", "ft-hooks")
    ran = (logdir / "log").read_text().split()
    assert sorted(ran) == sorted(feats["hooks"])


# -- cgroups ---------------------------------------------------------------------------------------------------
def test_cgroup_drivers(oci, feats):
    from ocirun import cgroups
    from ocirun.errors import CgroupError

    cg = feats["linux"]["cgroup"]
    mode = cgroups.detect_mode()
    spec = oci.config(args=("sleep", "30"))
    spec["linux"]["resources"] = {"pids": {"limit": 17}}
    oci.write(spec)
    oci("create", "--bundle", oci.bundle, "ft-cg", check=True)
    try:
        path = spec["linux"]["cgroupsPath"]
        if mode == cgroups.MODE_UNIFIED:
            assert cg["v2"] is True
            value = open(f"/sys/fs/cgroup{path}/pids.max").read().strip()
        else:
            assert cg["v1"] is True
            value = open(f"/sys/fs/cgroup/pids{path}/pids.max").read().strip()
        assert value == "17"
    finally:
        oci("delete", "--force", "ft-cg")
    # systemd: the driver is part of this build; here it can only say systemd is not running.
    assert cg["systemd"] is True and cg["systemdUser"] is False
    if not os.path.isdir("/run/systemd/system"):
        with pytest.raises(CgroupError, match="systemd is not running"):
            cgroups.for_container("system.slice:ocirun:ft", "ft", systemd=True)


# -- LSMs, memory policy, intelRdt, netDevices, annotations -----------------------------------------------------
def test_lsm_flags_match_the_running_kernel(oci, feats):
    try:
        lsms = open("/sys/kernel/security/lsm").read().strip().split(",")
    except OSError:
        lsms = []
    apparmor = "apparmor" in lsms and os.path.isdir("/sys/kernel/security/apparmor")
    selinux = "selinux" in lsms and " - selinuxfs " in open("/proc/self/mountinfo").read()
    assert feats["linux"]["apparmor"]["enabled"] is apparmor
    assert feats["linux"]["selinux"]["enabled"] is selinux
    if not apparmor:  # reported absent → a profile is refused, not ignored
        spec = oci.config()
        spec["process"]["apparmorProfile"] = "ocirun-test"
        oci.write(spec)
        r = oci("create", "--bundle", oci.bundle, "ft-aa")
        assert r.returncode != 0 and "process.apparmorProfile: AppArmor is not enabled" in r.stderr


def test_every_memory_policy_mode_and_flag_reaches_the_kernel(feats):
    from ocirun import mempolicy
    from ocirun.kernel import linux as k

    def try_in_child(policy):
        pid = os.fork()
        if pid == 0:
            try:
                mempolicy.apply(policy)
                mode, nodes = k.get_mempolicy()
                os._exit(0 if mode == mempolicy.plan(policy)[0] or policy["mode"] == "MPOL_PREFERRED" else 3)
            except BaseException:
                os._exit(1)
        return os.WEXITSTATUS(os.waitpid(pid, 0)[1])

    mp = feats["linux"]["memoryPolicy"]
    for mode in mp["modes"]:
        nodes = "" if mode in ("MPOL_DEFAULT", "MPOL_LOCAL") else "0"
        assert try_in_child({"mode": mode, "nodes": nodes}) == 0, mode
    for flag in mp["flags"]:
        assert try_in_child({"mode": "MPOL_BIND", "nodes": "0", "flags": [flag]}) == 0, flag


def test_intel_rdt_is_implemented_and_refused_clearly_without_resctrl(oci, feats, tmp_path):
    from ocirun import intelrdt

    rdt = feats["linux"]["intelRdt"]
    assert rdt == {"enabled": True, "schemata": True, "monitoring": True}
    root = tmp_path / "resctrl"
    for d in ("info/L3", "info/L3_MON"):
        (root / d).mkdir(parents=True)
    cfg = {"schemata": ["L3:0=f"], "enableMonitoring": True}
    intelrdt.check(cfg, str(root))
    (root / "mon_groups").mkdir()
    os.makedirs(root / "ft" / "mon_groups")
    rec = intelrdt.apply(cfg, "ft", 1, str(root))
    assert (root / "ft" / "schemata").read_text() == "L3:0=f\n"
    assert (root / "ft" / "mon_groups" / "ft" / "tasks").read_text() == "1"
    assert rec["mon"] == str(root / "ft" / "mon_groups" / "ft")
    if " - resctrl " not in open("/proc/self/mountinfo").read():
        spec = oci.config()
        spec["linux"]["intelRdt"] = cfg
        oci.write(spec)
        r = oci("create", "--bundle", oci.bundle, "ft-rdt")
        assert r.returncode != 0 and "config.json: linux.intelRdt: " in r.stderr


def test_net_devices_are_moved(oci, feats, veth):
    assert feats["linux"]["netDevices"]["enabled"] is True
    spec = oci.config(args=("cat", "/sys/class/net/ftnet0/operstate"))
    spec["linux"]["netDevices"] = {veth: {"name": "ftnet0"}}
    r = oci.run(spec, "ft-net")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("up", "lowerlayerdown", "unknown")


def test_every_listed_annotation_changes_behaviour(oci, feats):
    """run.oci.keep_original_groups: the process keeps the runtime caller's supplementary groups.
    (org.criu.config, CRIU's configuration file: tests/linux/test_checkpoint_flags.py, where CRIU works.)"""
    assert feats["potentiallyUnsafeConfigAnnotations"] == ["run.oci.keep_original_groups", "org.criu.config"]
    out = {}
    for value in (None, "1"):
        spec = oci.config(args=("grep", "^Groups:", "/proc/self/status"))
        if value:
            spec["annotations"] = {"run.oci.keep_original_groups": value}
        oci.write(spec)
        with open(os.devnull) as null:
            r = subprocess.run([OCIRUN, "--root", oci.root, "run", "--bundle", oci.bundle, "ft-ann"],
                               capture_output=True, text=True, stdin=null, preexec_fn=lambda: os.setgroups([4242]),
                               timeout=30)
        assert r.returncode == 0, r.stderr
        out[value] = r.stdout.split()[1:]
    assert "4242" not in out[None]
    assert out["1"] == ["4242"]


ANNOTATION_KEY = (r"[\"']((?:run\.oci|org\.opencontainers|org\.systemd|org\.criu"
                  r"|io\.(?:github|containerd|kubernetes|podman))\.[A-Za-z0-9_.-]+)[\"']")


def test_no_other_annotation_is_consulted():
    """Any annotation key written in the code must be a listed one (or one features itself prints)."""
    import ocirun
    from ocirun.features import features, unsafe_annotations

    pkg = os.path.dirname(ocirun.__file__)
    printed = set(features()["annotations"])
    keys = set()
    for dirpath, _, files in os.walk(pkg):
        for name in files:
            if name.endswith(".py"):
                text = open(os.path.join(dirpath, name)).read()
                keys.update(re.findall(ANNOTATION_KEY, text))
    assert keys - printed - set(unsafe_annotations()) == set()
