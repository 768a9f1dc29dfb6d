"""Run OCI lifecycle hooks: state JSON on stdin, the hook's own argv/env, a timeout.

The *failure policy* differs per phase (runtime.md lifecycle): prestart,
createRuntime, createContainer, startContainer and poststart failures are
errors; poststop failures are warnings.  Callers choose; this module only runs
one phase and says what failed.
"""
from __future__ import annotations

import json

from .errors import HookError

#: ocirun.plan.Hook is named for the annotations only, never imported (the create stage imports this
#: module, and `start`/`delete` with hooks need no plan): as typing.TYPE_CHECKING, without typing's ≈10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .plan import Hook


def run_phase(phase: str, hooks: list[Hook], state: dict, cwd: str | None = None) -> None:
    """Run every hook of ``phase`` in order; raise HookError on the first failure."""
    if not hooks:
        return
    payload = json.dumps(state).encode()
    for i, hook in enumerate(hooks):
        run_hook(phase, i, hook, payload, cwd)


def run_hook(phase: str, index: int, hook: Hook, payload: bytes, cwd: str | None = None) -> None:
    """Run one hook; a failure reads as runc's (``error running hook #N: ...``, which runc's tests and
    users' scripts match), with the phase added so the reader knows which list it came from."""
    import subprocess

    argv = hook.args or [hook.path]
    where = f"error running hook #{index} ({phase})"
    try:
        proc = subprocess.Popen(argv, executable=hook.path, env=_env(hook.env), cwd=cwd,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                close_fds=True, restore_signals=True, preexec_fn=_unblock_signals())
    except OSError as e:
        raise HookError(f"{where}: fork/exec {hook.path}: {e.strerror}") from None
    try:
        out, err = proc.communicate(payload, timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise HookError(f"{where}: hook ran past specified timeout of {hook.timeout:.1f}s") from None
    except BrokenPipeError:  # the hook exited without reading its stdin
        out = proc.stdout.read() if proc.stdout else b""
        err = proc.stderr.read() if proc.stderr else b""
        proc.wait()
    if proc.returncode != 0:
        raise HookError(f"{where}: error running hook: {_how(proc.returncode)}, "
                        f"stdout: {_text(out)}, stderr: {_text(err)}")


def _how(returncode: int) -> str:
    """Go's words for a child's end (os.ProcessState): ``exit status 1``, ``signal: bad system call``."""
    if returncode >= 0:
        return f"exit status {returncode}"
    import signal

    name = signal.strsignal(-returncode) or f"signal {-returncode}"
    return f"signal: {name[0].lower()}{name[1:]}"


def _text(data: bytes | None) -> str:
    """A hook's output on one line (the error is one line on stderr and in the log)."""
    return " ".join((data or b"").decode(errors="replace").split())


def _unblock_signals():
    """What the hook's child runs before exec when we hold signals blocked (the foreground `run`
    forwards them through a signalfd, ocirun.forward): a hook starts with none blocked, as it would
    under runc.  None (no preexec step, the faster spawn) when nothing is blocked."""
    import _signal

    if not _signal.pthread_sigmask(_signal.SIG_BLOCK, ()):
        return None
    return lambda: _signal.pthread_sigmask(_signal.SIG_SETMASK, ())


def _env(env: list[str] | None) -> dict[str, str] | None:
    """The hook's environment; None (inherit ours) when the config gave it none, as runc does."""
    if env is None:
        return None
    out = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out
