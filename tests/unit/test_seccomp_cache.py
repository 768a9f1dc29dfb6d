"""The BPF cache: hit, miss, tampering and unsafe permissions all fall back to compiling."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ocirun.errors import SeccompError
from ocirun.kernel import libseccomp as libinfo
from ocirun.seccomp import cache as C, compile as compile_mod, compile_filter

try:
    from .test_seccomp_translate import DOCKER, FakeLib
except ImportError:  # collected without the tests package
    from test_seccomp_translate import DOCKER, FakeLib

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]}


@pytest.fixture
def builds(monkeypatch):
    """Count compiles; compile on the fake library (no libseccomp needed)."""
    real = compile_mod.build
    count = []

    def build(plan, backend=None):
        count.append(plan)
        return real(plan, FakeLib())

    monkeypatch.setattr(compile_mod, "build", build)
    return count


@pytest.fixture
def cdir(tmp_path):
    d = tmp_path / "cache" / "seccomp"
    return str(d)


def entry(cdir, profile=PROFILE):
    return os.path.join(cdir, C.cache_key(profile) + ".bpf")


def test_miss_then_hit(cdir, builds):
    a = compile_filter(PROFILE, cache_dir=cdir)
    assert len(builds) == 1
    b = compile_filter(json.loads(json.dumps(PROFILE)), cache_dir=cdir)
    assert len(builds) == 1 and a == b
    cache = C.FilterCache(cdir)
    assert cache.get(C.cache_key(PROFILE)) == a and cache.last_reason == "hit"


def test_files_and_modes(cdir, builds):
    compile_filter(PROFILE, cache_dir=cdir)
    assert os.stat(cdir).st_mode & 0o777 == 0o700
    names = os.listdir(cdir)
    assert names == [C.cache_key(PROFILE) + ".bpf"]          # no temp file left behind
    st = os.stat(entry(cdir))
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid()
    with open(entry(cdir), "rb") as f:
        data = f.read()
    assert data.startswith(b"ocirun-seccomp-bpf 2\n")


def test_warnings_survive_the_cache(cdir, builds):
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["nope"], "action": "SCMP_ACT_LOG"}]}
    a = compile_filter(prof, cache_dir=cdir)
    b = compile_filter(prof, cache_dir=cdir)
    assert len(builds) == 1 and b.warnings == a.warnings == [
        'linux.seccomp.syscalls[0].names[0]: unknown syscall "nope" skipped']


def _rewrite(path, fn):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(fn(data))


@pytest.mark.parametrize("tamper,reason", [
    (lambda d: d[:-1] + bytes([d[-1] ^ 0xFF]), "content hash mismatch"),
    (lambda d: d[:-8], "content hash mismatch"),
    (lambda d: b"x" + d, "bad magic"),
    (lambda d: d.split(b"\n")[0] + b"\n", "no header"),
    (lambda d: d.replace(b'"flags": 0', b'"flags": "x"'), "bad header: invalid literal for int() with base 10: 'x'"),
])
def test_tampered_entry_is_recompiled(cdir, builds, tamper, reason):
    good = compile_filter(PROFILE, cache_dir=cdir)
    _rewrite(entry(cdir), tamper)
    cache = C.FilterCache(cdir)
    assert cache.get(C.cache_key(PROFILE)) is None and cache.last_reason == reason
    assert compile_filter(PROFILE, cache_dir=cdir) == good and len(builds) == 2
    assert cache.get(C.cache_key(PROFILE)) == good            # rewritten


def test_entry_under_another_key_is_refused(cdir, builds):
    other = dict(PROFILE, defaultAction="SCMP_ACT_LOG")
    compile_filter(other, cache_dir=cdir)
    os.replace(entry(cdir, other), entry(cdir))              # a valid file, but for another profile
    cache = C.FilterCache(cdir)
    assert cache.get(C.cache_key(PROFILE)) is None and cache.last_reason == "key mismatch"


def test_group_or_world_writable_file_is_ignored(cdir, builds):
    compile_filter(PROFILE, cache_dir=cdir)
    for mode in (0o620, 0o602):
        os.chmod(entry(cdir), mode)
        cache = C.FilterCache(cdir)
        assert cache.get(C.cache_key(PROFILE)) is None
        assert cache.last_reason.startswith("unsafe owner or mode")


def test_writable_directory_is_ignored(cdir, builds):
    compile_filter(PROFILE, cache_dir=cdir)
    os.chmod(cdir, 0o777)
    cache = C.FilterCache(cdir)
    assert cache.get(C.cache_key(PROFILE)) is None and "unsafe owner or mode drwxrwxrwx" in cache.last_reason
    compile_filter(PROFILE, cache_dir=cdir)
    assert len(builds) == 2                                   # and nothing was written there either
    os.chmod(cdir, 0o700)


def test_writable_ancestor_is_ignored_unless_sticky(cdir, builds):
    compile_filter(PROFILE, cache_dir=cdir)
    parent = os.path.dirname(cdir)
    os.chmod(parent, 0o777)
    cache = C.FilterCache(cdir)
    assert cache.get(C.cache_key(PROFILE)) is None and cache.last_reason.startswith(parent)
    os.chmod(parent, 0o1777)                                  # like /tmp
    assert cache.get(C.cache_key(PROFILE)) is not None
    os.chmod(parent, 0o755)


def test_symlinked_entry_is_ignored(cdir, builds, tmp_path):
    compile_filter(PROFILE, cache_dir=cdir)
    real = tmp_path / "elsewhere.bpf"
    os.replace(entry(cdir), real)
    os.symlink(real, entry(cdir))
    cache = C.FilterCache(cdir)
    assert cache.get(C.cache_key(PROFILE)) is None and cache.last_reason.startswith("open:")


def test_symlinked_directory_is_ignored(cdir, builds, tmp_path):
    compile_filter(PROFILE, cache_dir=cdir)
    link = str(tmp_path / "link")
    os.symlink(cdir, link)
    cache = C.FilterCache(link)
    assert cache.get(C.cache_key(PROFILE)) is None and cache.last_reason.endswith("is not a directory")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_foreign_owner_is_ignored(cdir, builds):
    compile_filter(PROFILE, cache_dir=cdir)
    os.chown(entry(cdir), 12345, 12345)
    cache = C.FilterCache(cdir)
    assert cache.get(C.cache_key(PROFILE)) is None and cache.last_reason.startswith("unsafe owner")
    os.chown(entry(cdir), 0, 0)
    os.chown(cdir, 12345, 12345)
    assert cache.get(C.cache_key(PROFILE)) is None and "unsafe owner" in cache.last_reason


def test_unusable_cache_dir_still_compiles(tmp_path, builds):
    blocker = tmp_path / "file"
    blocker.write_text("")
    f = compile_filter(PROFILE, cache_dir=str(blocker / "seccomp"))
    assert f.instructions == 1 and len(builds) == 1


def test_key():
    k = C.cache_key(PROFILE)
    reordered = json.loads(json.dumps(dict(reversed(list(PROFILE.items())))))
    assert C.cache_key(reordered) == k
    assert C.cache_key(dict(PROFILE, listenerPath="/a", listenerMetadata="m")) == k
    assert C.cache_key(dict(PROFILE, defaultAction="SCMP_ACT_LOG")) != k
    assert C.cache_key(dict(PROFILE, flags=["SECCOMP_FILTER_FLAG_LOG"])) != k


def test_key_depends_on_libseccomp_version(monkeypatch):
    k = C.cache_key(PROFILE)
    monkeypatch.setattr(libinfo, "_version", "0.0.1")
    assert C.cache_key(PROFILE) != k


def test_listener_rules_are_checked_on_a_hit(cdir, builds):
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    assert compile_filter(prof, cache_dir=cdir).needs_listener
    del prof["listenerPath"]
    with pytest.raises(SeccompError, match="listenerPath: required"):
        compile_filter(prof, cache_dir=cdir)
    assert len(builds) == 1


def test_prune(cdir, builds, monkeypatch):
    monkeypatch.setattr(C, "MAX_ENTRIES", 3)
    for n in range(5):
        compile_filter(dict(PROFILE, defaultErrnoRet=n, defaultAction="SCMP_ACT_ERRNO"), cache_dir=cdir)
    assert len(os.listdir(cdir)) == 3


def test_default_cache_dir():
    if os.geteuid() == 0:
        assert C.default_cache_dir() == "/var/cache/ocirun/seccomp"
    else:
        assert C.default_cache_dir().endswith("/ocirun/seccomp")


def test_hit_path_does_not_import_libseccomp_bindings(tmp_path):
    pytest.importorskip("pyseccomp")
    if not os.path.exists(DOCKER):
        pytest.skip("no Docker client config")
    cdir = str(tmp_path / "c")
    code = f"""
import json, sys, time
from ocirun.seccomp import compile_filter
prof = json.load(open({DOCKER!r}))["linux"]["seccomp"]
t = time.perf_counter()
f = compile_filter(prof, cache_dir={cdir!r})
print(json.dumps({{"pyseccomp": "pyseccomp" in sys.modules, "n": f.instructions,
                   "ms": (time.perf_counter() - t) * 1000}}))
"""
    run = lambda: json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                            capture_output=True, text=True).stdout)
    miss, hit = run(), run()
    assert miss["pyseccomp"] is True and hit["pyseccomp"] is False
    assert miss["n"] == hit["n"] > 300
