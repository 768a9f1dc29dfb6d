"""Running a command from a test with its output captured through files, not pipes.

A created container inherits the runtime's stdio (as with runc), and an engine's monitor (conmon, a
shim) keeps it too: with pipes, ``subprocess.run`` would wait for EOF until the container exits.
Temporary files have no such reader to wait for.
"""
from __future__ import annotations

import subprocess
import tempfile


def run_to_files(argv: list[str], *, timeout: float, **kw) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, text=True, **kw)`` with ``.stdout`` and ``.stderr`` read back from files."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(argv, stdout=out, stderr=err, text=True, timeout=timeout, **kw)
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    return proc
