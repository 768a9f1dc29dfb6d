"""ocirun.stagefork without root: the verdict's cache and escape hatch, the thread check, the fd sweep."""
from __future__ import annotations

import threading

from ocirun import stagefork
from ocirun.kernel import linux as k


def test_no_fork_when_asked(monkeypatch):
    monkeypatch.setenv("OCIRUN_NO_FORK", "1")
    assert stagefork._check() == (False, "OCIRUN_NO_FORK is set")


def test_verdict_checked_every_time_and_its_reason_kept(monkeypatch):
    answers = iter([(True, "read-only"), (False, "now writable")])
    monkeypatch.setattr(stagefork, "_check", lambda: next(answers))
    assert stagefork.protection() == (True, "read-only") and stagefork.last_reason() == "read-only"
    assert stagefork.protection() == (False, "now writable") and stagefork.last_reason() == "now writable"


def test_single_threaded_sees_a_thread():
    assert stagefork.single_threaded()
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not stagefork.single_threaded()
    finally:
        stop.set()
        t.join()


def test_every_fd_but_the_kept_ones_is_closed(monkeypatch):
    ranges = []
    monkeypatch.setattr(k, "close_range", lambda first, last=0xFFFFFFFF, flags=0: ranges.append((first, last)))
    stagefork._close_all_but({0, 2, 3, 4, 9, 12})
    assert ranges == [(5, 8), (10, 11), (13, 0xFFFFFFFF)]
    ranges.clear()
    stagefork._close_all_but(set())
    assert ranges == [(3, 0xFFFFFFFF)]
