#!/usr/bin/env python3
"""ocirun's Python API in one page: build a busybox bundle, run containers, read their output.

Run as root from the repository:  .venv/bin/python examples/api_demo.py
Everything it makes (bundle, state root, containers, cgroups) is removed before it exits.
"""
from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ocirun.api import ContainerExists, ContainerNotFound, InvalidState, Runtime, Timeout  # noqa: E402
from ocirun.bundle import make_bundle, write_config  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ocirun-api-demo-") as tmp:
        bundle = os.path.join(tmp, "bundle")
        spec = make_bundle(bundle, args=["sh", "-c", "echo hello from $(hostname); cat; exit 7"],
                           hostname="api-demo")
        rt = Runtime(root=os.path.join(tmp, "state"))
        suffix = os.getpid()  # unique ids: several demos (or test runs) may share the host's cgroups

        # 1. run: create + start + wait + delete, with stdin given and stdout/stderr captured
        result = rt.run(f"demo-run-{suffix}", bundle, input=b"some input\n", timeout=30)
        print(f"run:   exit={result.exit_code} stdout={result.stdout!r}")
        assert result.exit_code == 7 and result.stdout == b"hello from api-demo\nsome input\n"

        # 2. the lifecycle step by step, with exec into the running container
        spec["process"]["args"] = ["sleep", "300"]
        write_config(bundle, spec)
        cid = f"demo-{suffix}"
        with open(os.devnull, "r+b") as null:  # the process gets its own copies of these fds
            st = rt.create(cid, bundle, stdin=null, stdout=null)
        print(f"create: {st.id} {st.status} pid={st.pid}")
        try:
            try:
                rt.create(cid, bundle)
            except ContainerExists as e:
                print(f"create again: {type(e).__name__}: {e}")
            rt.start(cid)
            print(f"start: {rt.state(cid).status}; list: {[s.id for s in rt.list()]}")
            ex = rt.exec(cid, ["sh", "-c", "echo pid1=$(cat /proc/1/comm) user=$(id -u) A=$A"], env={"A": "1"})
            print(f"exec:  exit={ex.exit_code} stdout={ex.text().strip()!r}")
            assert ex.stdout == b"pid1=sleep user=0 A=1\n"
            try:
                rt.exec(cid, ["sleep", "10"], timeout=0.5)
            except Timeout as e:
                print(f"exec with timeout: {type(e).__name__}: {e}")
            info = rt.inspect(cid)
            new = [ns["type"] for ns in info["namespaces"] if not ns["sharedWithHost"]]
            print(f"inspect: new namespaces {new}, hostname {info['hostname']['actual']}")
            try:
                rt.delete(cid)
            except InvalidState as e:
                print(f"delete while running: {type(e).__name__}: {e}")
            rt.kill(cid, "KILL")
        finally:
            rt.delete(cid, force=True)
        try:
            rt.state(cid)
        except ContainerNotFound as e:
            print(f"after delete: {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
