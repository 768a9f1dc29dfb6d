"""Domain errors, worded at the edge the way runc words them.

Engines match runc's strings (podman turns ``exec: "/x": stat /x: no such file
or directory`` into exit 127, containerd looks for ``does not exist``), so the
messages that cross the CLI boundary keep runc's spelling.  Every error carries
one line of text, with the context (field, file, step) in front.

The hierarchy is also the Python API's (:mod:`ocirun.api`, docs/api.md)::

    OciError
    ├── UsageError
    ├── ConfigError  (alias InvalidConfig)
    ├── InvalidIdError
    ├── ContainerNotFound          .id
    ├── ContainerExists            .id
    ├── InvalidState
    │   └── NotRunning
    ├── InitError, HookError, CgroupError, SeccompError
    └── Timeout                    (ocirun.api: a process outlived its timeout)
"""
from __future__ import annotations


class OciError(Exception):
    """Base of every error ocirun reports to the user (one line, exit 1)."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(OciError):
    """Bad command line: wrong flags or arguments."""


class ConfigError(OciError):
    """config.json (or a process/resources JSON) is missing, malformed or invalid."""


#: The API's name for it: a config.json (or process JSON) that cannot be used.
InvalidConfig = ConfigError


class InvalidIdError(OciError):
    """A container id that breaks the id rules."""


class ContainerNotFound(OciError):
    def __init__(self, cid: str):
        super().__init__(f"container {cid} does not exist")
        self.id = cid


class ContainerExists(OciError):
    def __init__(self, cid: str):
        super().__init__(f"container with id exists: {cid}")
        self.id = cid


class InvalidState(OciError):
    """The operation is not allowed in the container's current status."""


class NotRunning(InvalidState):
    def __init__(self, what: str = "container not running"):
        super().__init__(what)


class InitError(OciError):
    """The init stage failed; the message comes from the child with its context."""


class HookError(OciError):
    """A lifecycle hook failed or timed out."""


class CgroupError(OciError):
    """A cgroup operation failed (names the file and the value)."""


class SeccompError(OciError):
    """The seccomp profile cannot be translated or loaded."""


class Timeout(OciError):
    """A process run through :mod:`ocirun.api` did not exit in time (it has been killed)."""


def go_errno_text(msg: str) -> str:
    """``msg`` with every C library error text lower-cased at its start, as Go spells errno texts.

    runc's messages come from Go's syscall.Errno ("open /x: no such file or directory"); ours from
    strerror(3) ("No such file or directory").  Scripts and engines match runc's spelling, so the CLI
    edge rewrites the texts it knows -- one place, instead of every `e.strerror` in the package."""
    import os

    for num in range(1, 134):
        text = os.strerror(num)
        if text[:1].isupper() and text in msg:
            msg = msg.replace(text, text[0].lower() + text[1:])
    return msg
