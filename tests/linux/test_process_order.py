"""The order of the steps between `start` and the user program's execve, and what each step may rely
on (issue 11, items 4 and 9): seccomp before startContainer hooks, scheduling while capabilities are
held, stdio and pty handed to process.user, cwd entered as root first, bind sources opened with the
runtime's credentials, the caller's window size on an `exec -t` pty before the process runs.

Each docstring gives what runc 1.1.5 does with the same bundle on this machine."""
import os

import pytest

pytestmark = pytest.mark.root


def _seccomp_denying_mkdir() -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}


@pytest.mark.parametrize("nnp", [True, False])
def test_start_container_hook_runs_under_seccomp(oci, tmp_path, nnp):
    """A startContainer hook whose syscall the container's filter forbids fails, and the process does
    not run, with noNewPrivileges true (filter loaded late) as well as false (loaded before the user
    switch).

    runc 1.1.5, same bundle: in both cases the hook's mkdir is denied (no /out/hookdir) and the
    process never runs (no /out/ran); runc's `start` still exits 0, as it returns once the init has
    read its fifo, before the hooks run.  ocirun reports the failure from `start`.  ocirun before the
    fix: with NNP the hook ran before the filter was loaded, made /out/hookdir, and `start` succeeded."""
    out = tmp_path / "out"
    out.mkdir()
    spec = oci.config(args=("touch", "/out/ran"))
    spec["process"]["noNewPrivileges"] = nnp
    spec["mounts"].append({"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]})
    spec["linux"]["seccomp"] = _seccomp_denying_mkdir()
    spec["hooks"] = {"startContainer": [{"path": "/bin/mkdir", "args": ["mkdir", "/out/hookdir"]}]}
    oci.write(spec)
    oci("create", "--bundle", oci.bundle, "c1", check=True)
    proc = oci("start", "c1")
    assert proc.returncode != 0, proc.stderr
    assert "startContainer hook #0" in proc.stderr
    assert sorted(os.listdir(out)) == []
