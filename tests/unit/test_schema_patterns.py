"""ocirun.schema's plain-Python pattern matchers give exactly re.search's verdict.

They exist so that `create` does not import ``re`` (≈3.5 ms with enum); a matcher that disagreed
with the regex would change what config.json ocirun accepts, so each one is checked on hand-picked
edge cases (Python's ``$`` before a final newline, leading zeros, empty identifiers) and on random
strings over the characters that matter to its pattern.
"""
import glob
import json
import os
import random
import re

import pytest

from ocirun import schema

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "spec")

EDGE = [
    "", "\n", "\n\n", "/", "/\n", "//", "/a", "a/", "a/\n", ".", "..", "...", ".\n", "..\n", "...\n", ".a",
    "a", "a\n", "a\nb", "\na", "MB:", "MB", "mb:", "MB:0=1", "rwm", "rw\n", "rwx", "r\nw", "CAP_", "CAP_\n",
    "CAP_SYS_ADMIN", "CAP_SYS_ADMIN\n", "CAP_sys", "cap_X", "CAP_X\n\n", "2MB", "1GB\n", "0MB", "10KB", "1TB",
    "1MB ", "21MB", "1.0.0", "1.0.0\n", "1.0.0\n\n", "1.2.3-rc.1+b.2", "1.2", "1.02.0", "1.0.00", "1.10.0",
    "2.0.0", "1.0.0-", "1.0.0+", "1.0.0-a..b", "1.0.0-a.", "1.0.0-.a", "1.0.0+a.b-c", "1.0.0-a+b+c",
    "1.0.0-α", "1.3.0-rc.2", " 1.0.0", "1.0.0 ", "1.0.0-x-y.z", "1.0.0+-", "1.0.0-+", "１.0.0", "1.0.٣",
]
ALPHABETS = "/.\nabMB:rwmCAP_SYZ0123456789KG-+ α٣"


def spec_patterns():
    found = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and isinstance(value, str):
                    found.add(value)
                if key == "patternProperties":
                    found.update(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in glob.glob(os.path.join(SPEC, "*.json")):
        with open(path) as f:
            walk(json.load(f))
    return found


def test_every_matcher_is_a_pattern_of_spec():
    """A matcher for a pattern spec/ no longer uses would be dead code (and untested by fixtures)."""
    assert set(schema._MATCHERS) <= spec_patterns()


@pytest.mark.parametrize("pattern", sorted(schema._MATCHERS))
def test_matcher_agrees_with_re(pattern):
    regex = re.compile(pattern)
    fast = schema._MATCHERS[pattern]
    rng = random.Random(hash(pattern) & 0xFFFF)
    samples = list(EDGE)
    for _ in range(20000):
        n = rng.randint(0, 9)
        samples.append("".join(rng.choice(ALPHABETS) for _ in range(n)))
    # mutations of strings the pattern accepts, where the interesting boundaries are
    for base in [s for s in EDGE if regex.search(s)]:
        for _ in range(200):
            chars = list(base)
            for _ in range(rng.randint(1, 2)):
                op = rng.randrange(3)
                pos = rng.randint(0, len(chars))
                if op == 0:
                    chars.insert(pos, rng.choice(ALPHABETS))
                elif chars and op == 1:
                    del chars[min(pos, len(chars) - 1)]
                elif chars:
                    chars[min(pos, len(chars) - 1)] = rng.choice(ALPHABETS)
            samples.append("".join(chars))
    wrong = [s for s in samples if fast(s) != (regex.search(s) is not None)]
    assert not wrong, f"{pattern!r} disagrees with re on {wrong[:5]!r}"
    assert any(fast(s) for s in samples) and not all(fast(s) for s in samples)


def test_search_uses_the_matcher_not_re(monkeypatch):
    """A common pattern never reaches re.compile (the point of the matchers)."""
    monkeypatch.setattr(schema, "_patterns", {})
    assert schema._search("^CAP_[A-Z0-9_]+$", "CAP_CHOWN")
    assert not schema._search("^/", "relative")
    assert schema._patterns == {}
    assert schema._search("^\\s*([0-9]+(-[0-9]+)?(\\s*,\\s*[0-9]+(-[0-9]+)?)*)?\\s*$", "0-3, 5")
    assert len(schema._patterns) == 1  # the others still go through re
