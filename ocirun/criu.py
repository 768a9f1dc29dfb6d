"""CRIU through its own RPC interface: ``criu swrk <fd>`` on a SOCK_SEQPACKET socketpair.

Why swrk and not the ``criu dump/restore`` command line: the RPC answer carries
success, errno and the restored init's pid; CRIU's notifications arrive in the
middle of the work (``post-restore`` with the new pid, ``orphan-pts-master`` with the
terminal's master fd over SCM_RIGHTS, ``setup-namespaces`` for hooks), and the
runtime's answer lets CRIU go on — none of which the command line can give.  It is
also what runc drives, so CRIU sees the same requests from both.

The messages are protobuf (criu's ``images/rpc.proto``).  The few fields used are
encoded here by hand (varint, length-delimited, nested messages): no protobuf
dependency for a command that rarely runs.  Field numbers are criu's, listed below.
``criu check`` (the command) is consulted first, and its own error text is what the
user sees when CRIU cannot work on this kernel.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from .errors import OciError

# criu_req_type
DUMP, RESTORE, CHECK, PRE_DUMP, NOTIFY, FEATURE_CHECK, VERSION = 1, 2, 3, 4, 6, 9, 10
#: criu_features fields (the FEATURE_CHECK request and its answer): name → number
FEATURES = {"mem_track": 1, "lazy_pages": 2}
# criu_cg_mode: runc's --manage-cgroups-mode names → values ("" = CRIU's default)
CG_MODES = {"": 6, "ignore": 0, "soft": 3, "full": 4, "strict": 5}

#: criu_opts fields: name → (number, kind).  kind: "i" int32, "u" uint32, "b" bool, "s" string,
#: "S" repeated string, "m" one message, "M" repeated message (each a list of (number, kind, value)).
OPTS = {
    "images_dir_fd": (1, "i"), "pid": (2, "i"), "leave_running": (3, "b"), "ext_unix_sk": (4, "b"),
    "tcp_established": (5, "b"), "evasive_devices": (6, "b"), "shell_job": (7, "b"), "file_locks": (8, "b"),
    "log_level": (9, "i"), "log_file": (10, "s"), "root": (13, "s"), "work_dir_fd": (17, "i"),
    "ext_mnt": (23, "M"), "manage_cgroups": (24, "b"), "cg_root": (25, "M"), "rst_sibling": (26, "b"),
    "inherit_fd": (27, "M"), "manage_cgroups_mode": (34, "u"), "external": (37, "S"), "join_ns": (39, "M"),
    "freeze_cgroup": (44, "s"), "orphan_pts_master": (50, "b"), "notify_scripts": (12, "b"),
    "ps": (11, "m"), "parent_img": (14, "s"), "track_mem": (15, "b"), "auto_dedup": (16, "b"),
    "empty_ns": (38, "u"), "lazy_pages": (48, "b"), "status_fd": (49, "i"), "config_file": (51, "s"),
    "lsm_profile": (53, "s"), "lsm_mount_context": (63, "s"),
}


class CriuError(OciError):
    pass


# -- protobuf wire format (the subset rpc.proto needs) ------------------------------------------------
def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int32 negatives are sign-extended to 64 bits on the wire
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(num: int, wire: int) -> bytes:
    return _varint(num << 3 | wire)


def _ld(num: int, data: bytes) -> bytes:
    return _key(num, 2) + _varint(len(data)) + data


def encode_fields(fields: list[tuple[int, str, object]]) -> bytes:
    """``[(number, kind, value)]`` → bytes; kind is "v" (varint), "s" (str/bytes) or "m" (nested bytes)."""
    out = bytearray()
    for num, kind, value in fields:
        if kind == "v":
            out += _key(num, 0) + _varint(int(value))
        elif kind == "s":
            out += _ld(num, value.encode() if isinstance(value, str) else value)
        elif kind == "m":
            out += _ld(num, value)
        else:  # pragma: no cover - programming error
            raise ValueError(kind)
    return bytes(out)


def decode(data: bytes) -> dict[int, list]:
    """bytes → {field number: [values]}: varints as int, length-delimited as bytes."""
    out: dict[int, list] = {}
    i = 0

    def varint():
        nonlocal i
        shift = n = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            value = varint()
        elif wire == 2:
            n = varint()
            value = data[i:i + n]
            i += n
        elif wire == 5:
            value = int.from_bytes(data[i:i + 4], "little")
            i += 4
        elif wire == 1:
            value = int.from_bytes(data[i:i + 8], "little")
            i += 8
        else:
            raise CriuError(f"criu: undecodable answer (wire type {wire})")
        out.setdefault(num, []).append(value)
    return out


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def encode_opts(opts: dict) -> bytes:
    fields = []
    for name, value in opts.items():
        if value is None:
            continue
        num, kind = OPTS[name]
        if kind in ("i", "u"):
            fields.append((num, "v", value))
        elif kind == "b":
            fields.append((num, "v", 1 if value else 0))
        elif kind == "s":
            fields.append((num, "s", value))
        elif kind == "S":
            fields += [(num, "s", v) for v in value]
        elif kind == "m":
            fields.append((num, "m", encode_fields(value)))
        else:  # "M": each item is a list of (number, kind, value) for the nested message
            fields += [(num, "m", encode_fields(item)) for item in value]
    return encode_fields(fields)


def ext_mount(key: str, val: str) -> list:
    return [(1, "s", key), (2, "s", val)]


def inherit_fd(key: str, fd: int) -> list:
    return [(1, "s", key), (2, "v", fd)]


def cgroup_root(ctrl: str, path: str) -> list:
    return [(1, "s", ctrl), (2, "s", path)] if ctrl else [(2, "s", path)]


def join_ns(ns: str, path: str) -> list:
    return [(1, "s", ns), (2, "s", path)]


def page_server(address: str, port: int) -> list:
    return [(1, "s", address), (2, "v", port)]


def parse_page_server(value: str) -> tuple[str, int]:
    """``ADDRESS:PORT`` (``[v6]:PORT`` for IPv6) → (address, port), refused as runc refuses it."""
    address, sep, port = value.rpartition(":")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    elif ":" in address:
        sep = ""  # an IPv6 address needs its brackets, or the port cannot be told apart
    if not sep or not address or not port:
        raise CriuError(f"invalid --page-server {value!r}: use --page-server ADDRESS:PORT")
    try:
        number = int(port, 10)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise CriuError(f"invalid --page-server {value!r}: invalid port number {port!r}")
    return address, number


# -- the binary -----------------------------------------------------------------------------------------
def find_binary(name: str | None) -> str:
    """``--criu`` (runc's global flag) or ``criu`` on PATH, then /usr/sbin (podman gives no PATH)."""
    name = name or "criu"
    if "/" in name:
        return name
    found = shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin:/usr/bin")
    if not found:
        raise CriuError(f"criu binary not found: {name} (install criu, or pass --criu PATH)")
    return found


def check(binary: str) -> None:
    """``criu check``: refuse with CRIU's own words when it cannot work here."""
    try:
        proc = subprocess.run([binary, "check"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
    except OSError as e:
        raise CriuError(f"cannot run {binary}: {e.strerror}") from None
    if proc.returncode != 0:
        raise CriuError(f"criu check failed, CRIU cannot work here: {check_reason(proc.stdout + proc.stderr)}")


def check_reason(text: str) -> str:
    """The first ``Error (...)`` line of criu's output, without its source location."""
    for line in text.splitlines():
        if line.startswith("Error"):
            return line.split("): ", 1)[-1].strip()
    return text.strip().splitlines()[-1] if text.strip() else "unknown error"


def missing_features(binary: str, wanted: list[str]) -> list[str]:
    """Which of ``wanted`` (names of :data:`FEATURES`) this CRIU on this kernel lacks (FEATURE_CHECK)."""
    request = encode_fields([(FEATURES[name], "v", 1) for name in wanted])
    swrk = Swrk(binary)
    try:
        # CRIU before 2.12 crashed on a request without options: an empty set is sent (as runc does).
        swrk.send(FEATURE_CHECK, b"", features=request)
        resp, fds = swrk.recv()
        for fd in fds:
            os.close(fd)
    finally:
        swrk.close()
    if not resp.get(2, [0])[0]:
        raise CriuError("CRIU feature check failed")
    have = decode(resp.get(8, [b""])[0])
    return [name for name in wanted if not have.get(FEATURES[name], [0])[0]]


# -- one swrk session ----------------------------------------------------------------------------------
class Swrk:
    """A ``criu swrk`` process and our end of its socket."""

    def __init__(self, binary: str, extra_fds: list[int] = ()):
        import fcntl
        import socket

        from .kernel import linux as k

        # CRIU gets stdio, its socket and ``extra_fds``, nothing else we hold (a --status-fd, an
        # engine's pipes): it may outlive us serving lazy pages, and would keep them open.
        k.close_range(3, 0xFFFFFFFF, 4)  # CLOSE_RANGE_CLOEXEC
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.sock = ours
        # fds for the child are moved above 10 first: a dup2 onto itself would leave CLOEXEC set.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in [theirs.fileno(), *extra_fds]]
        actions = [(os.POSIX_SPAWN_DUP2, fd, 3 + i) for i, fd in enumerate(high)]
        try:
            self.pid = os.posix_spawn(binary, [binary, "swrk", "3"], os.environ, file_actions=actions)
        except OSError as e:
            ours.close()
            raise CriuError(f"cannot run {binary}: {e.strerror}") from None
        finally:
            theirs.close()
            for fd in high:
                os.close(fd)
        self.status = None

    def send(self, req_type: int, opts: bytes | None = None, notify_success: bool | None = None,
             features: bytes | None = None) -> None:
        fields = [(1, "v", req_type)]
        if opts is not None:
            fields.append((2, "m", opts))
        if notify_success is not None:
            fields.append((3, "v", 1 if notify_success else 0))
        if features is not None:
            fields.append((5, "m", features))
        self.sock.send(encode_fields(fields))

    def recv(self) -> tuple[dict, list[int]]:
        import array
        import socket

        fds = array.array("i")
        data, anc, _, _ = self.sock.recvmsg(64 * 1024, socket.CMSG_SPACE(8 * fds.itemsize))
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
        if not data:
            raise CriuError("criu exited without answering")
        return decode(data), list(fds)

    def run(self, req_type: int, opts: bytes, on_notify=None) -> dict:
        """Send the request; answer notifications (``on_notify(script, pid, fds)``); return the final answer."""
        self.send(req_type, opts)
        while True:
            resp, fds = self.recv()
            kind = resp.get(1, [0])[0]
            success = bool(resp.get(2, [0])[0])
            if not success:
                for fd in fds:
                    os.close(fd)
                errno_ = _int32(resp.get(7, [0])[0])
                msg = resp.get(9, [b""])[0].decode(errors="replace").strip()
                msg = msg.split("): ", 1)[-1] if msg.startswith("Error (") else msg
                raise CriuError(msg or (os.strerror(errno_) if errno_ else "criu failed"))
            if kind == NOTIFY:
                note = decode(resp.get(5, [b""])[0])
                script = note.get(1, [b""])[0].decode()
                pid = _int32(note.get(2, [0])[0])
                try:
                    if on_notify is not None:
                        on_notify(script, pid, fds)
                finally:
                    for fd in fds:
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                self.send(NOTIFY, notify_success=True)
                continue
            return resp

    def close(self) -> int | None:
        self.sock.close()
        if self.status is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                self.status = status
            except ChildProcessError:
                pass
        return self.status


def log_errors(path: str, limit: int = 3) -> str:
    """The last ``Error`` lines of a criu log, for the one-line message."""
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if "Error" in line]
    except OSError:
        return ""
    # CRIU's closing lines ("Dumping FAILED.") and the RLIMIT_NOFILE complaint it survives say nothing.
    useful = [line.split("): ", 1)[-1] for line in lines
              if "FAILED" not in line and "RLIMIT_NOFILE" not in line]
    return "; ".join(useful[-limit:])
