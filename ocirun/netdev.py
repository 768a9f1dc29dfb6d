"""linux.netDevices: move host interfaces into the container's network namespace.

Done by `create`'s parent side after the init stage has made the namespace and before it
sets anything up.  pyroute2 (≈200 ms to import here) is imported only when a config has
netDevices.  Per config-linux.md: the name is checked for a clash inside the namespace
(a ``%d`` template is left to the kernel), the interface is renamed in the same netlink
request that moves it, its permanent global addresses (which the kernel drops on the move)
are added back, it is brought up, and it is never moved back on delete.
"""
from __future__ import annotations

import os

from .errors import ConfigError, OciError

IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0


def check(net_devices: dict, has_netns: bool) -> None:
    """Config checks before any side effect."""
    if net_devices and not has_netns:
        raise ConfigError("config.json: linux.netDevices: requires a network namespace")
    for host, dev in net_devices.items():
        name = (dev or {}).get("name") or host
        if not host or "/" in host or len(host) > 15:
            raise ConfigError(f"config.json: linux.netDevices: invalid interface name {host!r}")
        if "/" in name or len(name) > 15 or name in (".", ".."):
            raise ConfigError(f"config.json: linux.netDevices.{host}.name: invalid interface name {name!r}")


def move_devices(net_devices: dict, netns_path: str) -> None:
    from pyroute2 import IPRoute

    nsfd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as host, IPRoute(netns=netns_path) as inside:
            for hostname, dev in net_devices.items():
                _move_one(host, inside, nsfd, hostname, (dev or {}).get("name") or hostname)
    finally:
        os.close(nsfd)


def _move_one(host, inside, nsfd: int, hostname: str, name: str) -> None:
    where = f"linux.netDevices.{hostname}"
    found = host.link_lookup(ifname=hostname)
    if not found:
        raise OciError(f"{where}: no interface named {hostname} on the host")
    index = found[0]
    if "%d" not in name and inside.link_lookup(ifname=name):
        raise OciError(f"{where}: an interface named {name} already exists in the container's network namespace")
    addrs = [(a.get_attr("IFA_ADDRESS"), a["prefixlen"], a["family"]) for a in host.get_addr(index=index)
             if a["scope"] == RT_SCOPE_UNIVERSE and (a.get_attr("IFA_FLAGS") or a["flags"]) & IFA_F_PERMANENT]
    try:
        host.link("set", index=index, net_ns_fd=nsfd, ifname=name)
    except Exception as e:
        raise OciError(f"{where}: move into the container's network namespace as {name}: {e}") from None
    moved = [link["index"] for link in inside.get_links() if link["index"] == index] or \
        (inside.link_lookup(ifname=name) if "%d" not in name else [])
    if not moved:
        raise OciError(f"{where}: moved, but not found in the container's network namespace")
    new_index = moved[0]
    for address, prefixlen, family in addrs:
        try:
            inside.addr("add", index=new_index, address=address, prefixlen=prefixlen, family=family)
        except Exception as e:
            raise OciError(f"{where}: restore address {address}/{prefixlen}: {e}") from None
    inside.link("set", index=new_index, state="up")
