"""A small blocking D-Bus client: method calls and the signals that answer them, nothing else.

Only the systemd cgroup driver uses it, so it is imported only with ``--systemd-cgroup``.  The wire format
(marshalling, the SASL EXTERNAL handshake) is jeepney's, a pure-Python package; the connection loop is here
because jeepney's blocking connection always says ``Hello`` to a message bus, and systemd's private socket
(``/run/systemd/private``, what runc and systemctl use as root) is a peer-to-peer connection with no bus
daemon behind it.

Where to connect (:func:`systemd_address`)::

    $OCIRUN_SYSTEMD_BUS   an address ("unix:path=/x" or a plain socket path); for tests, and for a systemd
                          whose private socket is somewhere else.  A socket named "private" is peer-to-peer,
                          anything else a bus.
    /run/systemd/private  when it exists and we are root (no dbus-daemon needed);
    the system bus        otherwise ($DBUS_SYSTEM_BUS_ADDRESS or /run/dbus/system_bus_socket).
"""
from __future__ import annotations

import os
import socket
import time

from ..errors import CgroupError

PRIVATE_SOCKET = "/run/systemd/private"
SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"


class DBusError(CgroupError):
    """An error reply: ``name`` is the D-Bus error name (``org.freedesktop.systemd1.NoSuchUnit``)."""

    def __init__(self, name: str, text: str):
        super().__init__(f"{name}: {text}" if text else name)
        self.name = name


def _jeepney():
    try:
        import jeepney
        import jeepney.auth
        import jeepney.bus
    except ImportError:
        raise CgroupError("the systemd cgroup driver needs the Python package jeepney "
                          "(pip install jeepney), or use the cgroupfs driver (drop --systemd-cgroup)") from None
    return jeepney, jeepney.bus


def systemd_address(environ=os.environ) -> tuple[str, bool]:
    """(address, is_bus): where systemd's Manager API is reachable from here."""
    override = environ.get("OCIRUN_SYSTEMD_BUS")
    if override:
        path = override[len("unix:path="):] if override.startswith("unix:path=") else override
        is_bus = os.path.basename(path) != "private"
        return (override if override.startswith("unix:") else f"unix:path={override}"), is_bus
    if os.geteuid() == 0 and os.path.exists(PRIVATE_SOCKET):
        return f"unix:path={PRIVATE_SOCKET}", False
    return environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS, True


class Connection:
    """One authenticated connection.  ``call`` sends a method call and returns the reply's body; signals
    that arrive meanwhile are kept for :meth:`wait_signal` (JobRemoved may overtake the reply that names
    the job)."""

    def __init__(self, address: str, is_bus: bool, timeout: float = 5.0):
        jeepney, _ = _jeepney()
        self._j = jeepney
        self.address = address
        try:
            self.sock = self._authenticate(jeepney.bus.get_bus(address), timeout)
        except (OSError, ValueError) as e:
            raise CgroupError(f"connect to systemd at {address}: {getattr(e, 'strerror', None) or e}") from None
        self.parser = jeepney.Parser()
        self.serial = 0
        self.signals: list = []
        if is_bus:
            self.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello",
                      destination="org.freedesktop.DBus")

    @staticmethod
    def _authenticate(path: str, timeout: float) -> socket.socket:
        """SASL EXTERNAL with BEGIN sent together with AUTH, as sd-bus clients do.  Sending BEGIN only after
        the server's OK (jeepney's prep_socket) lets it arrive in one read with the first call; systemd 252's
        private socket then leaves that call unread until more data comes (a hang seen on this VM in about
        half of the attempts)."""
        from jeepney.auth import BEGIN, make_auth_external
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"\0" + make_auth_external() + BEGIN)
            line = b""
            while not line.endswith(b"\r\n") and len(line) < 512:
                chunk = sock.recv(1)
                if not chunk:
                    raise OSError(0, "connection closed during authentication")
                line += chunk
            if not line.startswith(b"OK "):
                raise OSError(0, f"authentication refused: {line.strip().decode(errors='replace')}")
            sock.settimeout(None)
            return sock
        except socket.timeout:
            sock.close()
            raise OSError(0, f"no answer to authentication within {timeout:g}s") from None
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- wire ----------------------------------------------------------------------------------------
    def _send(self, msg) -> int:
        self.serial += 1
        self.sock.sendall(msg.serialise(serial=self.serial))
        return self.serial

    def _receive(self, deadline: float):
        while True:
            msg = self.parser.get_next_message()
            if msg is not None:
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError from None
            if not data:
                raise CgroupError(f"systemd at {self.address} closed the connection")
            self.parser.add_data(data)

    # ---- API -----------------------------------------------------------------------------------------
    def call(self, path: str, interface: str, member: str, signature: str = "", body: tuple = (),
             destination: str = "org.freedesktop.systemd1", timeout: float = 30.0) -> tuple:
        j = self._j
        addr = j.DBusAddress(path, bus_name=destination, interface=interface)
        serial = self._send(j.new_method_call(addr, member, signature or None, body))
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._receive(deadline)
            except TimeoutError:
                raise CgroupError(f"systemd did not answer {interface}.{member} within {timeout:g}s") from None
            h = msg.header
            if h.message_type == j.MessageType.signal:
                self.signals.append(msg)
                continue
            if h.fields.get(j.HeaderFields.reply_serial) != serial:
                continue
            if h.message_type == j.MessageType.error:
                text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
                raise DBusError(h.fields.get(j.HeaderFields.error_name, "error"), text)
            return msg.body

    def wait_signal(self, member: str, match, timeout: float) -> tuple | None:
        """The body of the first signal ``member`` whose body satisfies ``match``; None on timeout."""
        j = self._j
        deadline = time.monotonic() + timeout
        while True:
            for i, msg in enumerate(self.signals):
                if msg.header.fields.get(j.HeaderFields.member) == member and match(msg.body):
                    del self.signals[i]
                    return msg.body
            self.signals.clear()
            try:
                msg = self._receive(deadline)
            except TimeoutError:
                return None
            if msg.header.message_type == j.MessageType.signal:
                self.signals.append(msg)
