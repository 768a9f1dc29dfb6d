"""ocirun.forward.Forwarder without a container: signals received before the target is named are
held (and do not end us), then forwarded; a SIGPIPE we cause ourselves is not forwarded;
close() gives the signals back without dying of one still pending.  Run in a forked helper: the
Forwarder blocks signals in the whole process."""
import json
import os
import signal

from ocirun.forward import Forwarder

SIGRTMIN3 = 37


def _in_child(scenario) -> dict:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = json.dumps(scenario()).encode()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            out = json.dumps({"error": repr(e)}).encode()
        os.write(w, out)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    return {"helper": os.waitstatus_to_exitcode(status), **(json.loads(data) if data else {})}


EXPECTED = [signal.SIGPWR, SIGRTMIN3, signal.SIGUSR1, signal.SIGRTMAX]


def _receiver(report: int) -> None:
    """The 'container': write each signal it gets to ``report``; exit 7 once it has them all."""
    try:
        got = set()  # (Python runs a handler once for several deliveries of one signal: distinct ones)

        def on(sig, _frame):
            got.add(sig)
            os.write(report, bytes([sig]))
            if got >= set(EXPECTED):
                os._exit(7)

        for sig in set(EXPECTED) | {signal.SIGPIPE}:
            signal.signal(sig, on)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])  # inherited blocked from the Forwarder's process
        while True:
            signal.pause()
    finally:
        os._exit(1)


def _send(pid: int, sigs) -> None:
    """Signal ``pid`` from another process, as the caller of `ocirun run` does."""
    sender = os.fork()
    if sender == 0:
        for sig in sigs:
            os.kill(pid, sig)
        os._exit(0)
    os.waitpid(sender, 0)


def _scenario() -> dict:
    r, w = os.pipe()
    fwd = Forwarder()
    me = os.getpid()
    _send(me, EXPECTED)  # before there is a target: held
    pr, pw = os.pipe()
    os.close(pr)
    try:
        os.write(pw, b"x")  # SIGPIPE, raised by the kernel on our own write: ours, not forwarded
    except BrokenPipeError:
        pass
    os.close(pw)
    child = os.fork()
    if child == 0:
        os.close(r)
        _receiver(w)
    os.close(w)
    fwd.target(child)
    status = fwd.wait(on_no_child=99)
    got = list(os.read(r, 64))
    _send(me, [signal.SIGPWR])  # still pending at close: dropped, not the end of us
    fwd.close()
    return {"status": status, "got": got, "blocked_after": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
            "pwr": int(signal.getsignal(signal.SIGPWR))}


def test_held_then_forwarded_in_order_and_given_back():
    out = _in_child(_scenario)
    assert out.get("error") is None, out
    assert out["helper"] == 0
    assert out["status"] == 7
    assert sorted(out["got"]) == sorted(EXPECTED)
    assert signal.SIGPIPE not in out["got"]
    assert out["blocked_after"] == []
    assert out["pwr"] == int(signal.SIG_DFL)
