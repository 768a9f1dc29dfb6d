"""LSM labels on a kernel without the LSM: refused at create, naming the field, nothing left behind.

runc on this machine fails too (selinuxLabel: "selinux label is specified in config, but selinux
is disabled or not supported"; apparmorProfile: EINVAL writing /proc/self/attr/exec; mountLabel:
EINVAL from the first mount given context=); ocirun refuses before anything is made.  The
application path (LSM active) is pinned on the fake kernel seam in tests/unit/test_lsm.py.
"""
import shutil
import subprocess

import pytest

from ocirun.lsm import apparmor_enabled, selinux_enabled

pytestmark = pytest.mark.root

CASES = [
    ("process", "apparmorProfile", "ocirun-test-profile", "process.apparmorProfile", apparmor_enabled),
    ("process", "selinuxLabel", "system_u:system_r:container_t:s0", "process.selinuxLabel", selinux_enabled),
    ("linux", "mountLabel", "system_u:object_r:container_file_t:s0", "linux.mountLabel", selinux_enabled),
]


@pytest.mark.parametrize("section, key, value, field, enabled", CASES, ids=[c[1] for c in CASES])
def test_label_without_lsm_is_refused(oci, tmp_path, section, key, value, field, enabled):
    if enabled():
        pytest.skip("the LSM is active on this host")
    spec = oci.config(args=("true",))
    spec[section][key] = value
    oci.write(spec)
    proc = oci("create", "--bundle", oci.bundle, "lsm1")
    assert proc.returncode != 0
    assert field in proc.stderr and "not enabled" in proc.stderr, proc.stderr
    assert oci.ids() == []
    runc = shutil.which("runc")
    if runc:  # the reference refuses as well (later, and worded differently)
        ref = subprocess.run([runc, "--root", str(tmp_path / "runc"), "run", "--bundle", oci.bundle, "lsmref"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        subprocess.run([runc, "--root", str(tmp_path / "runc"), "delete", "-f", "lsmref"], capture_output=True)
        assert ref.returncode != 0, ref.stdout


@pytest.mark.parametrize("flag, value, words", [
    ("--apparmor", "ocirun-test-profile", "apparmor"),
    ("--process-label", "system_u:system_r:container_t:s0", "selinux"),
])
def test_exec_label_without_lsm_is_refused(oci, flag, value, words):
    if apparmor_enabled() or selinux_enabled():
        pytest.skip("an LSM is active on this host")
    oci.write(oci.config(args=("sleep", "30")))
    oci("run", "-d", "--bundle", oci.bundle, "lsm2", check=True)
    proc = oci("exec", flag, value, "lsm2", "true")
    assert proc.returncode != 0
    assert words in proc.stderr and "not" in proc.stderr, proc.stderr
    ok = oci("exec", "lsm2", "true")
    assert ok.returncode == 0, ok.stderr


def _in_child(fn) -> tuple[int, str]:
    """Run fn() in a forked child with its own mount and UTS namespaces; return (status, its text)."""
    import os

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code, text = 0, ""
        try:
            text = fn()
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            code, text = 1, f"{type(e).__name__}: {e}"
        os.write(w, text.encode())
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


def test_attr_write_ignores_a_procfs_file_bound_over_it():
    """CVE-2025-52881 against the LSM writes, for real: a sysctl bound over /proc/<pid>/attr/exec
    must not receive the label.  The writer's private /proc clone does not carry the overmount, so
    the write reaches the real attr file (EINVAL here: no LSM) and the sysctl keeps its value;
    the naive open("/proc/self/attr/exec") is shown to be redirected."""
    import os

    from ocirun import lsm
    from ocirun.kernel import linux as k

    def attack():
        k.unshare(k.CLONE_NEWNS | k.CLONE_NEWUTS)
        k.mount(None, "/", None, k.MS_PRIVATE | k.MS_REC)
        k.setdomainname("untouched")
        for target in (f"/proc/{os.getpid()}/attr/exec", f"/proc/{os.getpid()}/task/{os.getpid()}/attr/exec"):
            k.mount("/proc/sys/kernel/domainname", target, None, k.MS_BIND)  # self and thread-self
        try:
            lsm.set_exec_labels(None, "redirected")
            outcome = "written"
        except OSError as e:
            outcome = f"refused: {e}"
        with open("/proc/sys/kernel/domainname") as f:
            after = f.read().strip()
        with open("/proc/self/attr/exec", "w") as f:  # the naive write, for contrast
            f.write("naive")
        with open("/proc/sys/kernel/domainname") as f:
            naive = f.read().strip()
        return f"{outcome}|{after}|{naive}"

    code, text = _in_child(attack)
    assert code == 0, text
    outcome, after, naive = text.split("|")
    assert after == "untouched", text
    assert naive == "naive", "the overmount did not take: the test proves nothing"
    assert "/attr/exec" in outcome and "Invalid argument" in outcome, outcome  # the real file, no LSM
