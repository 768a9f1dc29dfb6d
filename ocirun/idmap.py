"""Idmapped mounts: a user namespace that carries a mount's uidMappings/gidMappings.

mount_setattr(MOUNT_ATTR_IDMAP) takes the mapping from a user namespace fd.  We
make a throwaway one: a child unshares CLONE_NEWUSER, we write its maps, keep
an fd to its namespace and let the child go.  The namespace lives on through
the fd and, once applied, through the mount.
"""
from __future__ import annotations

import os

from .kernel import linux as k


def userns_fd(uid_mappings: list[dict], gid_mappings: list[dict]) -> int:
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: make the namespace, say so, wait to be released
        try:
            os.close(ready_r)
            os.close(done_w)
            k.unshare(k.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError(1, "idmap: could not create a user namespace for the mount")
        for name, maps in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
            # The kernel maps an on-disk id *down* through the idmap (as an id inside the namespace
            # to one outside), so "files owned by hostID appear as containerID" is written
            # "hostID containerID size": the reverse of a container's own uid_map line.
            text = "".join(f"{m['hostID']} {m['containerID']} {m['size']}\n" for m in maps)
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            except OSError as e:
                raise OSError(e.errno, f"idmap: write {name} {text.strip()!r}: {e.strerror}") from None
            finally:
                os.close(fd)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)
