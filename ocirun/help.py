"""`--help`, `-h`, `help [COMMAND]` and `--version`: the texts, laid out as runc (urfave/cli) lays them out.

Scripts and runc's own integration tests read these by position: line 1 of the global help is
``<name> - Open Container Initiative runtime``, line 1 of a command's help ``<name> <command> - ...``,
and the version is three lines (``<name> version X``, ``commit: ...``, ``spec: X.Y.Z``).  ``<name>`` is
the name the program was called by, so a launcher installed as ``runc`` answers as runc would.

Kept out of ocirun.cli: only a help or version request imports it.
"""
from __future__ import annotations

import os

#: command → (one-line summary, usage after the command name, longer description or "")
COMMAND_TEXT = {
    "checkpoint": ("save a running container's state with CRIU", "[command options] <container-id>",
                   "Saves the state of a running container with CRIU, so that `restore` can resume it."),
    "create": ("create a container", "[command options] <container-id>",
               "Creates a container from a bundle: a directory holding config.json and the root filesystem.\n"
               "The container waits in the created state until `start` runs its process."),
    "delete": ("remove a container and everything the runtime made for it", "[command options] <container-id>",
               "Removes a stopped container's cgroups, state and mounts (--force kills it first)."),
    "events": ("print OOM notices and resource usage of a container",
               "[command options] <container-id>", ""),
    "exec": ("run a new process inside a container",
             "[command options] <container-id> <command> [command options]  ||  -p process.json <container-id>",
             "Runs a new process in a running container's namespaces and cgroup."),
    "features": ("print what this runtime supports", "", "Prints, as JSON, what this runtime supports."),
    "inspect": ("show a container's isolation as the kernel holds it", "[command options] <container-id>", ""),
    "kill": ("send a signal (default: SIGTERM) to a container's init process",
             "[command options] <container-id> [signal]",
             "Signal 0 only checks that the container's init is alive."),
    "list": ("list the containers under the state root", "[command options]", ""),
    "pause": ("freeze every process of a container", "<container-id>", ""),
    "ps": ("list the processes of a container", "[command options] <container-id> [ps options]",
           ""),
    "restore": ("bring a checkpointed container back", "[command options] <container-id>", ""),
    "resume": ("thaw a paused container", "<container-id>", ""),
    "run": ("create a container and start it", "[command options] <container-id>",
            "Creates and starts a container; in the foreground it waits and exits with the container's status."),
    "spec": ("write a default config.json", "[command options]",
             "Writes a starter config.json (runc's defaults) into the bundle directory."),
    "start": ("run the process of a created container", "<container-id>", ""),
    "state": ("print a container's state as JSON", "<container-id>", ""),
    "update": ("change the resource limits of a running container", "[command options] <container-id>", ""),
    "validate": ("check a bundle's config.json and print every problem found", "[command options]",
                 "ocirun's own: jsonschema over ocirun's schemas, then the checks create makes.\n"
                 "create stops at the first problem; this lists them all."),
}

#: flag name → (value name or "" for a switch, description); shared by every command that has the flag
FLAG_TEXT = {
    "bundle": ("value", "path to the root of the bundle directory, defaults to the current directory"),
    "console-socket": ("value", "path to an AF_UNIX socket which receives the master end of the console's pty"),
    "pidfd-socket": ("value", "path to an AF_UNIX socket which receives a pidfd of the container's process"),
    "pid-file": ("value", "write the process id to this file"),
    "no-pivot": ("", "do not use pivot_root to jail the process inside rootfs (for a rootfs on a ramdisk); "
                     "weaker than pivot_root: the host's root stays beneath the container's, and a process "
                     "with CAP_SYS_ADMIN can unmount the container's root and reach it (docs/security.md)"),
    "no-new-keyring": ("", "keep the caller's session keyring"),
    "preserve-fds": ("value", "pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N "
                              "in total) (default: 0)"),
    "detach": ("", "return once the container has started"),
    "keep": ("", "do not delete the container after it exits"),
    "all": ("", "signal every process in the container's cgroup"),
    "force": ("", "kill the container first (SIGKILL) if it still runs"),
    "format": ("value", "select one of: table or json (default: \"table\")"),
    "quiet": ("", "print the ids only"),
    "rootless": ("", "write a config for a rootless container"),
    "resources": ("value", "path to a file with the resources to update, or - for stdin"),
    "interval": ("value", "time between two stats records (default: 5s)"),
    "stats": ("", "print one stats record and exit"),
    "cwd": ("value", "working directory of the new process"),
    "env": ("value", "add NAME=value to the process environment"),
    "tty": ("", "give the process a terminal"),
    "user": ("value", "user to run as: <uid>[:<gid>]"),
    "additional-gids": ("value", "supplementary group id (repeatable)"),
    "process": ("value", "path to a JSON process object"),
    "process-label": ("value", "SELinux label of the process"),
    "apparmor": ("value", "AppArmor profile of the process"),
    "no-new-privs": ("", "set no_new_privs for the process"),
    "cap": ("value", "add a capability to the process (repeatable)"),
    "cgroup": ("value", "join an existing sub-cgroup: [controller:]path"),
    "ignore-paused": ("", "run even if the container is paused"),
    "image-path": ("value", "directory for the checkpoint images"),
    "work-path": ("value", "directory for CRIU's logs and work files"),
    "leave-running": ("", "keep the container running after the checkpoint"),
    "tcp-established": ("", "checkpoint established TCP connections"),
    "ext-unix-sk": ("", "checkpoint external unix sockets"),
    "shell-job": ("", "allow a container attached to a terminal session"),
    "file-locks": ("", "checkpoint file locks"),
    "manage-cgroups-mode": ("value", "cgroups mode: soft, full, strict or ignore (default: soft)"),
    "no-subreaper": ("", "do not become a child subreaper of the container's processes (for a caller that reaps them)"),
    "parent-path": ("value", "images of a previous pre-dump, relative to --image-path"),
    "pre-dump": ("", "save the memory only and leave the container running (for a later dump)"),
    "page-server": ("value", "ADDRESS:PORT of a CRIU page server to send the pages to"),
    "status-fd": ("value", "with --lazy-pages: a \\0 is written to this fd once the pages can be fetched "
                           "(default: -1)"),
    "lazy-pages": ("", "restore memory pages lazily, on demand (userfaultfd)"),
    "empty-ns": ("value", "create this namespace empty instead of restoring it (network; repeatable)"),
    "auto-dedup": ("", "deduplicate the memory images as they are written or read"),
    "lsm-profile": ("value", "LSM profile of the restored process, TYPE:NAME"),
    "lsm-mount-context": ("value", "LSM mount context for the restored mounts"),
    "blkio-weight": ("value", "relative block IO weight, 10 to 1000"),
    "cpu-period": ("value", "CPU CFS period in microseconds"),
    "cpu-quota": ("value", "CPU CFS quota in microseconds per period"),
    "cpu-share": ("value", "relative CPU weight (shares)"),
    "cpu-rt-period": ("value", "realtime period in microseconds"),
    "cpu-rt-runtime": ("value", "realtime runtime in microseconds per period"),
    "cpuset-cpus": ("value", "CPUs the container may use (e.g. 0-2,5)"),
    "cpuset-mems": ("value", "memory nodes the container may use (e.g. 0-1)"),
    "kernel-memory": ("value", "kernel memory limit (ignored: removed from Linux)"),
    "kernel-memory-tcp": ("value", "kernel TCP buffer limit"),
    "memory": ("value", "memory limit in bytes (k, m, g suffixes allowed)"),
    "memory-reservation": ("value", "memory soft limit in bytes"),
    "memory-swap": ("value", "memory plus swap limit in bytes (-1: unlimited)"),
    "pids-limit": ("value", "maximum number of processes (-1: unlimited)"),
    "l3-cache-schema": ("value", "Intel RDT L3 cache schema"),
    "mem-bw-schema": ("value", "Intel RDT memory bandwidth schema"),
}

GLOBAL_TEXT = [
    ("--debug", "write debug records to the log"),
    ("--log value", "set the log file to write logs to (default is '/dev/stderr')"),
    ("--log-format value", "set the log format ('text' (default), or 'json') (default: \"text\")"),
    ("--root value", "root directory for storage of container state (this should be located in tmpfs) "
                     "(default: \"/run/ocirun\")"),
    ("--criu value", "path to the criu binary used for checkpoint and restore (default: \"criu\")"),
    ("--systemd-cgroup", "enable systemd cgroup support, expects cgroupsPath to be of form \"slice:prefix:name\""),
    ("--rootless value", "ignore cgroup permission errors ('true', 'false', or 'auto') (default: \"auto\")"),
    ("--help, -h", "print help"),
    ("--version, -v", "print the version"),
]


def program_name(argv0: str | None = None) -> str:
    """The name we were called by (``runc`` when installed under that name), ``ocirun`` otherwise."""
    import sys

    name = os.path.basename(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else ""))
    return name if name and not name.endswith(".py") and name not in ("-c", "__main__") else "ocirun"


def version_text(name: str) -> str:
    """runc's three lines: ``<name> version X``, ``commit: ...``, ``spec: X.Y.Z`` (then extras)."""
    import sys

    from . import SPEC_VERSION, __version__

    lines = [f"{name} version {__version__}", f"commit: {source_commit()}", f"spec: {SPEC_VERSION}",
             f"python: {sys.version.split()[0]}"]
    try:
        from .seccomp import libseccomp_version

        lines.append(f"libseccomp: {libseccomp_version()}")
    except Exception:  # no libseccomp on this host: the version lines above still hold
        pass
    return "\n".join(lines) + "\n"


def source_commit() -> str:
    """The git commit of the checkout ocirun runs from, read from .git without running git; else the
    release (an installed wheel has no checkout)."""
    from . import __version__

    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    git = os.path.join(top, ".git")
    try:
        if os.path.isfile(git):  # a worktree: "gitdir: PATH"
            with open(git) as f:
                git = f.read().split(":", 1)[1].strip()
        with open(os.path.join(git, "HEAD")) as f:
            head = f.read().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        for base in (git, _common_dir(git)):
            try:
                with open(os.path.join(base, ref)) as f:
                    return f.read().strip()
            except FileNotFoundError:
                try:
                    with open(os.path.join(base, "packed-refs")) as f:
                        for line in f:
                            if line.rstrip().endswith(" " + ref):
                                return line.split()[0]
                except FileNotFoundError:
                    pass
    except (OSError, IndexError):
        pass
    return f"v{__version__}"


def _common_dir(git: str) -> str:
    try:
        with open(os.path.join(git, "commondir")) as f:
            return os.path.normpath(os.path.join(git, f.read().strip()))
    except OSError:
        return git


def global_help(name: str, commands) -> str:
    width = max(len(c) for c in commands) + 2
    out = [
        "NAME:",
        f"   {name} - Open Container Initiative runtime",
        "",
        f"{name} runs containers from OCI bundles (a config.json and a root filesystem), as a drop-in",
        "replacement for runc: the same commands, flags, output and exit codes.",
        "",
        "To start a new instance of a container:",
        "",
        f"    # {name} run [ -b bundle ] <container-id>",
        "",
        "USAGE:",
        f"   {name} [global options] command [command options] [arguments...]",
        "",
        "VERSION:",
        "   " + version_text(name).split("\n", 1)[0].split(" version ", 1)[1],
        "",
        "COMMANDS:",
    ]
    for c in sorted(commands):
        out.append(f"   {c.ljust(width)}{COMMAND_TEXT[c][0]}")
    out.append(f"   {'help, h'.ljust(width)}Shows a list of commands or help for one command")
    out += ["", "GLOBAL OPTIONS:"]
    w = max(len(f) for f, _ in GLOBAL_TEXT) + 2
    out += [f"   {f.ljust(w)}{d}" for f, d in GLOBAL_TEXT]
    return "\n".join(out) + "\n"


def command_help(name: str, cmd: str, flags: dict) -> str:
    summary, usage, description = COMMAND_TEXT[cmd]
    out = ["NAME:", f"   {name} {cmd} - {summary}", "", "USAGE:", f"   {name} {cmd} {usage}".rstrip()]
    if description:
        out += ["", "DESCRIPTION:", *("   " + line for line in description.splitlines())]
    if flags:
        rows = []
        for flag, (aliases, _takes) in flags.items():
            value, text = FLAG_TEXT.get(flag, ("", ""))
            names = ", ".join(("--" if len(a) > 1 else "-") + a + (f" {value}" if value else "") for a in aliases)
            rows.append((names, text))
        w = max(len(n) for n, _ in rows) + 2
        out += ["", "OPTIONS:", *(f"   {n.ljust(w)}{t}".rstrip() for n, t in rows)]
    return "\n".join(out) + "\n"
