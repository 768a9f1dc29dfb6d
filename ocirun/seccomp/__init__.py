"""Seccomp for ocirun: the spec's ``linux.seccomp`` object → a BPF program → the kernel.

Three steps, split by who runs them and what they may import:

1. :func:`compile_filter` (the runtime, before any side effect): check the
   object (errors name the JSON field), replay it into libseccomp and export
   the BPF (:mod:`.translate` pure, :mod:`.compile` libseccomp).  With
   ``cache_dir`` a verified on-disk cache (:mod:`.cache`) answers repeated
   profiles without importing libseccomp at all.
2. :func:`load` (the init stage, as late as possible before execve): hand the
   BPF to seccomp(2).  The kernel requires ``no_new_privs`` *or*
   ``CAP_SYS_ADMIN``: load after ``prctl(PR_SET_NO_NEW_PRIVS)`` when the
   process asks for it, otherwise before the capabilities are dropped.
   Returns the listener fd when a rule uses ``SCMP_ACT_NOTIFY``.
3. :func:`ocirun.seccomp.notify.send_listener` (the runtime, once the init
   stage has passed the listener fd up): give it to the agent at
   ``listenerPath``.

The filter travels from 1 to 2 as JSON (:meth:`CompiledFilter.to_json` /
:meth:`CompiledFilter.from_json`).  Syscalls newer than every syscall the
profile names get ENOSYS rather than a restrictive default (:mod:`.enosys`).
"""
from __future__ import annotations

import os

from ..errors import SeccompError
from .model import CompiledFilter, check_listener

from ..kernel.constants import SECCOMP_FILTER_FLAG_NEW_LISTENER as FLAG_NEW_LISTENER  # noqa: E402

__all__ = ["CompiledFilter", "SeccompError", "compile_filter", "default_cache_dir", "features", "load"]


def __getattr__(name: str):
    """``ocirun.seccomp.notify`` (and the other submodules) on first use, not at import."""
    if name in ("notify", "cache", "compile", "translate", "enosys"):
        import sys  # not importlib (≈1 ms with warnings): `from . import cache` comes through here
        __import__(f"{__name__}.{name}")
        return sys.modules[f"{__name__}.{name}"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def libseccomp_version() -> str:
    """``major.minor.micro`` of the installed libseccomp, or ``"none"`` (for ``ocirun --version``)."""
    from ..kernel.libseccomp import version
    return version()


def default_cache_dir() -> str:
    from .cache import default_cache_dir as _default
    return _default()


def compile_filter(seccomp: dict, *, cache_dir: str | None = None, backend=None) -> CompiledFilter:
    """Translate and compile the spec's seccomp object into a :class:`CompiledFilter`.

    ``cache_dir``: look the program up there first and store it after a
    compile (the runtime passes :func:`default_cache_dir`); None compiles every
    time.  ``backend``: a stand-in for libseccomp (tests); it bypasses the cache.
    Raises :class:`SeccompError` naming the offending field.
    """
    if cache_dir is None or backend is not None:
        from .compile import build
        from .translate import translate
        return build(translate(seccomp), backend)

    from .cache import FilterCache, cache_key
    cache = FilterCache(cache_dir)
    try:
        key = cache_key(seccomp)
    except (TypeError, ValueError, AttributeError):  # not a JSON object: let translate say why
        key = None
    if key is not None:
        hit = cache.get(key)
        if hit is not None:
            check_listener(seccomp, hit.needs_listener)
            return hit
    from .compile import build
    from .translate import translate
    filt = build(translate(seccomp))
    if key is not None:
        cache.put(key, filt)
    return filt


def load(filt: CompiledFilter) -> int | None:
    """Install ``filt`` on the calling thread; return the listener fd if NEW_LISTENER was asked."""
    from ..kernel import seccomp as kseccomp
    try:
        ret = kseccomp.set_mode_filter(filt.bpf, filt.flags)
    except ValueError as e:
        raise SeccompError(f"seccomp: {e}") from None
    except OSError as e:
        hint = " (needs no_new_privs or CAP_SYS_ADMIN)" if e.errno == 13 else ""
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise SeccompError(f"seccomp: loading the filter: {reason}{hint}") from None
    if filt.flags & FLAG_NEW_LISTENER:
        return ret
    return None


def features() -> dict:
    """The ``linux.seccomp`` object of ``ocirun features`` (from the same tables the translation uses)."""
    from ..kernel import libseccomp as libinfo
    from .translate import ACTIONS, ARCHES, FLAGS, OPERATORS
    enabled = libinfo.handle() is not None
    supported = []
    if enabled:
        from ..kernel import seccomp as kseccomp
        for name, bit in FLAGS.items():
            probe = bit | FLAG_NEW_LISTENER if name == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" else bit
            if kseccomp.flags_supported(probe):
                supported.append(name)
    return {
        "enabled": enabled,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": sorted(a for a, v in ARCHES.items() if libinfo.arch_supported(v)),
        "knownFlags": sorted(FLAGS),
        "supportedFlags": sorted(supported),
    }
