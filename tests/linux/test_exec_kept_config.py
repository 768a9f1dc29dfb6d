"""`exec` uses the config the container was created with, kept in its state dir as the launch plan
create executed (plan.json; config.json beside it is for `inspect`), never the bundle's
config.json as it is now (issue 11, item 5): editing that file after create must not give an exec'd
process a weaker seccomp filter or more capabilities, and removing it must not break exec.

runc 1.1.5, the same bundle and steps (`runc --root R run -d`, rewrite config.json, `runc exec`):
the exec'd process has `Seccomp: 2` (runc keeps the filter in state.json) but takes its
capabilities from the rewritten file (CapEff and CapBnd 0000000000281022, the five listed below:
runc's exec reads `process` from the bundle when no --process is given); with the bundle removed,
`runc exec` fails with status 255 ("exec failed: chdir <bundle>: no such file or directory").
ocirun takes both from what create kept, and needs no bundle."""
import json
import os
import shutil

import pytest

pytestmark = pytest.mark.root

C = f"kept{os.getpid()}"
#: create-time capabilities: CAP_KILL (5) only
CAPS = ["CAP_KILL"]
CAP_KILL_MASK = f"{1 << 5:016x}"
#: a filter that changes nothing the test does, so the container runs with "Seccomp: 2"
SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}


def _status(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(key)


@pytest.fixture
def box(oci):
    """A running container (`sleep 1000`) with a seccomp filter and only CAP_KILL."""
    spec = oci.config(args=("sleep", "1000"))
    spec["process"]["capabilities"] = {k: list(CAPS) for k in ("bounding", "effective", "permitted")}
    spec["linux"]["seccomp"] = SECCOMP
    oci.write(spec)
    oci("run", "-d", "--bundle", oci.bundle, C, check=True)
    return oci, spec


def test_exec_keeps_the_create_time_seccomp_and_caps_after_config_json_is_rewritten(box):
    oci, spec = box
    edited = json.loads(json.dumps(spec))
    del edited["linux"]["seccomp"]
    all_caps = ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_KILL"]
    edited["process"]["capabilities"] = {k: all_caps for k in ("bounding", "effective", "permitted")}
    oci.write(edited)

    proc = oci("exec", C, "cat", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    assert _status(proc.stdout, "Seccomp") == "2"
    assert _status(proc.stdout, "CapEff") == CAP_KILL_MASK
    assert _status(proc.stdout, "CapBnd") == CAP_KILL_MASK


def test_exec_works_with_the_bundle_removed(box):
    oci, _ = box
    shutil.rmtree(oci.bundle)
    proc = oci("exec", C, "cat", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    assert _status(proc.stdout, "Seccomp") == "2"
    assert _status(proc.stdout, "CapEff") == CAP_KILL_MASK


def test_exec_works_with_config_json_unreadable(box):
    """Replaced by something that is not JSON (for root, "unreadable" cannot be a mode)."""
    oci, _ = box
    with open(os.path.join(oci.bundle, "config.json"), "w") as f:
        f.write("not json")
    proc = oci("exec", C, "true")
    assert proc.returncode == 0, proc.stderr


def test_kept_config_is_private(box):
    oci, _ = box
    for name in ("config.json", "plan.json"):
        assert os.stat(os.path.join(oci.root, C, name)).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(oci.root, C)).st_mode & 0o777 == 0o711


def test_a_container_from_before_plan_json_execs_from_its_kept_config(box):
    """Made by an ocirun that kept only config.json (an upgrade under running containers): exec builds
    the plan create makes of the kept config, not of the bundle's, which says otherwise now."""
    oci, _ = box
    os.unlink(os.path.join(oci.root, C, "plan.json"))
    with open(os.path.join(oci.bundle, "config.json"), "w") as f:
        f.write("not json")
    proc = oci("exec", C, "true")
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(os.path.join(oci.root, C, "plan.json"))  # read-only: nothing rewritten


def test_a_container_without_a_kept_config_is_refused_in_one_line(box):
    """Neither plan.json nor config.json (the files are removed): refused, not served from the bundle."""
    oci, _ = box
    for name in ("plan.json", "config.json"):
        os.unlink(os.path.join(oci.root, C, name))
    proc = oci("exec", C, "true")
    assert proc.returncode == 255
    assert proc.stderr.strip().splitlines()[-1].endswith(
        f"exec failed: container {C} has no saved config ({oci.root}/{C}/config.json): it was created "
        f"by an older ocirun; recreate it"), proc.stderr
