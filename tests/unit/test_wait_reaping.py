"""signals.wait_reaping: waiting for one child reaps the others (a subreaper's orphans), and the
caller's answer when there is no child left.  Run in a forked helper, so the waitpid(-1) calls
cannot reap a child of the test process."""
import json
import os
import time

from ocirun.signals import wait_reaping


def _in_child(scenario) -> dict:
    """Run ``scenario()`` in a forked process; return what it returned (a JSON object)."""
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
    os.waitpid(pid, 0)
    return json.loads(data)


def _two_children() -> dict:
    early = os.fork()
    if early == 0:
        os._exit(3)
    # `early` is a zombie before `late` exits (WNOWAIT: seen, not reaped), so waitpid(-1) meets it first.
    os.waitid(os.P_PID, early, os.WEXITED | os.WNOWAIT)
    late = os.fork()
    if late == 0:
        time.sleep(0.05)
        os._exit(7)
    status = wait_reaping(late, on_no_child=99)
    try:
        os.waitpid(early, os.WNOHANG)
        early_left = True
    except ChildProcessError:
        early_left = False
    return {"status": status, "early_left": early_left, "no_child": wait_reaping(late, on_no_child=99)}


def _killed() -> dict:
    pid = os.fork()
    if pid == 0:
        time.sleep(10)
        os._exit(0)
    os.kill(pid, 9)
    return {"status": wait_reaping(pid, on_no_child=255)}


def test_waiting_for_one_child_reaps_the_other():
    assert _in_child(_two_children) == {"status": 7, "early_left": False, "no_child": 99}


def test_a_killed_child_answers_128_plus_the_signal():
    assert _in_child(_killed) == {"status": 137}
