"""Shared test configuration: the `root` marker skips real-kernel tests for non-root users."""
import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (real containers)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
