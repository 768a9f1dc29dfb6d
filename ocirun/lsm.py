"""Which Linux security module is active (AppArmor, SELinux), read from the kernel's own files."""
from __future__ import annotations

import os


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y" and os.path.isdir("/sys/kernel/security/apparmor")
    except OSError:
        return False


def selinux_enabled() -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(" - selinuxfs " in line for line in f)
    except OSError:
        return False
