"""The edge of every command: an error becomes one line on stderr (and a record in the --log file).

Imported only when a command fails.  The wording is the library's (runc's, where engines match it);
this module adds the ``ocirun:`` prefix, Go's errno texts (ocirun.errors.go_errno_text) and, for an
OSError, its file name.
"""
from __future__ import annotations

import sys


def describe(e: Exception) -> str:
    """An exception that is not an OciError, as one line."""
    if isinstance(e, OSError):
        text = e.strerror or str(e)
        return f"{text}: {e.filename}" if e.filename and str(e.filename) not in text else text
    return f"{type(e).__name__}: {e}"


def fail(log, msg: str) -> int:
    """Print ``msg`` as the command's error (and log it); the exit status is 1, runc's."""
    from ..errors import go_errno_text

    msg = go_errno_text(msg)
    if log is not None:
        log.error(msg)
    sys.stderr.write(f"ocirun: {msg}\n")
    return 1
