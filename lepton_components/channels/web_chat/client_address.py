"""The client address a per-address rate limit counts: the TCP peer, or what a trusted proxy says.

`X-Forwarded-For` is written by whoever sends the request, so it is read only when the
TCP peer is one of the configured `trusted_proxies`. Then the header is read from the
right (each proxy appends the address it saw) and the first address that is not a
trusted proxy is the client: entries further left were written by the client and are
never believed. Without `trusted_proxies` the peer address counts, so behind a
reverse proxy every customer would share one bucket; a warning says so once.
"""

import ipaddress
import logging
from typing import Iterable, List, Optional, Sequence, Text, Union

from rasa.shared.exceptions import InvalidConfigException
from sanic.request import Request

logger = logging.getLogger(__name__)

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
FORWARDED_FOR = "X-Forwarded-For"
# Longer headers are not read at all (a few hundred proxies would not write this much).
MAX_FORWARDED_FOR_LENGTH = 4096
UNKNOWN = "unknown"


def parse_trusted_proxies(value: object) -> List[Network]:
    """The `trusted_proxies` credentials key: addresses or networks such as `10.0.0.0/8`."""
    example = 'trusted_proxies: ["10.0.0.0/8", "127.0.0.1"]'
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidConfigException(
            f"web_chat: `trusted_proxies` must be a list of addresses or networks, got {value!r}. Example: `{example}`."
        )
    networks = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise InvalidConfigException(
                f"web_chat: `trusted_proxies` holds {item!r}, which is not an IP address or network. "
                f"Example: `{example}`."
            ) from None
    return networks


def _address(text: Text) -> Optional[Address]:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddresses:
    """Finds the client address of a request under one `trusted_proxies` setting."""

    def __init__(self, trusted_proxies: Sequence[Network]) -> None:
        self._trusted = list(trusted_proxies)
        self._warned = False

    def _is_trusted(self, address: Optional[Address]) -> bool:
        return address is not None and any(address in network for network in self._trusted)

    def of(self, request: Request) -> Text:
        peer_text = request.ip or UNKNOWN
        peer = _address(peer_text)
        forwarded = request.headers.get(FORWARDED_FOR)
        if forwarded is None:
            return str(peer) if peer is not None else peer_text
        if not self._is_trusted(peer):
            self._warn_once(peer_text)
            return str(peer) if peer is not None else peer_text
        if len(forwarded) <= MAX_FORWARDED_FOR_LENGTH:
            client = self._rightmost_untrusted(forwarded.split(","))
            if client is not None:
                return str(client)
        # A trusted proxy wrote nothing usable: count the proxy itself.
        return str(peer)

    def _rightmost_untrusted(self, hops: Iterable[Text]) -> Optional[Address]:
        for hop in reversed(list(hops)):
            address = _address(hop)
            if address is None:
                return None
            if not self._is_trusted(address):
                return address
        return None

    def _warn_once(self, peer: Text) -> None:
        if self._warned or self._trusted:
            return
        self._warned = True
        logger.warning(
            f"web_chat: a request from {peer} carries {FORWARDED_FOR}, which is ignored because "
            "`trusted_proxies` is empty. Behind a reverse proxy every customer then counts as one client "
            "for the per-address rate limits; list the proxy's address in `trusted_proxies`."
        )
