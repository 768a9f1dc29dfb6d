"""Process privileges: rlimits, user and groups, the five capability sets, no_new_privs.

Applied by the init stage in the order that keeps each step possible: the
bounding set is dropped while we still hold CAP_SETPCAP, the uid changes with
KEEPCAPS so the permitted set survives, then the final sets are installed and
the ambient ones raised.  Capabilities go through capset(2) and prctl(2) in the kernel
seam (ocirun.kernel): python-prctl, once a dependency, cannot name capabilities ≥ 40 nor
touch the ambient set.
"""
from __future__ import annotations

import errno
import os
import stat

from .kernel import files, identity
from .kernel import linux as k
from .plan import RLIMIT_NAMES, Process, cap_names


#: podman's ``--group-add keep-groups``: the process keeps the supplementary groups of whoever ran the
#: runtime (crun's semantics: setgroups(2) is skipped altogether, ``additionalGids`` included).
KEEP_GROUPS_ANNOTATION = "run.oci.keep_original_groups"


def keeps_original_groups(annotations: dict | None) -> bool:
    """crun acts on the annotation's presence; an explicit "0"/"false" is read as off."""
    value = (annotations or {}).get(KEEP_GROUPS_ANNOTATION)
    return value is not None and value.strip().lower() not in ("0", "false")


def setgroups_policy(process: Process, opts: dict) -> bool:
    """Whether setgroups(2) is called for the process (the init stage's and exec's ``options``).

    ``keep_groups`` (the annotation): never, and ``additionalGids`` is dropped, so the process
    keeps the groups it inherited from the runtime's caller.  ``setgroups`` False: the user
    namespace denies it (rootless), and asking for groups there is refused by :func:`preflight`.
    """
    if opts.get("keep_groups"):
        process.user.additionalGids = []
        return False
    return opts.get("setgroups", True)


def apply_rlimits(rlimits: list[tuple[int, int, int]]) -> None:
    """The launch plan's (resource, soft, hard) triples (ocirun.plan.ProcessPlan.rlimits)."""
    for resource, soft, hard in rlimits:
        try:
            k.setrlimit(resource, soft, hard)
        except OSError as e:
            raise OSError(e.errno, f"setrlimit {RLIMIT_NAMES[resource]} soft={soft} hard={hard}: {e.strerror}") \
                from None


def check_caps(masks: dict[str, int]) -> None:
    """Refuse at `create` the capabilities that capset(2) will refuse after `start`.

    The sets are applied after `start` (see :func:`become_process`), but capset can only keep
    what the runtime holds in its permitted set: asking for more (``docker run --privileged``
    when the caller lacks CAP_SYS_RESOURCE) would otherwise fail in `start`, after the engine
    has recorded a created container.  runc applies the caps before its exec fifo, so engines
    read this error from `create`; we check it there too, with runc's wording.
    """
    _effective, held, _inheritable = k.capget()
    missing = (masks["permitted"] | masks["effective"]) & ~held
    if missing:
        names = cap_names(missing)
        raise OSError(1, "unable to apply caps: operation not permitted "
                         f"(process.capabilities: the runtime does not hold {', '.join(names)})")


def drop_bounding(bounding: int, last_cap: int) -> None:
    for cap in range(last_cap + 1):
        if not bounding & (1 << cap):
            try:
                k.prctl(k.PR_CAPBSET_DROP, cap)
            except OSError as e:
                if e.errno != 22:  # EINVAL: cap unknown to this kernel
                    raise


def set_user(process: Process, setgroups_allowed: bool = True) -> None:
    """Switch to the configured uid/gid and supplementary groups, keeping capabilities."""
    u = process.user
    k.prctl(k.PR_SET_KEEPCAPS, 1)
    if setgroups_allowed:
        identity.setgroups(list(dict.fromkeys(u.additionalGids)))
    identity.setresgid(u.gid, u.gid, u.gid)
    identity.setresuid(u.uid, u.uid, u.uid)
    k.prctl(k.PR_SET_KEEPCAPS, 0)
    if u.umask is not None:
        os.umask(u.umask)
    else:
        os.umask(0o022)


def apply_caps(masks: dict[str, int], last_cap: int) -> None:
    k.capset(masks["effective"], masks["permitted"], masks["inheritable"])
    k.prctl(k.PR_CAP_AMBIENT, k.PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(last_cap + 1):
        if masks["ambient"] & (1 << cap):
            try:
                k.prctl(k.PR_CAP_AMBIENT, k.PR_CAP_AMBIENT_RAISE, cap)
            except OSError:
                # Ambient needs the cap in permitted and inheritable; the spec makes this a warning.
                pass


def become_process(process: Process, masks: dict[str, int], last_cap: int, setgroups_allowed: bool,
                   chdir=os.chdir) -> None:
    """The privilege switch shared by the container's init and `exec`, in the only order that works:
    cwd (as root, see :func:`enter_cwd_as_runtime`) → bounding set (needs CAP_SETPCAP) → stdio pipes
    to the user (:func:`hand_stdio_to`, needs CAP_CHOWN) → user with KEEPCAPS → cwd (as the user, when root was refused) → capability sets and ambient → no_new_privs
    → CPU affinity.  Seccomp is the caller's: where it goes depends on NNP;
    so are the scheduler and I/O priority (:func:`apply_priorities`), set before any of this."""
    entered = enter_cwd_as_runtime(process.cwd, chdir)
    drop_bounding(masks["bounding"], last_cap)
    hand_stdio_to(process.user.uid)
    set_user(process, setgroups_allowed=setgroups_allowed)
    if not entered:
        chdir(process.cwd)
    apply_caps(masks, last_cap)
    if process.noNewPrivileges:
        no_new_privs()
    if process.execCPUAffinity:
        from .sched import apply_cpu_affinity

        apply_cpu_affinity(process)


def apply_priorities(process: Process) -> None:
    """process.scheduler and process.ioPriority, while every capability is still held: a negative
    nice, a real-time policy or IOPRIO_CLASS_RT need CAP_SYS_NICE/CAP_SYS_ADMIN, which the process
    itself may not get (runc sets both before seccomp and the capability sets, too).  Callers run
    this before loading a filter without NNP (which could forbid these calls) and before
    :func:`become_process`."""
    if process.scheduler or process.ioPriority:
        from .sched import apply_priorities as apply

        apply(process)


#: fchown errors that leave a stdio fd as it is, as runc's fixStdioPermissions: the owner or the
#: new uid is not mapped in the container's user namespace (EPERM, EINVAL), a read-only mount (EROFS).
_CHOWN_SKIPPED = (errno.EPERM, errno.EINVAL, errno.EROFS)


def hand_stdio_to(uid: int) -> None:
    """Give the process's user the stdio pipes it inherits, so that it may reopen them
    (``/proc/self/fd/1``, ``/dev/stdout``: a pipe is mode 0600, owned by whoever made it).

    runc's fixStdioPermissions chowns fds 0-2 whatever they are, except /dev/null.  Here only
    anonymous pipes (on pipefs) are changed: they exist for this process's I/O and are owned by
    nothing else.  Everything else is left alone: a regular file or named FIFO (a host file; runc
    would give `ocirun run > /var/log/x` to uid 1000 of the host when there is no user namespace),
    a character device (the host's /dev/null, or the caller's own terminal when there is no
    process.terminal), a socket (fchown on a socket also changes the owner the kernel uses for
    uid-based routing and netfilter owner matching of the caller's socket).  The container's own
    pty is handed over by :func:`ocirun.terminal.setup_console`.  The group is kept (runc: the
    mount may prefer another gid)."""
    import stat

    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
            if not stat.S_ISFIFO(st.st_mode) or st.st_uid == uid or k.fstatfs(fd)[0] != k.PIPEFS_MAGIC:
                continue
            files.fchown(fd, uid, -1)
        except OSError as e:
            if e.errno != errno.EBADF and e.errno not in _CHOWN_SKIPPED:
                raise OSError(e.errno, f"chown stdio fd {fd} to uid {uid}: {e.strerror}") from None


def enter_cwd_as_runtime(cwd: str, chdir=os.chdir) -> bool:
    """chdir to the process's cwd before switching user, as runc's finalizeNamespace does: True when
    that worked, False when it was refused for permissions (EACCES/EPERM: a directory only the
    process's user may enter, e.g. root squashed on NFS; the caller retries after the switch).
    Any other error fails.  So a cwd that only root may enter (a 0700 volume) works for a
    process of another user, as with runc; the user then holds a cwd it could not enter itself."""
    try:
        chdir(cwd)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            return False
        raise
    return True


def no_new_privs() -> None:
    k.prctl(k.PR_SET_NO_NEW_PRIVS, 1)


def preflight(process: Process, setgroups_allowed: bool = True) -> str:
    """As the target user (effective ids only, so we can come back): chdir to cwd and find the program.

    Returns the program's path; raises OSError/ExecError worded for the user.
    """
    u = process.user
    if not setgroups_allowed and u.additionalGids:
        # A rootless user namespace with setgroups denied: the groups cannot be set, and
        # silently running without them would be wrong (runc's refusal and wording).
        raise OSError(1, "cannot set any additional groups in a rootless container "
                         "(process.user.additionalGids; map a gid range with newgidmap to allow them)")
    switch = u.uid != 0 or u.gid != 0
    # cwd as root first, then as the user when root is refused: what become_process will do.
    entered = switch and enter_cwd_as_runtime(process.cwd, _chdir_worded)
    if switch:
        if setgroups_allowed:
            identity.setgroups(list(dict.fromkeys(u.additionalGids)))
        identity.setegid(u.gid)
        identity.seteuid(u.uid)
    try:
        if not entered:
            _chdir_worded(process.cwd)
        try:
            os.getcwd()  # fails when the cwd lies outside our root (a leaked host directory)
        except OSError:
            raise OSError(1, f"cwd {process.cwd!r} is outside the container: possible container breakout detected") \
                from None
        return lookup_exec(process.args[0], process.env, process.cwd)
    finally:
        if switch:
            identity.seteuid(0)
            identity.setegid(0)


def _chdir_worded(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as e:
        raise OSError(e.errno, f"chdir to cwd ({cwd!r}) set in config.json failed: {e.strerror}") from None


def lookup_exec(args0: str, env: list[str], cwd: str) -> str:
    """Find the program as execvp would, with runc's error wording (podman maps it to 126/127)."""
    if "/" in args0:
        path = args0 if os.path.isabs(args0) else os.path.join(cwd, args0)
        _check_exec(args0, path)
        return path
    search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for e in env:
        if e.startswith("PATH="):
            search = e[5:]
    denied = None
    for d in search.split(":"):
        cand = os.path.join(d or ".", args0)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            if os.access(cand, os.X_OK, effective_ids=True):
                return cand
            denied = cand
    if denied:
        raise ExecError(f'exec: "{args0}": permission denied')
    raise ExecError(f'exec: "{args0}": executable file not found in $PATH')


def _check_exec(name: str, path: str) -> None:
    """Go's exec.LookPath on a path, as runc words it: a directory is "permission denied" too."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ExecError(f'exec: "{name}": stat {path}: {e.strerror.lower()}') from None
    if stat.S_ISDIR(st.st_mode) or not os.access(path, os.X_OK, effective_ids=True):
        raise ExecError(f'exec: "{name}": permission denied')


class ExecError(Exception):
    """The user program cannot be executed (worded as runc words it)."""


#: /etc/passwd is read at most this far (a container's file, read by the runtime's stage)
PASSWD_MAX = 1 << 20


def env_with_home(process: Process) -> list[str]:
    """The process env, with HOME from the container's /etc/passwd entry for its uid when the env has
    none, else ``/`` (runc does this for create and exec alike).

    The file is the container's: opened without following a FIFO into a hang (O_NONBLOCK, regular files
    only) and read to a bound."""
    env = list(process.env)
    if any(e.startswith("HOME=") for e in env):
        return env
    home = "/"
    try:
        fd = os.open("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        fd = None
    if fd is not None:
        try:
            data = os.read(fd, PASSWD_MAX) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
        except OSError:
            data = b""
        finally:
            os.close(fd)
        for line in data.decode(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) >= 6 and parts[2] == str(process.user.uid) and parts[5]:
                home = parts[5]
                break
    env.append(f"HOME={home}")
    return env
