"""Resolve paths inside the container's rootfs without ever leaving it.

Every mount destination, device node and masked path is looked up with
openat2(RESOLVE_IN_ROOT): symlinks in the image are followed *as if the rootfs
were /*, so ``/etc -> /host`` or ``../../..`` cannot reach the host
(CVE-2019-16884, CVE-2021-30465 class).  Callers then act on the returned O_PATH
fd through ``/proc/self/fd/N``, so swapping a directory for a symlink between
the lookup and the mount changes nothing: the mount lands on the inode we
checked.
"""
from __future__ import annotations

import errno
import os
import stat

from .kernel import linux as k

O_PATH = getattr(os, "O_PATH", 0o10000000)


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def open_in_root(rootfd: int, path: str, flags: int = O_PATH, mode: int = 0) -> int:
    """openat2 ``path`` (absolute or relative, read as relative to the rootfs) with RESOLVE_IN_ROOT."""
    rel = path.lstrip("/") or "."
    return k.openat2(rootfd, rel, flags, mode, k.RESOLVE_IN_ROOT | k.RESOLVE_NO_MAGICLINKS)


_IN_ROOT = k.RESOLVE_IN_ROOT | k.RESOLVE_NO_MAGICLINKS


def _parts(path: str) -> list[str]:
    """Lexically normalised components; ``..`` clamps at the root exactly like RESOLVE_IN_ROOT."""
    return [p for p in os.path.normpath("/" + path).split("/") if p]


MAX_SYMLINKS = 40


def mkdirall_in_root(rootfd: int, path: str, mode: int = 0o755) -> int:
    """Create every missing directory of ``path`` inside the rootfs; return an O_PATH fd of it.

    Symlinks on the way are followed *as if the rootfs were /* (also dangling ones,
    whose target is then created inside the rootfs, as runc's securejoin does).
    Every directory is reached by openat2(RESOLVE_IN_ROOT) from the rootfs fd, so
    nothing here can step outside it.
    """
    todo = _parts(path)
    done: list[str] = []
    links = 0
    while todo:
        comp = todo.pop(0)
        if comp == "..":
            done = done[:-1]
            continue
        parent = k.openat2(rootfd, "/".join(done) or ".", O_PATH | os.O_DIRECTORY, 0, _IN_ROOT)
        try:
            try:
                st = os.stat(comp, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                try:
                    os.mkdir(comp, mode, dir_fd=parent)
                except FileExistsError:
                    pass  # created meanwhile: looked at again on the next round
                todo.insert(0, comp)
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                target = os.readlink(comp, dir_fd=parent)
                if target.startswith("/"):
                    done = []
                todo = [p for p in target.split("/") if p and p != "."] + todo
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", "/" + "/".join(done + [comp]))
            done.append(comp)
        finally:
            os.close(parent)
    return k.openat2(rootfd, "/".join(done) or ".", O_PATH | os.O_DIRECTORY, 0, _IN_ROOT)


def resolve_in_root(root: str, path: str) -> str:
    """The absolute path, inside the rootfs ``root`` (a host directory), that ``path`` resolves to
    when its symlinks are followed *as if the rootfs were /*, as create resolved the mount
    destination; components that do not exist are kept as written (runc's securejoin).

    What CRIU knows a bind mount by: a destination ``/conf`` that is a symlink to ``/real/conf`` in the
    image was mounted on ``/real/conf``, and that is the mount point in the container's mount table.
    Pure path work on the host's view of the image (lstat, readlink): nothing is opened or made."""
    todo = _parts(path)
    done: list[str] = []
    links = 0
    while todo:
        comp = todo.pop(0)
        if comp in ("", "."):
            continue
        if comp == "..":
            done = done[:-1]
            continue
        try:
            st = os.lstat(os.path.join(root, *done, comp))
        except (FileNotFoundError, NotADirectoryError):
            done.append(comp)
            continue
        if not stat.S_ISLNK(st.st_mode):
            done.append(comp)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        target = os.readlink(os.path.join(root, *done, comp))
        if target.startswith("/"):
            done = []
        todo = target.split("/") + todo
    return "/" + "/".join(done)


def create_target(rootfd: int, path: str, is_dir: bool, mode: int = 0o755) -> int:
    """Make sure ``path`` exists in the rootfs as a directory or a file; return an O_PATH fd of it.

    A missing file is created with O_CREAT|O_EXCL|O_NOFOLLOW inside its resolved
    parent, so a symlink planted there is never followed out of the rootfs.  A dangling
    symlink in the last place is followed inside the rootfs and its target created (as
    runc's securejoin does for files as for directories).
    """
    links = 0
    while True:
        parts = _parts(path)
        if is_dir or not parts:
            return mkdirall_in_root(rootfd, path, mode)
        try:
            return k.openat2(rootfd, "/".join(parts), O_PATH, 0, _IN_ROOT)
        except FileNotFoundError:
            pass
        parent = "/".join(parts[:-1])
        pfd = mkdirall_in_root(rootfd, parent)
        try:
            try:
                fd = os.open(parts[-1], os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                             dir_fd=pfd)
                os.close(fd)
                continue
            except FileExistsError:
                pass
            try:
                target = os.readlink(parts[-1], dir_fd=pfd)
            except OSError:
                continue  # not a symlink (created meanwhile): opened on the next round
        finally:
            os.close(pfd)
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        path = target if target.startswith("/") else f"{parent}/{target}"


def is_dir_fd(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def readonly_exe(path: str) -> int:
    """An fd of ``path`` to execve from (``/proc/self/fd/N``), such that the new process's
    /proc/<pid>/exe cannot be reopened for writing (CVE-2019-5736).

    As root: a detached, read-only bind of the file alone (open_tree + mount_setattr: two
    syscalls, no copy), so a reopen hits EROFS.  Without the privilege for that: a sealed memfd
    copy of the file (the interpreter executable is small; libpython is not copied: it is mapped
    by the loader, and /proc/<pid>/map_files needs CAP_SYS_ADMIN in the initial namespace).
    """
    try:
        fd = k.open_tree(k.AT_FDCWD, path, k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC)
    except PermissionError:
        return _sealed_copy(path)
    try:
        k.mount_setattr(fd, "", k.AT_EMPTY_PATH, k.MOUNT_ATTR_RDONLY | k.MOUNT_ATTR_NOSUID | k.MOUNT_ATTR_NODEV)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _sealed_copy(path: str) -> int:
    import fcntl

    from .kernel.files import memfd_create

    fd = memfd_create("ocirun-interpreter", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        with open(path, "rb") as src:
            while chunk := src.read(1 << 20):
                os.write(fd, chunk)
        os.fchmod(fd, 0o555)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    except BaseException:
        os.close(fd)
        raise
    return fd
