"""The launch plan is built by pure code: importing ocirun.plan (its tables, the mount option parser, the
capability masks) loads no ctypes, so it runs and is tested anywhere, without root."""
import subprocess
import sys


def test_plan_loads_no_ctypes():
    code = "import sys, ocirun.plan; print(sorted(m for m in sys.modules if m.split('.')[0] == 'ctypes'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__file__.rsplit("/tests/", 1)[0])
    assert out.stdout.strip() == "[]"


def test_building_a_plan_loads_no_ctypes():
    """The whole spec → plan step, mount labels included (their policy lives in plan, not in lsm, which
    reaches procfs and the kernel seam)."""
    code = ("import sys, ocirun.plan as p, ocirun.config as c\n"
            "raw = {'ociVersion': '1.2.0', 'root': {'path': 'r'}, 'mounts': [{'destination': '/t', 'type': 'tmpfs'}],"
            " 'linux': {'mountLabel': 'x', 'namespaces': [{'type': 'mount'}, {'type': 'user'}]}}\n"
            "p.launch_plan(c.Spec.parse(raw, '/b'), '/b', 40)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ctypes'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__file__.rsplit("/tests/", 1)[0])
    assert out.stdout.strip() == "[]"


def test_the_calls_module_still_offers_every_flag():
    """kernel.linux re-exports the constants, so callers that pass flags to its calls need one import."""
    from ocirun.kernel import constants, linux

    names = [n for n in vars(constants) if n.isupper()]
    assert len(names) > 60 and all(getattr(linux, n) == getattr(constants, n) for n in names)
