"""`python -m ocirun.demo`: build a busybox bundle and run it, showing what isolation looks like.

The container prints its hostname, its own pid (1: a new pid namespace) and the
inode of each of its namespaces; we print the host's inode next to each, so a
reader sees which namespaces are new (inodes differ) and which are shared.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from .bundle import make_bundle

NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
SCRIPT = "echo hostname=$(hostname); echo pid=$$; echo uid=$(id -u); " + "; ".join(
    f"echo ns.{ns}=$(readlink /proc/self/ns/{ns})" for ns in NAMESPACES)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    bundle = argv[0] if argv else "/tmp/ocirun-demo"
    runtime = shutil.which("ocirun") or os.path.join(os.path.dirname(sys.executable), "ocirun")
    shutil.rmtree(bundle, ignore_errors=True)
    make_bundle(bundle, args=["sh", "-c", SCRIPT], hostname="ocirun-demo")
    print(f"bundle: {bundle} (busybox rootfs + `ocirun spec` config)")
    print(f"$ {runtime} --root /run/ocirun-demo run --bundle {bundle} demo")
    proc = subprocess.run([runtime, "--root", "/run/ocirun-demo", "run", "--bundle", bundle, "demo"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    seen = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    print(f"\ninside the container: hostname={seen.get('hostname')}  pid={seen.get('pid')}  uid={seen.get('uid')}"
          f"   (host: hostname={os.uname().nodename} pid={os.getpid()})\n")
    print(f"{'namespace':<10} {'container':<22} {'host':<22} isolated?")
    for ns in NAMESPACES:
        inside = seen.get(f"ns.{ns}", "?")
        try:
            host = os.readlink(f"/proc/self/ns/{ns}")
        except OSError:
            host = "?"
        print(f"{ns:<10} {inside:<22} {host:<22} {'yes (new)' if inside != host else 'no (shared)'}")
    print("\nThe container exited with status 0; `ocirun run` deleted it afterwards.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
