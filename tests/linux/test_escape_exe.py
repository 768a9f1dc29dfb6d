"""CVE-2019-5736 class: the runtime's binary cannot be overwritten from inside the container.

For ocirun the "binary" is the interpreter the init stage runs from
(``os.path.realpath(sys.executable)``) and its libpython.  While a container is
`created` its pid 1 *is* that interpreter, so a process exec'd into it can try
/proc/1/exe and /proc/1/map_files/* (runc's attack reopened /proc/<runc>/exe for
writing).  The init is non-dumpable: both are refused.  The second line of defence,
that the exe the init runs from is itself not writable (runc's sealed copy), is
checked from the host; see docs/security.md for what it costs.
"""
import hashlib
import os

import pytest

from ocirun.stagespawn import interpreter

pytestmark = pytest.mark.root

ST_RDONLY = 1


def _runtime_files() -> list[str]:
    """The interpreter and every shared object it maps that belongs to the Python install."""
    exe = interpreter()
    files = [exe]
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if "libpython" in path and path not in files:
                files.append(path)
    return files


def _digest(paths: list[str]) -> dict[str, str]:
    out = {}
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        out[p] = h.hexdigest()
    return out


# Opens for writing with O_APPEND and never writes: should an open succeed, nothing is changed,
# and the test reports the hole.  busybox `>>` is O_WRONLY|O_CREAT|O_APPEND.
ATTACK = r"""
try() { if ( exec 3>>"$1" ) 2>/dev/null; then echo "WRITABLE $1"; fi; }
ls -l /proc/1/exe 2>&1
readlink /proc/1/exe && echo "EXE-LINK-READABLE"
try /proc/1/exe
( exec 4</proc/1/exe && echo "EXE-OPENED" && try /proc/self/fd/4 ) 2>/dev/null
ls /proc/1/map_files/ 2>/dev/null | head -1 | grep . && echo "MAP-FILES-LISTED"
for m in /proc/1/map_files/*; do [ -e "$m" ] && try "$m"; done 2>/dev/null
grep -c . /proc/1/maps 2>/dev/null && echo "MAPS-READABLE"
echo end
"""


def test_created_init_exe_and_libpython_unwritable(oci):
    files = _runtime_files()
    before = _digest(files)
    oci.write(oci.config(args=("true",)))
    oci("create", "-b", oci.bundle, "c1", check=True)
    init = oci.state("c1")["pid"]
    st, want = os.stat(f"/proc/{init}/exe"), os.stat(files[0])
    assert (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino)  # pid 1 really is our interpreter
    proc = oci("exec", "c1", "sh", "-c", ATTACK)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.endswith("end\n"), out
    for word in ("WRITABLE", "EXE-LINK-READABLE", "EXE-OPENED", "MAP-FILES-LISTED", "MAPS-READABLE"):
        assert word not in out, out
    assert _digest(files) == before


def test_created_init_exe_unreachable_without_ptrace(oci):
    """What the test above rests on, checked from the host: without CAP_SYS_PTRACE (which a
    container process lacks) even uid 0 cannot follow the created init's /proc/<pid>/exe.  Two
    kernel checks refuse it, each sufficient: the init is non-dumpable, and its permitted set is
    not a subset of the caller's (commoncap's ptrace rule)."""
    oci.write(oci.config(args=("true",)))
    oci("create", "-b", oci.bundle, "c1", check=True)
    init = oci.state("c1")["pid"]
    pid = os.fork()
    if pid == 0:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
            data = (ctypes.c_uint32 * 6)()
            libc.capget(hdr, data)
            data[0] &= ~(1 << 19)  # CAP_SYS_PTRACE out of the effective set
            if libc.capset(hdr, data) != 0:
                os._exit(2)
            try:
                os.readlink(f"/proc/{init}/exe")
                os._exit(1)
            except PermissionError:
                os._exit(0)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the created init's /proc/<pid>/exe is reachable: dumpable"


def test_init_runs_from_a_read_only_interpreter(oci):
    """Defence in depth for the `#!/proc/self/exe` variant of CVE-2019-5736: a process that gets the
    runtime's exe (a script run by `exec` whose interpreter is /proc/self/exe) reopens it for
    writing once the runtime exits.  That reopen must hit a read-only mount or a sealed file, not
    the host's interpreter on a writable filesystem (text-busy only holds while some python runs)."""
    oci.write(oci.config(args=("true",)))
    oci("create", "-b", oci.bundle, "c1", check=True)
    init = oci.state("c1")["pid"]
    fd = os.open(f"/proc/{init}/exe", os.O_PATH)
    try:
        flags = os.statvfs(f"/proc/self/fd/{fd}").f_flag
        sealed = False
        try:
            import fcntl

            rfd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
            try:
                sealed = bool(fcntl.fcntl(rfd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE)
            finally:
                os.close(rfd)
        except OSError:
            pass
        assert flags & ST_RDONLY or sealed, "the init's /proc/<pid>/exe is the host interpreter on a rw mount"
    finally:
        os.close(fd)
