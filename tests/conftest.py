"""Shared test configuration: the `root` marker skips real-kernel tests for non-root users, and the
host guard (tests/hostguard.py) fails a run that leaves the host different from how it found it."""
import os

import pytest

pytest_plugins = ("tests.hostguard",)


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (real containers)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
