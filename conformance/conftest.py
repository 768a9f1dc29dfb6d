"""Fixtures and markers of the black-box conformance suite.

The runtime under test is chosen by ``OCI_RUNTIME`` (a path or a name; default ``ocirun``, i.e.
``.venv/bin/ocirun`` when it exists, else ``ocirun`` on PATH).  Each test gets its own bundle,
``--root`` and container id (``ocirun-test-…``, also used as the cgroup path), and a finalizer that
runs ``delete --force`` and removes any leftover cgroup or mount.

Markers:

``@pytest.mark.req(level, doc, section)``
    the spec requirement a test checks: level ``MUST``/``SHOULD``, the spec file and its section.
    The docstring quotes the requirement sentence.  ``conformance/make_table.py`` reads these.
``@pytest.mark.deviates(runtime, reason)``
    a known deviation of the reference runtime ``runtime`` (e.g. ``"runc"``) from the spec; the
    test is an expected failure (strict) only when that runtime is under test.
"""
from __future__ import annotations

import os

import pytest

try:  # conformance/ is a package once its __init__.py exists; work either way.
    from conformance import probe
except ImportError:  # pragma: no cover
    import probe

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME_NAME, RUNTIME_PATH = probe.resolve_runtime()
RUNTIME_KIND = probe.runtime_kind(RUNTIME_NAME)
#: the host guard of tests/hostguard.py, also when this suite runs alone
pytest_plugins = ("tests.hostguard",)


def pytest_configure(config):
    config.addinivalue_line("markers", "req(level, doc, section): spec requirement checked by the test")
    config.addinivalue_line("markers", "deviates(runtime, reason): known deviation of a reference runtime")


def pytest_report_header(config):
    return f"conformance runtime: {RUNTIME_NAME} ({RUNTIME_PATH or 'not found'})"


def _skip_reason() -> str | None:
    if RUNTIME_PATH is None:
        return f"runtime {RUNTIME_NAME!r} (OCI_RUNTIME) not found; conformance suite skipped"
    if os.geteuid() != 0:
        return "conformance suite needs root"
    try:
        probe_busybox()
    except FileNotFoundError as e:
        return str(e)
    return None


def probe_busybox():
    from ocirun.bundle import find_busybox

    return find_busybox()


def pytest_collection_modifyitems(config, items):
    mine = [it for it in items if str(it.fspath).startswith(HERE + os.sep)
            and os.path.basename(str(it.fspath)).startswith("test_")]
    reason = _skip_reason()
    for item in mine:
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
            continue
        for mark in item.iter_markers("deviates"):
            runtime = mark.args[0] if mark.args else mark.kwargs.get("runtime")
            why = mark.args[1] if len(mark.args) > 1 else mark.kwargs.get("reason", "")
            if runtime == RUNTIME_KIND:
                item.add_marker(pytest.mark.xfail(reason=f"{runtime} deviates: {why}", strict=True))


@pytest.fixture(scope="session")
def base_rootfs(tmp_path_factory):
    from ocirun.bundle import make_rootfs

    path = str(tmp_path_factory.mktemp("conformance-rootfs") / "rootfs")
    make_rootfs(path)
    return path


@pytest.fixture
def ctr(tmp_path, base_rootfs):
    """A fresh bundle (busybox rootfs, runc's default config, terminal off, /share bind) + cleanup."""
    c = probe.Container(RUNTIME_PATH, RUNTIME_KIND, tmp_path, base_rootfs)
    yield c
    c.cleanup()


@pytest.fixture
def kind():
    return RUNTIME_KIND


@pytest.fixture(name="probe", scope="session")
def probe_module():
    """The helper module (parsers, cgroup paths), for tests that do not import it themselves."""
    return probe
