"""The kernel seam: the only place in ocirun that makes a privileged call, stdlib or ctypes.

Everything above this package talks to the kernel through these functions, so
that (a) there is one place to read for every privileged operation, and (b) the
unit tests can replace them with the recording fake in :mod:`ocirun.kernel.fake`.

*Privileged* here means a call that changes the process's identity (uids, gids, groups,
session, capabilities, no_new_privs), enters or makes namespaces, changes mounts or the
process's root, makes device nodes or talks to a device by ioctl, changes a file's ownership,
changes scheduling, CPU placement, I/O priority or memory policy, installs a seccomp program or
a sealed memory file, or acts on another process (signals, pidfds, its limits).  What is not:
ordinary file I/O, including the writes to procfs, sysfs and cgroupfs files that set uid maps,
sysctls, LSM labels and cgroup limits (they stay with the module that knows the file), mode
bits (chmod: the owner may always), and netlink through pyroute2 (``ocirun.netdev``, messages on
a socket).  ``tests/unit/test_privileged_calls.py`` scans ``ocirun/`` for the calls this
defines and fails on any outside this package.

By topic, so that a caller pays only for what it imports:

* ``linux``: libc wrappers (namespaces, mounts, capabilities, prctl, rlimits, scheduling,
  memory policy, keyrings, signals), through ``cabi``: the C types and loader made from ctypes'
  C core alone, since ``import ctypes`` itself would cost ≈2.5 ms in every stage and command that
  needs a system call the standard library lacks.
* ``identity``: setresuid/setresgid/seteuid/setegid/setgroups/setsid (``os``, no ctypes).
* ``files``: mknod, chown/fchown, chroot, memfd_create (``os``, no ctypes).
* ``tty``: the terminal ioctls; ``nsfs``: a namespace file's type (``fcntl``, no ctypes).
* ``process``: signals, pidfds and prlimit on other processes (no ctypes: `kill`, `delete`).
* ``seccomp``, ``libseccomp``, ``bpf``: loading filters, libseccomp, eBPF device programs.
* ``constants``: the flags' numbers alone, for pure code such as ``ocirun.plan``.
"""
