"""Spec requirements that the black-box suite does not test, with the reason.

The tested requirements are described by the tests themselves (``@pytest.mark.req`` + docstring);
``conformance/make_table.py`` merges both into docs/conformance.md.
"""
from __future__ import annotations

NOT_TESTED: list[dict] = [
    # runtime.md
    dict(level="MUST", doc="runtime.md", section="State",
         text="Additional values MAY be defined by the runtime, however, they MUST be used to represent new "
              "runtime states not defined above.",
         reason="Only observable if a runtime defines extra states (runc's `paused` needs the freezer and is "
                "outside the spec's operations)."),
    dict(level="MUST", doc="runtime.md", section="State",
         text="`id` ... MUST be unique across all containers on this host.",
         reason="Uniqueness is checked within one `--root` (test_create_duplicate_id_fails); across state roots "
                "it is the caller's scope, not observable black-box."),
    dict(level="MUST", doc="runtime-linux.md", section="File descriptors",
         text="The runtime MAY pass additional file descriptors ... Some of the file descriptors MAY be redirected "
              "to /dev/null.",
         reason="MAY: nothing to check (`--preserve-fds` is a CLI extension)."),
    # config.md
    dict(level="SHOULD", doc="config.md", section="Root",
         text="The value SHOULD be the conventional `rootfs`.", reason="A requirement on the bundle author."),
    dict(level="SHOULD", doc="config.md", section="Mounts",
         text="(Linux destination) This value SHOULD be an absolute path.", reason="A requirement on the bundle author."),
    dict(level="MAY", doc="config.md", section="Linux mount options",
         text="`mand`, `nomand`, `tmpcopyup` (MAY).", reason="Optional; `mand` is gone from current kernels."),
    dict(level="SHOULD", doc="config.md", section="Linux mount options",
         text="`idmap`/`ridmap` ... SHOULD be implemented using mount_setattr(MOUNT_ATTR_IDMAP); SHOULD NOT be "
              "passed to the underlying mount(2) call.",
         reason="The mechanism is not observable; the effect is (test_idmap_mount)."),
    dict(level="SHOULD", doc="config.md", section="Linux mount options",
         text="If a custom option string is already recognized by mount(8), the runtime SHOULD follow the "
              "behavior of mount(8).", reason="Open-ended; the listed options are tested one by one."),
    dict(level="MUST", doc="config.md", section="Linux Process",
         text="`apparmorProfile`, `selinuxLabel`.",
         reason="Neither AppArmor nor SELinux is enabled on the test host."),
    dict(level="SHOULD", doc="config.md", section="Linux Process",
         text="`execCPUAffinity` ... If omitted or empty, runtime SHOULD NOT change process' CPU affinity.",
         reason="Applies to `exec`, which is not one of the spec's operations."),
    dict(level="MUST", doc="config.md", section="Annotations",
         text="Keys MUST be strings. Keys MUST NOT be an empty string. Keys SHOULD be named using a reverse domain "
              "notation. The `org.opencontainers` namespace for keys is reserved.",
         reason="Requirements on the bundle author; a runtime is not required to reject them."),
    dict(level="MUST", doc="config.md", section="Platform-specific configuration",
         text="`windows` MUST be set if the target platform of this spec is `windows`; Windows/Solaris/z/OS/VM "
              "sections.", reason="Not Linux."),
    # config-linux.md
    dict(level="SHOULD", doc="config-linux.md", section="Devices",
         text="The same `type`, `major` and `minor` SHOULD NOT be used for multiple devices.",
         reason="A requirement on the bundle author."),
    dict(level="MUST", doc="config-linux.md", section="Network Devices",
         text="If a network device with the specified name already exists in the container namespace, the "
              "runtime MUST generate an error, unless ... `%d`; the runtime MUST NOT attempt to move the "
              "interface out of the namespace before deletion.",
         reason="Needs a joined network namespace prepared with a clashing device; only the basic move is "
                "tested (test_net_devices_moved_and_up)."),
    dict(level="MUST", doc="config-linux.md", section="Control groups",
         text="A runtime MAY ... check if the container cgroup is fit for purpose, and MUST generate an error "
              "if such a check fails.", reason="The check itself is optional."),
    dict(level="SHOULD", doc="config-linux.md", section="Cgroup ownership",
         text="Ownership rules for cgroup v2 delegation (`/sys/kernel/cgroup/delegate`, cgroup.procs, "
              "cgroup.subtree_control, cgroup.threads).",
         reason="cgroup v2 only; the test host runs cgroup v1 (the v1 rule is tested)."),
    dict(level="MUST", doc="config-linux.md", section="Memory",
         text="`checkBeforeUpdate` ... MUST reject the new limit.", reason="Concerns `update`, not a spec operation."),
    dict(level="MUST", doc="config-linux.md", section="Huge page limits",
         text="`hugepageLimits`.", reason="No hugetlb controller on the test host."),
    dict(level="MUST", doc="config-linux.md", section="Network",
         text="`network` (`classID`, `priorities`).", reason="net_cls / net_prio are not mounted on the test host."),
    dict(level="MUST", doc="config-linux.md", section="RDMA",
         text="`rdma`.", reason="No rdma controller on the test host."),
    dict(level="MUST", doc="config-linux.md", section="Unified",
         text="The OCI runtime MUST ensure that the needed cgroup controllers are enabled for the cgroup. "
              "Configuration unknown to the runtime MUST still be written to the relevant file.",
         reason="cgroup v2 only; the test host runs cgroup v1 (the error case is tested)."),
    dict(level="MUST", doc="config-linux.md", section="IntelRdt",
         text="closID / schemata / enableMonitoring rules.",
         reason="No resctrl filesystem on the test host (the error case is tested)."),
    dict(level="MUST", doc="config-linux.md", section="Memory policy",
         text="`memoryPolicy` (set_mempolicy(2)).", reason="Not yet covered: needs NUMA-aware probing."),
    dict(level="MUST", doc="config-linux.md", section="Seccomp",
         text="`listenerPath` ... The runtime MUST send exactly one container process state per connection ... "
              "fds MUST be sent using SCM_RIGHTS.",
         reason="Not yet covered: needs a seccomp agent listening on a socket."),
    dict(level="MUST", doc="config-linux.md", section="Seccomp",
         text="`flags` (SECCOMP_FILTER_FLAG_*).", reason="Not observable from inside the container."),
    dict(level="MUST", doc="config-linux.md", section="Mount Label",
         text="`mountLabel` will set the SELinux context for the mounts in the container.",
         reason="SELinux is not enabled on the test host."),
    dict(level="MUST", doc="config-linux.md", section="Personality",
         text="`flags` ... Currently no flag values are supported.", reason="Nothing to test."),
]
