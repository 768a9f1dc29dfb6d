"""A failing hook reads as runc's failure (``error running hook #N: error running hook: <how>, stdout: ...,
stderr: ...``): runc's seccomp.bats and users' scripts match "error running hook"."""
import pytest

from ocirun.config import Hook
from ocirun.errors import HookError
from ocirun.hooks import run_hook


def _hook(*args, timeout=None):
    return Hook(path=args[0], args=list(args[1:]), env=None, timeout=timeout)


def test_exit_status_and_both_outputs():
    with pytest.raises(HookError) as e:
        run_hook("prestart", 1, _hook("/bin/sh", "sh", "-c", "echo out; echo err >&2; exit 3"), b"{}")
    assert str(e.value) == "error running hook #1 (prestart): error running hook: exit status 3, stdout: out, stderr: err"


def test_a_signal_is_named_as_go_names_it():
    with pytest.raises(HookError) as e:
        run_hook("startContainer", 0, _hook("/bin/sh", "sh", "-c", "kill -SYS $$"), b"")
    assert str(e.value) == ("error running hook #0 (startContainer): error running hook: signal: bad system call, "
                            "stdout: , stderr: ")


def test_a_missing_program_and_a_timeout():
    with pytest.raises(HookError, match=r"^error running hook #0 \(poststart\): fork/exec /no/such: No such file"):
        run_hook("poststart", 0, _hook("/no/such"), b"")
    with pytest.raises(HookError, match=r"^error running hook #2 \(createRuntime\): hook ran past specified timeout of 1\.0s$"):
        run_hook("createRuntime", 2, _hook("/bin/sleep", "sleep", "5", timeout=1), b"")
