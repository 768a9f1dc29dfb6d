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
    dict(level="MUST", doc="config-linux.md", section="Control groups",
         text="A runtime MAY ... check if the container cgroup is fit for purpose, and MUST generate an error "
              "if such a check fails.", reason="The check itself is optional."),
    dict(level="SHOULD", doc="config-linux.md", section="Cgroup ownership",
         text="Ownership rules for cgroup v2 delegation (`/sys/kernel/cgroup/delegate`, cgroup.procs, "
              "cgroup.subtree_control, cgroup.threads).",
         reason="cgroup v2 only; the test host runs cgroup v1 (the v1 rule is tested)."),
    dict(level="MUST", doc="config-linux.md", section="Memory",
         text="`checkBeforeUpdate` ... MUST reject the new limit.", reason="Concerns `update`, not a spec operation."),
    dict(level="MUST", doc="config-linux.md", section="Network",
         text="`network` (`classID`, `priorities`) applied.",
         reason="net_cls / net_prio are not mounted on the test host: only the error is tested "
                "(test_network_class_id checks the value where net_cls is mounted)."),
    dict(level="MUST", doc="config-linux.md", section="RDMA",
         text="`rdma` limits applied (`hcaHandles`, `hcaObjects`).",
         reason="No rdma controller or RDMA device on the test host: only the error is tested "
                "(test_rdma_without_controller_fails)."),
    dict(level="MUST", doc="config-linux.md", section="IntelRdt",
         text="`closID` / `l3CacheSchema` / `memBwSchema` / `schemata` / `enableMonitoring` rules; if `intelRdt` "
              "is not set, the runtime MUST NOT manipulate any `resctrl` pseudo-filesystems.",
         reason="The test host's kernel has no resctrl filesystem (not in /proc/filesystems), so nothing can be "
                "observed; only the error without resctrl is tested (test_intel_rdt_without_resctrl_fails)."),
    dict(level="MUST", doc="config-linux.md", section="Seccomp",
         text="`flags` (SECCOMP_FILTER_FLAG_*).", reason="Not observable from inside the container."),
    dict(level="MUST", doc="config-linux.md", section="Seccomp",
         text="`listenerMetadata` ... MUST NOT be set if `listenerPath` is not set.",
         reason="A requirement on the bundle author."),
    dict(level="MUST", doc="config-linux.md", section="Seccomp",
         text="The connection MUST NOT be reused.",
         reason="One connection per container, closed after one state, is checked "
                "(test_seccomp_listener_gets_process_state); reuse could only show across several notifying "
                "containers sharing one agent."),
    dict(level="MUST", doc="config-linux.md", section="Mount Label",
         text="`mountLabel` will set the SELinux context for the mounts in the container.",
         reason="SELinux is not enabled on the test host."),
    dict(level="MUST", doc="config-linux.md", section="Personality",
         text="`flags` ... Currently no flag values are supported.", reason="Nothing to test."),
]
