"""Fixtures shared by the unit tests."""
import pytest

from ocirun import sync


@pytest.fixture
def pair():
    """A connected sync socket pair: (the parent's end, the stage's end)."""
    a, b = sync.pair()
    yield a, b
    a.close()
    b.close()
