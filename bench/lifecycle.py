#!/usr/bin/env python3
"""Lifecycle benchmark: ocirun against runc and crun, one CLI call at a time.

Usage::

    python bench/lifecycle.py [--runtime NAME=PATH ...] [--iterations N] [--quick]
                              [--json OUT] [--no-seccomp] [--importtime]

For each runtime arm and for two configs (runc's default config, and the same with Docker's
default seccomp profile taken at run time from ../shared/client-configs/docker-run-config.json,
beside the repository)
it measures

* ``run`` of ``/bin/true`` (foreground, the runtime deletes the container itself);
* one ``create`` / ``state`` / ``start`` / ``exec ID /bin/true`` / ``kill ID KILL`` / ``delete``
  cycle on a long-running ``sleep``, timing each CLI call;
* peak RSS of each CLI call (``ru_maxrss`` from ``wait4``) and the RSS of the container's init
  process while the container is ``created`` (``VmRSS`` of the pid that ``state`` reports);
* sequential throughput (back-to-back ``run`` cycles per second) and two-parallel throughput.

Arms are interleaved round-robin inside each iteration so that machine noise hits all of them
alike.  The report gives medians (p90 in brackets) and the ratio of each arm to runc, with
ocirun's targets beside them.  Each runtime gets its own ``--root`` in a temporary directory and
every container is force-deleted on exit, Ctrl-C included.  Needs root and busybox-static.
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import copy
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

DOCKER_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "shared", "client-configs", "docker-run-config.json")
OCIRUN_DEFAULT = os.path.join(os.path.dirname(HERE), ".venv", "bin", "ocirun")
# ociVersion every runtime here accepts (crun 1.8 refuses 1.3.0); the content is 1.0-compatible
BENCH_OCI_VERSION = "1.0.2"

# metric -> (unit, lower_is_better, target for ocirun in the plain config, with seccomp).
# A target is a ratio ocirun/runc (higher-is-better metrics: at least that), or FLOOR_PLUS_1MS: at most
# the interpreter's own start (`python -I -S -c pass`, timed in the same iterations) plus 1 ms.
FLOOR_PLUS_1MS = "floor+1ms"
METRICS = {
    "run": ("ms", True, 1.0, 1.0),
    "create": ("ms", True, 1.0, 1.0),
    "start": ("ms", True, FLOOR_PLUS_1MS, FLOOR_PLUS_1MS),
    "state": ("ms", True, FLOOR_PLUS_1MS, FLOOR_PLUS_1MS),
    "exec": ("ms", True, 1.0, 1.0),
    "kill": ("ms", True, FLOOR_PLUS_1MS, FLOOR_PLUS_1MS),
    "delete": ("ms", True, FLOOR_PLUS_1MS, FLOOR_PLUS_1MS),
    "init_rss_created": ("MiB", True, 1.0, 1.0),
    "maxrss_run": ("MiB", True, None, None),
    "maxrss_create": ("MiB", True, None, None),
    "maxrss_state": ("MiB", True, None, None),
    "throughput_seq": ("run/s", False, 1.0, 1.0),
    "throughput_par2": ("run/s", False, 1.0, 1.0),
    "interpreter": ("ms", True, None, None),  # `python -I -S -c pass` of ocirun's interpreter: the floor
}


class CallFailed(RuntimeError):
    pass


# ----------------------------------------------------------------------------- calls


GNU_TIME = "/usr/bin/time"


def call(argv: list[str], capture: bool = False, timeout: float = 30.0,
         stderr_path: str | None = None, rss_file: str | None = None) -> tuple[float, int, str]:
    """Run one CLI call; return (seconds, peak RSS in KiB, stdout).

    stdout is captured only for calls that do not leave a container holding it (state); the
    container inherits the runtime's stdio on create/run, so those go to /dev/null and a file.

    Peak RSS: ``wait4``'s ``ru_maxrss`` of a child forked from this Python process includes the
    RSS of the forked copy of Python at exec time (the kernel keeps the pre-exec mm's high-water
    mark), about 16 MiB, which would hide any runtime smaller than that.  With ``rss_file`` the
    call goes through GNU time (``/usr/bin/time -f %M``), whose own fork leaves ~1 MiB of that
    floor; the extra exec (~1 ms) is why the timed calls do not go through it.
    """
    if rss_file:
        argv = [GNU_TIME, "-f", "%M", "-o", rss_file, *argv]
    err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        # own session: a runtime that signals its process group (kill(0, ...)) must not hit us
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True,
                             stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=err)
        out = b""
        if capture:
            out = p.stdout.read()
            p.stdout.close()
        timer = threading.Timer(timeout, p.kill)  # a hung call must not hang the benchmark
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode == -signal.SIGKILL and dt >= timeout:
            raise CallFailed(f"timeout after {timeout}s: {' '.join(argv)}")
    finally:
        if stderr_path:
            err.close()
    if p.returncode != 0:
        tail = ""
        if stderr_path and os.path.exists(stderr_path):
            with open(stderr_path, "rb") as f:
                tail = f.read()[-600:].decode(errors="replace").strip()
        raise CallFailed(f"exit {p.returncode}: {' '.join(argv)}: {tail}")
    rss = ru.ru_maxrss
    if rss_file:
        with open(rss_file) as f:
            rss = int(f.read().split()[-1])
    return dt, rss, out.decode(errors="replace")


def vm_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


# ------------------------------------------------------------------------------ arms


class Arm:
    def __init__(self, name: str, path: str, base: str):
        self.name = name
        self.path = path
        self.root = os.path.join(base, "roots", name)
        os.makedirs(self.root, mode=0o700)
        self.errlog = os.path.join(base, f"{name}.stderr")
        self.rssfile = os.path.join(base, f"{name}.rss")
        self.live: set[str] = set()
        self.seq = 0
        self.version = ""
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20,
                                 start_new_session=True).stdout
            self.version = out.strip().splitlines()[0] if out.strip() else ""
        except (OSError, subprocess.SubprocessError):
            pass

    def cmd(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]

    def new_id(self, tag: str) -> str:
        self.seq += 1
        return f"bench-{os.getpid()}-{self.name}-{tag}-{self.seq}"

    def call(self, *args: str, capture: bool = False, rss: bool = False) -> tuple[float, int, str]:
        return call(self.cmd(*args), capture=capture, stderr_path=self.errlog,
                    rss_file=self.rssfile if rss else None)

    def cleanup(self) -> None:
        ids = set(self.live)
        try:
            out = subprocess.run(self.cmd("list", "-q"), capture_output=True, text=True, timeout=20,
                                 start_new_session=True).stdout
            ids |= {ln.strip() for ln in out.splitlines() if ln.strip()}
        except (OSError, subprocess.SubprocessError):
            pass
        try:
            ids |= {e for e in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, e))}
        except OSError:
            pass
        for cid in sorted(ids):
            try:
                subprocess.run(self.cmd("delete", "--force", cid), capture_output=True, timeout=20,
                               start_new_session=True)
            except (OSError, subprocess.SubprocessError):
                pass
        self.live.clear()


def read_only_interpreter(private: bool = True) -> list[str]:
    """Make the directories of this interpreter and of every file it maps executable read-only binds
    of themselves, in a private mount namespace (a new one unless ``private`` is False: we are in one
    already).  The runtimes started from here inherit it; the host's mounts are not changed."""
    import ctypes

    CLONE_NEWNS, MS_REC, MS_PRIVATE, MS_BIND, MS_REMOUNT, MS_RDONLY = 0x20000, 0x4000, 1 << 18, 0x1000, 0x20, 1
    lc = ctypes.CDLL(None, use_errno=True)

    def check(ret: int, what: str) -> None:
        if ret != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"{what}: {os.strerror(e)}")

    if private:
        check(lc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        check(lc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / rprivate")
    from ocirun.stagefork import mapped_dirs

    done = mapped_dirs()
    for d in done:
        b = os.fsencode(d)
        check(lc.mount(b, b, None, MS_BIND, None), f"bind {d}")
        check(lc.mount(None, b, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None), f"read-only {d}")
    return done


def default_arms() -> list[tuple[str, str]]:
    arms = []
    if os.access(OCIRUN_DEFAULT, os.X_OK):
        arms.append(("ocirun", OCIRUN_DEFAULT))
    for name in ("runc", "crun"):
        p = shutil.which(name)
        if p:
            arms.append((name, p))
    return arms


# --------------------------------------------------------------------------- bundles


def load_seccomp(path: str = DOCKER_CONFIG) -> dict:
    with open(path) as f:
        return json.load(f)["linux"]["seccomp"]


def make_bundles(base: str, seccomp: dict | None) -> dict[str, str]:
    """Bundles keyed '<args>/<variant>': args 'true' or 'sleep', variant 'plain' or 'seccomp'."""
    from ocirun.bundle import make_bundle, write_config

    bundles = {}
    variants = {"plain": None}
    if seccomp is not None:
        variants["seccomp"] = seccomp
    for variant, prof in variants.items():
        for tag, args in (("true", ["/bin/true"]), ("sleep", ["/bin/sleep", "3600"])):
            b = os.path.join(base, "bundles", f"{tag}-{variant}")
            # one rootfs per bundle (runc refuses a symlinked rootfs; a few MB each)
            spec = make_bundle(b, args=args, terminal=False)
            spec["ociVersion"] = BENCH_OCI_VERSION
            spec["process"]["terminal"] = False
            spec["process"]["args"] = args
            if prof is not None:
                spec["linux"]["seccomp"] = copy.deepcopy(prof)
            write_config(b, spec)
            bundles[f"{tag}/{variant}"] = b
    return bundles


# ------------------------------------------------------------------------ measurements


def one_run(arm: Arm, bundle: str, rss: bool = False) -> tuple[float, int]:
    cid = arm.new_id("run")
    arm.live.add(cid)
    dt, peak, _ = arm.call("run", "--bundle", bundle, cid, rss=rss)
    arm.live.discard(cid)
    return dt, peak


def wait_status(arm: Arm, cid: str, want: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, _, out = arm.call("state", cid, capture=True)
        st = json.loads(out)
        if st.get("status") == want:
            return st
        if time.monotonic() > deadline:
            raise CallFailed(f"{arm.name}: {cid} stayed {st.get('status')!r}, wanted {want!r}")
        time.sleep(0.005)


def interpreter_of(path: str) -> str | None:
    """The interpreter of a Python launcher script (its shebang's first word), else None."""
    try:
        with open(path, "rb") as f:
            first = f.readline(4096).decode("utf-8", "replace")
    except OSError:
        return None
    return first[2:].split()[0] if first.startswith("#!") and "python" in first else None


def one_cycle(arm: Arm, bundle: str, samples: dict, errors: dict) -> None:
    """Timed create/state/start/exec/kill/delete of a long-running container (and, for a Python
    runtime, its interpreter's bare start, the floor of the short commands, in the same cycle)."""
    python = interpreter_of(arm.path)
    if python:
        samples["interpreter"].append(call([python, "-I", "-S", "-c", "pass"])[0])
    cid = arm.new_id("cyc")
    arm.live.add(cid)
    dt, _, _ = arm.call("create", "--bundle", bundle, cid)
    samples["create"].append(dt)
    dt, _, out = arm.call("state", cid, capture=True)
    samples["state"].append(dt)
    st = json.loads(out)
    if st.get("status") != "created":
        raise CallFailed(f"{arm.name}: state after create is {st.get('status')!r}")
    rss_init = vm_rss_kib(int(st["pid"]))
    if rss_init is not None:
        samples["init_rss_created"].append(rss_init)
    dt, _, _ = arm.call("start", cid)
    samples["start"].append(dt)
    try:  # an exec failure must not cost the kill/delete samples
        dt, _, _ = arm.call("exec", cid, "/bin/true")
        samples["exec"].append(dt)
    except CallFailed as e:
        errors.setdefault("exec", str(e))
    dt, _, _ = arm.call("kill", cid, "KILL")
    samples["kill"].append(dt)
    wait_status(arm, cid, "stopped")
    dt, _, _ = arm.call("delete", cid)
    samples["delete"].append(dt)
    arm.live.discard(cid)


def memory_cycle(arm: Arm, run_bundle: str, bundle: str, samples: dict) -> None:
    """Peak RSS of run, create and state through GNU time (untimed)."""
    _, peak = one_run(arm, run_bundle, rss=True)
    samples["maxrss_run"].append(peak)
    cid = arm.new_id("mem")
    arm.live.add(cid)
    _, peak, _ = arm.call("create", "--bundle", bundle, cid, rss=True)
    samples["maxrss_create"].append(peak)
    _, peak, _ = arm.call("state", cid, capture=True, rss=True)
    samples["maxrss_state"].append(peak)
    arm.call("delete", "--force", cid)
    arm.live.discard(cid)


def throughput(arm: Arm, bundle: str, n: int, workers: int) -> float:
    t0 = time.perf_counter()
    if workers == 1:
        for _ in range(n):
            one_run(arm, bundle)
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            for f in [ex.submit(one_run, arm, bundle) for _ in range(n)]:
                f.result()
    return n / (time.perf_counter() - t0)


def new_samples() -> dict:
    return {m: [] for m in METRICS}


def bench(arms: list[Arm], bundles: dict, variants: list[str], iterations: int,
          tp_rounds: int, tp_runs: int, log=print) -> dict:
    measure_rss = os.access(GNU_TIME, os.X_OK)
    if not measure_rss:
        log(f"  note: {GNU_TIME} (GNU time) not found; no peak-RSS figures")
    res = {v: {a.name: new_samples() for a in arms} for v in variants}
    failures: dict[str, dict[str, str]] = {}
    alive: dict[str, list[Arm]] = {}
    for v in variants:
        alive[v] = []
        for a in arms:  # warm-up (page cache, first-run costs); an arm that cannot run this config is dropped
            try:
                one_run(a, bundles[f"true/{v}"])
                alive[v].append(a)
            except CallFailed as e:
                log(f"  {a.name} [{v}]: dropped (warm-up run failed): {e}")
                failures.setdefault(a.name, {})[f"warm-up/{v}"] = str(e)
                a.cleanup()
    def rotated(xs: list, k: int) -> list:
        return xs[k % len(xs):] + xs[: k % len(xs)] if xs else []

    for i in range(iterations):
        for v in variants:
            for a in rotated(alive[v], i):
                s = res[v][a.name]
                errs = failures.setdefault(a.name, {})
                for what, fn in (("run", lambda: s["run"].append(one_run(a, bundles[f"true/{v}"])[0])),
                                 ("cycle", lambda: one_cycle(a, bundles[f"sleep/{v}"], s, errs)),
                                 ("memory", lambda: memory_cycle(a, bundles[f"true/{v}"],
                                                                 bundles[f"sleep/{v}"], s))):
                    if what == "memory" and not measure_rss:
                        continue
                    try:
                        fn()
                    except CallFailed as e:
                        if what not in errs:
                            log(f"  {a.name} [{v}] {what}: {e}")
                        errs.setdefault(what, str(e))
                        a.cleanup()
        log(f"  iteration {i + 1}/{iterations} done")
    for r in range(tp_rounds):
        for v in variants:
            for a in rotated(alive[v], r):
                s = res[v][a.name]
                try:
                    s["throughput_seq"].append(throughput(a, bundles[f"true/{v}"], tp_runs, 1))
                    s["throughput_par2"].append(throughput(a, bundles[f"true/{v}"], 2 * tp_runs, 2))
                except CallFailed as e:
                    failures.setdefault(a.name, {}).setdefault("throughput", str(e))
                    log(f"  {a.name} [{v}] throughput: {e}")
                    a.cleanup()
        log(f"  throughput round {r + 1}/{tp_rounds} done")
    return {"samples": res, "failures": failures}


# --------------------------------------------------------------------------- report


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def scale(metric: str, x: float) -> float:
    unit = METRICS[metric][0]
    if unit == "ms":
        return x * 1000.0
    if unit == "MiB":
        return x / 1024.0
    return x


def summarize(samples: dict) -> dict:
    out = {}
    for v, arms in samples.items():
        out[v] = {}
        for arm, ms in arms.items():
            out[v][arm] = {}
            for m, xs in ms.items():
                if xs:
                    out[v][arm][m] = {"median": scale(m, statistics.median(xs)), "p90": scale(m, pct(xs, 0.9)),
                                      "n": len(xs)}
    return out


def ratios(summary: dict, base: str = "runc") -> dict:
    out = {}
    for v, arms in summary.items():
        out[v] = {}
        if base not in arms:
            continue
        for arm, ms in arms.items():
            if arm == base:
                continue
            out[v][arm] = {m: ms[m]["median"] / arms[base][m]["median"]
                           for m in ms if m in arms[base] and arms[base][m]["median"]}
    return out


def target_for(metric: str, variant: str):
    _, _, t_plain, t_sec = METRICS[metric]
    return t_sec if variant == "seccomp" else t_plain


def target_met(metric: str, variant: str, ratio: float | None, median: float | None,
               floor: float | None) -> tuple[str, str]:
    """(the target as printed, "yes"/"NO"/"-") for ocirun's ``metric``."""
    t = target_for(metric, variant)
    lower = METRICS[metric][1]
    if t is None:
        return "", ""
    if t == FLOOR_PLUS_1MS:
        if floor is None or median is None:
            return "<=py+1ms", "-"
        return f"<={floor + 1.0:.1f}ms", "yes" if median <= floor + 1.0 else "NO"
    text = ("<=" if lower else ">=") + format(t, ".1f")
    if ratio is None:
        return text, "-"
    return text, "yes" if (ratio <= t if lower else ratio >= t) else "NO"


def format_report(summary: dict, rat: dict, arm_names: list[str], target_arm: str = "ocirun") -> str:
    lines = []
    for v in summary:
        lines.append(f"== config: {'runc default + Docker default seccomp' if v == 'seccomp' else 'runc default'}")
        cols = [a for a in arm_names if a in summary[v]]
        others = [a for a in cols if a != "runc" and "runc" in cols]
        head = f"{'metric':<18}{'unit':<7}" + "".join(f"{a + ' med [p90]':>24}" for a in cols)
        head += "".join(f"{a + '/runc':>{max(13, len(a) + 7)}}" for a in others)
        if target_arm in others:
            head += f"{'target':>11}  ok"
        lines.append(head)
        lines.append("-" * len(head))
        for m, (unit, lower, _, _) in METRICS.items():
            if not any(m in summary[v][a] for a in cols):
                continue
            row = f"{m:<18}{unit:<7}"
            for a in cols:
                s = summary[v][a].get(m)
                cell = f"{s['median']:.1f} [{s['p90']:.1f}]" if s else "-"
                row += f"{cell:>24}"
            for a in others:
                r = rat.get(v, {}).get(a, {}).get(m)
                row += f"{(f'{r:.2f}' if r is not None else '-'):>{max(13, len(a) + 7)}}"
            if target_arm in others:
                r = rat.get(v, {}).get(target_arm, {}).get(m)
                mine = summary[v][target_arm].get(m)
                floor = summary[v][target_arm].get("interpreter")
                text, ok = target_met(m, v, r, mine and mine["median"], floor and floor["median"])
                if text:
                    row += f"{text:>11}  {ok}"
            lines.append(row)
        lines.append("")
    return "\n".join(lines)


def importtime(ocirun: str, root: str, cid: str, top: int = 15) -> str:
    """``python -X importtime`` of ``ocirun state``: total and the slowest cumulative imports."""
    # The launcher may run Python with -I/-E (``#!.../python -IS``), which ignores PYTHONPROFILEIMPORTTIME:
    # when it is a Python script, call its interpreter with the shebang's flags plus ``-X importtime``.
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    cmd = [ocirun]
    try:
        with open(ocirun, "rb") as f:
            first = f.readline(4096).decode("utf-8", "replace")
    except OSError:
        first = ""
    if first.startswith("#!") and "python" in first:
        shebang = first[2:].split()
        cmd = [*shebang, "-X", "importtime", ocirun]
    p = subprocess.run([*cmd, "--root", root, "state", cid], capture_output=True, text=True, env=env,
                       timeout=60, start_new_session=True)
    rows = []
    for ln in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", ln)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), len(m.group(3)) // 2, m.group(4)))
    total = sum(c for c, _, depth, _ in rows if depth == 0)
    tops = [r for r in rows if r[3].startswith("ocirun") or r[2] == 0]
    tops.sort(reverse=True)
    out = [f"imports under `ocirun state`: {len(rows)} modules, {total / 1000:.1f} ms cumulative (top level)"]
    for c, s, _, name in tops[:top]:
        out.append(f"  {c / 1000:8.1f} ms cumulative {s / 1000:7.1f} ms self  {name}")
    return "\n".join(out)


# ----------------------------------------------------------------------------- main


def parse_arm(s: str) -> tuple[str, str]:
    if "=" in s:
        name, path = s.split("=", 1)
    else:
        name, path = os.path.basename(s), s
    full = shutil.which(path) or path
    if not os.access(full, os.X_OK):
        raise argparse.ArgumentTypeError(f"{path}: not an executable")
    return name, os.path.abspath(full)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtime", action="append", type=parse_arm, metavar="NAME=PATH",
                    help="a runtime arm (repeatable); default: ocirun (.venv), runc, crun when present")
    ap.add_argument("--iterations", type=int, default=20, help="lifecycle iterations per arm (20)")
    ap.add_argument("--quick", action="store_true", help="5 iterations, 1 short throughput round")
    ap.add_argument("--no-seccomp", action="store_true", help="skip the Docker-seccomp variant")
    ap.add_argument("--seccomp-from", default=DOCKER_CONFIG, metavar="CONFIG",
                    help="config.json whose linux.seccomp is used (%(default)s)")
    ap.add_argument("--json", metavar="OUT", help="write samples, medians and ratios as JSON")
    ap.add_argument("--importtime", action="store_true", help="also profile imports of `ocirun state`")
    ap.add_argument("--hide-unified-cgroup", action="store_true",
                    help="run every arm in a private mount namespace without /sys/fs/cgroup/unified "
                         "(crun 1.x refuses hybrid hosts whose cgroup2 owns a controller); host unchanged")
    ap.add_argument("--read-only-interpreter", action="store_true",
                    help="run every arm in a private mount namespace where the directories of this "
                         "interpreter and of the shared objects it maps are read-only binds (ocirun then "
                         "forks its stages: ocirun.stagefork); host unchanged")
    ap.add_argument("--throughput-rounds", type=int, metavar="N",
                    help="throughput rounds (3; --quick: 1); 0 skips them, for change-by-change timing runs")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        print("skipped: the lifecycle benchmark needs root")
        return 0
    arm_specs = args.runtime or default_arms()
    if not arm_specs:
        print("skipped: no runtime found (give --runtime NAME=PATH)")
        return 0
    iterations = 5 if args.quick else args.iterations
    tp_rounds, tp_runs = (1, 5) if args.quick else (3, 10)
    if args.throughput_rounds is not None:
        tp_rounds = args.throughput_rounds

    if args.hide_unified_cgroup:
        from conformance.runtime_tools import hide_unified_cgroup
        hide_unified_cgroup()
    if args.read_only_interpreter:
        print(f"read-only binds: {', '.join(read_only_interpreter(private=not args.hide_unified_cgroup))}")
    seccomp = None
    if not args.no_seccomp:
        try:
            seccomp = load_seccomp(args.seccomp_from)
        except (OSError, KeyError, ValueError) as e:
            print(f"note: no seccomp variant ({args.seccomp_from}: {e})")
    base = tempfile.mkdtemp(prefix="ocirun-bench.")
    arms: list[Arm] = []

    def cleanup(*_):
        for a in arms:
            a.cleanup()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    atexit.register(cleanup)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        os.chmod(base, 0o755)
        bundles = make_bundles(base, seccomp)
        arms = [Arm(n, p, base) for n, p in arm_specs]
        variants = ["plain"] + (["seccomp"] if seccomp is not None else [])
        print(f"arms: {', '.join(f'{a.name}={a.path} ({a.version})' for a in arms)}")
        print(f"{platform.node()} {platform.release()}, {os.cpu_count()} CPUs; {iterations} iterations, "
              f"throughput {tp_rounds}x{tp_runs} runs; variants: {', '.join(variants)}", flush=True)
        raw = bench(arms, bundles, variants, iterations, tp_rounds, tp_runs,
                    log=lambda s: print(s, flush=True))
        summary = summarize(raw["samples"])
        rat = ratios(summary)
        print()
        print(format_report(summary, rat, [a.name for a in arms]))
        for name, errs in raw["failures"].items():
            for what, why in errs.items():
                print(f"failure: {name} {what}: {why}")
        it = None
        oc = next((a for a in arms if a.name == "ocirun"), None)
        if args.importtime and oc is not None:
            cid = oc.new_id("imp")
            oc.live.add(cid)
            oc.call("create", "--bundle", bundles["sleep/plain"], cid)
            it = importtime(oc.path, oc.root, cid)
            print(it)
            oc.call("delete", "--force", cid)
            oc.live.discard(cid)
        if args.json:
            doc = {"host": {"node": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count()},
                   "arms": {a.name: {"path": a.path, "version": a.version} for a in arms},
                   "iterations": iterations, "throughput": {"rounds": tp_rounds, "runs": tp_runs},
                   "summary": summary, "ratios_vs_runc": rat, "failures": raw["failures"],
                   "targets": {m: {"plain": t[2], "seccomp": t[3]} for m, t in METRICS.items()},
                   "importtime": it, "samples": raw["samples"]}
            with open(args.json, "w") as f:
                json.dump(doc, f, indent=2)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        cleanup()
        atexit.unregister(cleanup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
