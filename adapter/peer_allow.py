"""Which peer addresses may connect to a listener: ``allow_from`` of an MLLP source.

Each entry is an address (``127.0.0.1``, ``::1``) or a network in CIDR form
(``10.12.0.0/16``). A network with host bits set (``10.12.3.0/16``) is refused as a likely
typo rather than silently widened. An IPv4 peer seen through a dual-stack IPv6 socket
(``::ffff:10.12.3.4``) is matched as the IPv4 address it is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["AllowList", "AllowListError", "parse_allow_from"]


class AllowListError(ValueError):
    """An entry of ``allow_from`` is wrong; ``position`` is its index (None: the list)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True, slots=True)
class AllowList:
    networks: tuple[Network, ...]

    def allows(self, host: str | None) -> bool:
        """True when ``host`` (a peer's IP address, without port) is in one of the networks."""
        if not host:
            return False
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def __str__(self) -> str:
        return ", ".join(str(n) for n in self.networks)


def parse_allow_from(entries: object) -> AllowList:
    """Read an ``allow_from`` value; :class:`AllowListError` names the wrong entry."""
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise AllowListError(
            "allow_from must be a list of addresses or networks, e.g. [10.12.0.0/16, 127.0.0.1]"
        )
    if not entries:
        raise AllowListError(
            "allow_from is empty, which would refuse every peer; "
            "leave it out to accept any peer, or list the senders' addresses"
        )
    networks: list[Network] = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, str) or not entry.strip():
            raise AllowListError(
                f"{entry!r} is not an address or network (write e.g. 10.12.0.0/16 or 127.0.0.1)",
                position,
            )
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=True))
        except ValueError as exc:
            raise AllowListError(
                f"{entry!r} is not an address or network: {exc}", position
            ) from None
    return AllowList(tuple(networks))
