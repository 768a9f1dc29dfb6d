"""An on-disk cache of compiled BPF programs, keyed by what determines them.

Compiling Docker's default profile through libseccomp costs tens of
milliseconds on every ``create`` (most of it importing pyseccomp); the BPF is a
pure function of the profile, the libseccomp version, the architecture and the
kernel (libseccomp probes it), so it is stored once and reused.

Key: sha256 of a canonical JSON (sorted keys, no spaces) of the seccomp object
minus ``listenerPath``/``listenerMetadata`` (they do not change the program),
plus the libseccomp version, the machine, the kernel release, the ocirun
version and the cache format.  The file ``<key>.bpf`` holds::

    ocirun-seccomp-bpf 2\\n
    {"key": ..., "sha256": <of the BPF>, "length": ..., "flags": ..., ...}\\n
    <BPF bytes>

The cache is only trusted when nobody but root (or our euid) could have
written it: the directory and every ancestor are owned by root or the euid and
not writable by group/others (a sticky ancestor such as /tmp is allowed), the
file is a regular file, not a symlink, owned the same way, not group/world
writable; and the content must match the key and the recorded sha256.
Anything else is treated as a miss (the reason is kept in ``last_reason``),
and the program is compiled again.  Writes are temp file + fsync + rename,
mode 0600, in a 0700 directory.
"""
from __future__ import annotations

import os
import stat

from .. import __version__
from ..fastjson import canonical, loads as _loads  # not json: it imports re and enum (a hit must stay light)
from ..kernel import libseccomp as libinfo

# hashlib pulls in OpenSSL (~3 ms of import on the hot path); the built-in sha256 is the same function.
try:
    from _sha2 import sha256  # Python >= 3.12
except ImportError:
    try:
        from _sha256 import sha256  # Python 3.11
    except ImportError:  # pragma: no cover
        from hashlib import sha256
from .model import CompiledFilter

FORMAT = 2
MAGIC = b"ocirun-seccomp-bpf %d\n" % FORMAT
DEFAULT_DIR = "/var/cache/ocirun/seccomp"
MAX_FILE = 64 * 1024
MAX_ENTRIES = 64
#: fields that do not change the BPF program
KEY_EXCLUDED = ("listenerPath", "listenerMetadata")

def default_cache_dir() -> str:
    """Root: /var/cache/ocirun/seccomp; otherwise under $XDG_CACHE_HOME (or ~/.cache)."""
    if os.geteuid() == 0:
        return DEFAULT_DIR
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ocirun", "seccomp")


def cache_key(seccomp: dict) -> str:
    profile = {k: v for k, v in seccomp.items() if k not in KEY_EXCLUDED}
    doc = {
        "format": FORMAT,
        "seccomp": profile,
        "libseccomp": libinfo.version(),
        "machine": os.uname().machine,
        "kernel": os.uname().release,
        "ocirun": __version__,
    }
    canon = canonical(doc)  # = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sha256(canon.encode()).hexdigest()


class FilterCache:
    def __init__(self, directory: str = DEFAULT_DIR):
        self.dir = os.path.abspath(directory)
        self.last_reason = ""

    def _path(self, key: str) -> str:
        return os.path.join(self.dir, key + ".bpf")

    # --- trust ---------------------------------------------------------------------------
    def _owner_ok(self, st: os.stat_result) -> bool:
        return st.st_uid in (0, os.geteuid())

    def _dir_trusted(self) -> bool:
        """The directory and its ancestors can only be changed by root or us."""
        try:
            st = os.lstat(self.dir)
        except FileNotFoundError:
            return self._miss("no cache directory")
        except OSError as e:
            return self._miss(f"{self.dir}: {e.strerror}")
        if not stat.S_ISDIR(st.st_mode):
            return self._miss(f"{self.dir} is not a directory")
        if not self._owner_ok(st) or st.st_mode & 0o022:
            return self._miss(f"{self.dir}: unsafe owner or mode {stat.filemode(st.st_mode)}")
        path = os.path.dirname(self.dir)
        while True:
            try:
                st = os.stat(path)
            except OSError as e:
                return self._miss(f"{path}: {e.strerror}")
            sticky = st.st_mode & stat.S_ISVTX
            if not self._owner_ok(st) or (st.st_mode & 0o022 and not sticky):
                return self._miss(f"{path}: unsafe owner or mode {stat.filemode(st.st_mode)}")
            if path == "/":
                return True
            path = os.path.dirname(path)

    def _miss(self, reason: str) -> bool:
        self.last_reason = reason
        return False

    # --- read ----------------------------------------------------------------------------
    def get(self, key: str) -> CompiledFilter | None:
        self.last_reason = ""
        if not self._dir_trusted():
            return None
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self._miss("not cached")
            return None
        except OSError as e:
            self._miss(f"open: {e.strerror}")
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._miss("not a regular file")
                return None
            if not self._owner_ok(st) or st.st_mode & 0o022:
                self._miss(f"unsafe owner or mode {stat.filemode(st.st_mode)}")
                return None
            if st.st_size > MAX_FILE:
                self._miss("too large")
                return None
            data = os.read(fd, MAX_FILE + 1)
        finally:
            os.close(fd)
        filt = self._parse(key, data)
        if filt is not None:
            self.last_reason = "hit"
        return filt

    def _parse(self, key: str, data: bytes) -> CompiledFilter | None:
        if not data.startswith(MAGIC):
            self._miss("bad magic")
            return None
        end = data.find(b"\n", len(MAGIC))
        if end < 0:
            self._miss("no header")
            return None
        try:
            head = _loads(data[len(MAGIC):end])
            bpf = data[end + 1:]
            if head["key"] != key:
                self._miss("key mismatch")
                return None
            if head["length"] != len(bpf) or head["sha256"] != sha256(bpf).hexdigest():
                self._miss("content hash mismatch")
                return None
            filt = CompiledFilter(bpf, int(head["flags"]), bool(head["needsListener"]),
                                  [str(w) for w in head["warnings"]])
            filt.check()
        except (ValueError, KeyError, TypeError) as e:
            self._miss(f"bad header: {e}")
            return None
        return filt

    # --- write ---------------------------------------------------------------------------
    def put(self, key: str, filt: CompiledFilter) -> bool:
        """Store ``filt``; False (and ``last_reason``) when the cache cannot be used or written."""
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
        except OSError as e:
            return self._miss(f"mkdir {self.dir}: {e.strerror}")
        if not self._dir_trusted():
            return False
        head = {"key": key, "sha256": sha256(filt.bpf).hexdigest(), "length": len(filt.bpf),
                "flags": filt.flags, "needsListener": filt.needs_listener, "warnings": filt.warnings}
        import json  # a miss: compiling has already cost far more

        data = MAGIC + json.dumps(head, sort_keys=True).encode() + b"\n" + filt.bpf
        tmp = os.path.join(self.dir, f".{key}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._path(key))
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return self._miss(f"write: {e.strerror}")
        self._prune()
        return True

    def _prune(self) -> None:
        """Keep at most MAX_ENTRIES programs (oldest first out)."""
        try:
            with os.scandir(self.dir) as it:
                entries = [e for e in it if e.name.endswith(".bpf") and e.is_file(follow_symlinks=False)]
            if len(entries) <= MAX_ENTRIES:
                return
            entries.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime)
            for e in entries[:len(entries) - MAX_ENTRIES]:
                os.unlink(e.path)
        except OSError:
            pass
