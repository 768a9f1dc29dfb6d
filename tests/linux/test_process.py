"""process: user, groups, umask, cwd, env, rlimits, capabilities, noNewPrivileges, oomScoreAdj."""
import os
import shutil

import pytest

pytestmark = pytest.mark.root


def _status(out, key):
    for line in out.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(key)


def test_user_groups_umask_cwd_env(oci):
    def edit(spec):
        spec["process"]["user"] = {"uid": 1234, "gid": 5678, "additionalGids": [11, 12], "umask": 0o077}
        spec["process"]["cwd"] = "/tmp"
        spec["process"]["env"].append("GREETING=hi there")
    proc = oci.sh("id -u; id -g; id -G; umask; pwd; echo $GREETING", spec_edit=edit)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1234", "5678", "5678 11 12", "0077", "/tmp", "hi there"]


def test_rlimits(oci):
    def edit(spec):
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                      {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    proc = oci.sh("ulimit -n; ulimit -Hn; ulimit -c", spec_edit=edit)
    assert proc.stdout.split() == ["123", "456", "0"], proc.stderr


def test_capabilities_and_no_new_privs(oci):
    proc = oci.sh("grep -E 'Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs' /proc/self/status")
    assert proc.returncode == 0, proc.stderr
    mask = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE (runc's default spec)
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert int(_status(proc.stdout, key), 16) == mask, key
    # ambient needs the cap in inheritable too, which runc's default spec leaves empty (runc: same)
    assert int(_status(proc.stdout, "CapInh"), 16) == 0 and int(_status(proc.stdout, "CapAmb"), 16) == 0
    assert _status(proc.stdout, "NoNewPrivs") == "1"


def test_non_root_user_keeps_configured_caps(oci):
    def edit(spec):
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
        caps = ["CAP_NET_RAW"]
        spec["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted",
                                                             "inheritable", "ambient")}
    proc = oci.sh("grep -E 'CapEff|CapAmb' /proc/self/status", spec_edit=edit)
    assert proc.returncode == 0, proc.stderr
    assert int(_status(proc.stdout, "CapEff"), 16) == 1 << 13
    assert int(_status(proc.stdout, "CapAmb"), 16) == 1 << 13


def test_unknown_capability_is_a_warning(oci):
    def edit(spec):
        spec["process"]["capabilities"]["bounding"].append("CAP_NOT_A_THING")
    proc = oci.sh("echo ran", spec_edit=edit)
    assert proc.returncode == 0 and proc.stdout == "ran\n"
    assert "CAP_NOT_A_THING" in proc.stderr


def test_oom_score_adj(oci):
    proc = oci.sh("cat /proc/self/oom_score_adj", spec_edit=lambda s: s["process"].update(oomScoreAdj=500))
    assert proc.stdout.strip() == "500", proc.stderr


def test_personality(oci):
    proc = oci.sh("uname -m", spec_edit=lambda s: s["linux"].update(personality={"domain": "LINUX32"}))
    assert proc.stdout.strip() in ("i686", "armv8l", "armv7l"), proc.stdout + proc.stderr


def test_new_session_keyring_unless_no_new_keyring(oci):
    spec = oci.config(args=("sh", "-c", "grep -c ' _ses.c[23]: ' /proc/keys || true"))
    spec["linux"]["maskedPaths"] = []  # /proc/keys is masked by default
    oci.write(spec)
    plain = oci("run", "-b", oci.bundle, "c2")
    kept = oci("run", "--no-new-keyring", "-b", oci.bundle, "c3")
    assert plain.stdout.strip() == "1", plain.stderr  # runc's default: a keyring of its own
    assert kept.stdout.strip() == "0", kept.stderr


def test_features_is_valid_against_our_schema():
    import json
    import subprocess

    from ocirun import schema

    from .conftest import OCIRUN

    out = subprocess.run([OCIRUN, "features"], capture_output=True, text=True, check=True).stdout
    feats = json.loads(out)
    assert schema.validate(feats, "features") == []
    assert "time" in feats["linux"]["namespaces"] and "ridmap" in feats["mountOptions"]
    assert feats["linux"]["seccomp"]["enabled"] is True


@pytest.mark.parametrize("uid, home", [(0, "/root"), (4242, "/")])
def test_run_sets_home_from_the_containers_passwd(oci, uid, home):
    """runc 1.1.5 sets HOME for `run` (as for exec) when process.env has none: the uid's entry in the
    container's /etc/passwd, else "/".  ocirun left HOME unset for create/run."""
    spec = oci.config(args=("sh", "-c", 'echo "home=$HOME"'))
    spec["process"]["env"] = [e for e in spec["process"]["env"] if not e.startswith("HOME=")]
    spec["process"]["user"] = {"uid": uid, "gid": uid}
    r = oci.run(spec)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"home={home}\n"


def test_missing_cwd_is_created(oci):
    """runc 1.1.5 creates a missing process.cwd in the rootfs (0755, root's) and runs; ocirun failed
    with chdir: no such file or directory."""
    spec = oci.config(args=("sh", "-c", "pwd; stat -c '%a %u' ."))
    spec["root"]["readonly"] = False
    spec["process"]["cwd"] = "/ocirun-missing/deeper"
    r = oci.run(spec)
    try:
        assert r.returncode == 0, r.stderr
        assert r.stdout == "/ocirun-missing/deeper\n755 0\n"
    finally:
        shutil.rmtree(os.path.join(oci.rootfs, "ocirun-missing"), ignore_errors=True)


@pytest.mark.parametrize("args0", ["/bin", "/etc/passwd"])
def test_not_executable_is_permission_denied(oci, args0):
    """runc 1.1.5 (Go's exec.LookPath): `exec: "/bin": permission denied` for a directory as for a file
    without x; ocirun said "is a directory" for the first (podman maps "permission denied" to 126)."""
    r = oci.run(oci.config(args=(args0,)))
    assert r.returncode == 1
    assert f'exec: "{args0}": permission denied' in r.stderr
