"""The foreground `run` and `exec` forward every signal they can catch to the container's process
(ocirun.forward), and whatever ends them, `run` deletes the container it created.

runc 1.1.5 (/usr/sbin/runc on the test host), the same bundle, each signal sent to `runc run` /
`runc exec` in turn: 1..31 are forwarded but SIGKILL, SIGSTOP, SIGCHLD (reaps), SIGPROF (its Go
runtime's) and SIGWINCH without a terminal (it only resizes a pty); real-time signals 35..64 are
forwarded; 33 is swallowed; 32 and 34 (SIGRTMIN) kill `runc run` itself and leave the container
running — the bug this fixes in ocirun, which forwarded 9 signals and died on the others (first on
SIGILL).  ocirun forwards 1..31 but KILL, STOP and CHLD, and 34..64 (SIGPROF too: no Go runtime
here; SIGWINCH too when there is no pty, as it did before); 32 and 33 are glibc's and cannot be
caught."""
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios

import pytest

from .conftest import OCIRUN

pytestmark = pytest.mark.root

C = f"sig{os.getpid()}"  # unique: parallel runs share the default cgroup path /ocirun/<id>
SIGRTMIN3 = 37
#: Every signal ocirun passes on, but SIGTERM (sent last: it ends the container's script).
FORWARDED = [s for s in range(1, 65) if s not in (9, 19, 17, 32, 33, 15)]
EXIT_ON_TERM = 42


def reporting_script(sigs) -> str:
    """sh that prints ``got N`` for each signal N it receives, and exits 42 on SIGTERM."""
    traps = "; ".join(f"trap 'echo got {s}' {s}" for s in sigs)
    return f"{traps}; trap 'echo got 15; exit {EXIT_ON_TERM}' 15; echo ready; while :; do sleep 0.05; done"


class Lines:
    """Lines a runtime's output fd carries, read while watching that the runtime is still alive."""

    def __init__(self, proc, fd):
        self.proc, self.fd, self.buf = proc, fd, b""

    def until(self, wanted: set) -> None:
        """Read until every line in ``wanted`` was seen; fail if the runtime exits first (or if nothing
        comes for a minute: a guard against hanging on a lost signal, not a measure)."""
        seen = set()
        quiet = 0
        while not wanted <= seen:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                seen.add(line.rstrip(b"\r").decode())
            if wanted <= seen:
                break
            assert self.proc.poll() is None, f"the runtime died ({self.proc.returncode}); missing: " \
                                             f"{sorted(wanted - seen)}"
            r, _, _ = select.select([self.fd], [], [], 0.2)  # 0.2: only to look at the runtime again
            quiet = 0 if r else quiet + 1
            assert quiet < 300, f"nothing for a minute; missing: {sorted(wanted - seen)}"
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # a pty whose slave is gone
                    data = b""
                assert data or self.proc.poll() is None, f"output ended; missing: {sorted(wanted - seen)}"
                self.buf += data


def _all_forwarded(proc, lines: Lines) -> int:
    lines.until({"ready"})
    # SIGCONT on its own: the kernel discards a pending SIGCONT when a stop signal (SIGTSTP, SIGTTIN,
    # SIGTTOU) is sent, and pending stop signals when SIGCONT is: sent together, one kind is lost.
    for batch in ([s for s in FORWARDED if s != signal.SIGCONT], [signal.SIGCONT]):
        for sig in batch:
            os.kill(proc.pid, sig)
        lines.until({f"got {s}" for s in batch})
    os.kill(proc.pid, signal.SIGTERM)
    lines.until({"got 15"})
    return proc.wait(timeout=30)


def _popen(argv):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _stop(p):
    if p.poll() is None:
        p.kill()
        p.wait()
    if p.stdout is not None:
        p.stdout.close()


def test_run_forwards_every_signal_and_deletes(oci):
    """SIGPWR, SIGRTMIN+3, SIGSEGV sent with kill, ... each reaches the container's init; `run` exits with
    its status and leaves no state.  Before: `ocirun run` died on SIGILL, its container left running."""
    oci.write(oci.config(args=("sh", "-c", reporting_script(FORWARDED))))
    p = _popen([OCIRUN, "--root", oci.root, "run", "--bundle", oci.bundle, C])
    try:
        assert _all_forwarded(p, Lines(p, p.stdout.fileno())) == EXIT_ON_TERM
    finally:
        _stop(p)
    assert oci.ids() == []


def test_exec_forwards_every_signal(oci):
    """The same for the foreground `exec`: the exec'd process gets them, exec exits with its status."""
    oci.write(oci.config(args=("sleep", "1000")))
    oci("run", "-d", "--bundle", oci.bundle, C, check=True)
    p = _popen([OCIRUN, "--root", oci.root, "exec", C, "sh", "-c", reporting_script(FORWARDED)])
    try:
        assert _all_forwarded(p, Lines(p, p.stdout.fileno())) == EXIT_ON_TERM
    finally:
        _stop(p)
    assert oci.state(C)["status"] == "running"


@pytest.mark.parametrize("sig", [signal.SIGPWR, SIGRTMIN3, signal.SIGINT])
def test_signal_during_create_is_kept_for_the_container(oci, sig):
    """A signal `run` receives while it creates the container (here sent by a createRuntime hook, a
    child of `ocirun run`) neither kills `run` nor is lost: it reaches the process once it runs.
    The container has no pid namespace, so the default action applies: its `sleep` dies of it, and
    `run` exits 128+N and deletes it.  Before: `run` died of SIGPWR / SIGRTMIN+3 mid-create (-30, -37),
    leaving a created container behind.  (SIGINT passed before too: Python's KeyboardInterrupt ended
    the create with 130; it stays 130, now the container's status.)"""
    spec = oci.config(args=("sleep", "1000"))
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "pid"]
    spec["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"kill -{int(sig)} $PPID"]}]}
    oci.write(spec)
    r = oci("run", "--bundle", oci.bundle, C)
    assert r.returncode == 128 + sig, r.stderr
    assert oci.ids() == []


def test_hooks_start_with_no_signal_blocked(oci, tmp_path):
    """`run` holds signals blocked while it works (to forward them); the hooks it starts meanwhile must
    not inherit that mask (runc's hooks start with none blocked)."""
    out = tmp_path / "sigblk"
    spec = oci.config(args=("true",))
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"grep SigBlk /proc/self/status >> {out}"]}
    spec["hooks"] = {"createRuntime": [hook], "poststart": [hook], "poststop": [hook]}
    oci.write(spec)
    assert oci("run", "--bundle", oci.bundle, C).returncode == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and all(line.split()[1] == "0" * 16 for line in lines), lines


def test_run_with_terminal_forwards_and_resizes(oci):
    """With process.terminal (the pty bridged by ocirun.tty): SIGPWR and SIGRTMIN+3 are forwarded, and
    SIGWINCH resizes the container's terminal to the caller's (the kernel then signals its process)."""
    script = ("trap 'echo got 30' PWR; trap 'echo got 37' 37; trap 'echo size $(stty size)' WINCH; "
              f"trap 'exit {EXIT_ON_TERM}' TERM; echo ready; while :; do sleep 0.05; done")
    spec = oci.config(args=("sh", "-c", script))
    spec["process"]["terminal"] = True
    oci.write(spec)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    p = subprocess.Popen([OCIRUN, "--root", oci.root, "run", "--bundle", oci.bundle, C],
                         stdin=slave, stdout=slave, stderr=slave)
    try:
        lines = Lines(p, master)
        lines.until({"ready"})
        os.kill(p.pid, signal.SIGPWR)
        os.kill(p.pid, SIGRTMIN3)
        lines.until({"got 30", "got 37"})
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(p.pid, signal.SIGWINCH)
        lines.until({"size 40 120"})
        os.kill(p.pid, signal.SIGTERM)
        assert p.wait(timeout=30) == EXIT_ON_TERM
    finally:
        _stop(p)
        os.close(master)
        os.close(slave)
    assert oci.ids() == []


_REAPER = """
import os, subprocess, sys
from ocirun.kernel import linux as k
k.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
rc = subprocess.run(sys.argv[1:]).returncode
reaped = []
while True:
    try:
        pid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    reaped.append(os.waitstatus_to_exitcode(status))
print(rc, reaped)
"""


def test_run_no_subreaper_leaves_the_init_to_the_callers_reaper(oci):
    """`run --no-subreaper` (runc's flag, for a caller that reaps, like a shim): the container's init is
    re-parented to the caller's subreaper, not to `run`, which still exits with its status (read from the
    zombie before the caller reaps it).  Before: the flag was refused ("flag provided but not defined")."""
    import sys

    oci.write(oci.config(args=("sh", "-c", "sleep 0.3; exit 7")))
    out = subprocess.run([sys.executable, "-c", _REAPER, OCIRUN, "--root", oci.root, "run", "--no-subreaper",
                          "--bundle", oci.bundle, C], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.split("\n")[0] == "7 [7]", out.stderr   # run's status; the wrapper reaped the init
    assert oci.ids() == []
