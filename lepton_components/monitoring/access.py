"""Who may read `/metrics`: metrics name intents and show traffic, so not the internet.

Configured by environment variables (read once, when the server starts):

* `LEPTON_METRICS_ALLOW`: `loopback` (default) serves 127.0.0.1 and ::1 only;
  `private` also private-network addresses (10/8, 172.16/12, 192.168/16, fc00::/7, ...),
  for a Prometheus on the same network when nothing but it can reach the port from
  there; `token` nobody without the token.
* `LEPTON_METRICS_TOKEN`: a secret of at least 16 characters; a request with
  `Authorization: Bearer <token>` is served from any address. Compared in constant time.

The address is the TCP peer, never a header a client could forge. Private networks are
not trusted by default: behind an L4 load balancer, a Kubernetes service or Docker's
port proxy every client arrives from a private address. A request carrying `Forwarded`,
`X-Forwarded-For` or `X-Real-IP` came through a reverse proxy, whose own address says
nothing about the client, so it needs the token (a TCP proxy on the same host makes
every client loopback: use `token` there).
"""

import ipaddress
import os
from dataclasses import dataclass
from typing import Mapping, Optional, Text, Tuple

from rasa.shared.exceptions import InvalidConfigException

from lepton_components.server.bearer import MalformedAuthorization, presented_bearer, tokens_match

ALLOW_ENV = "LEPTON_METRICS_ALLOW"
TOKEN_ENV = "LEPTON_METRICS_TOKEN"
PRIVATE, LOOPBACK, TOKEN_ONLY = "private", "loopback", "token"
MIN_TOKEN_LENGTH = 16
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


@dataclass(frozen=True)
class MetricsAccess:
    """The access rule for `/metrics`; `refusal(...)` says why a request is refused."""

    allow: Text = LOOPBACK
    token: Optional[Text] = None

    @classmethod
    def from_env(cls) -> "MetricsAccess":
        allow = os.environ.get(ALLOW_ENV, LOOPBACK).strip().lower() or LOOPBACK
        if allow not in (LOOPBACK, PRIVATE, TOKEN_ONLY):
            raise InvalidConfigException(
                f"{ALLOW_ENV} must be one of `{LOOPBACK}`, `{PRIVATE}` or `{TOKEN_ONLY}`, got {allow!r}. "
                f"Unset it to serve /metrics to this machine (loopback) only."
            )
        token = os.environ.get(TOKEN_ENV) or None
        if token is not None and (len(token) < MIN_TOKEN_LENGTH or not token.isascii() or not token.isprintable()):
            raise InvalidConfigException(
                f"{TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} printable ASCII characters, got {len(token)} "
                "characters. Generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or unset it."
            )
        if allow == TOKEN_ONLY and token is None:
            raise InvalidConfigException(f"{ALLOW_ENV}={TOKEN_ONLY} needs {TOKEN_ENV} to be set.")
        return cls(allow, token)

    def _address_trusted(self, peer_ip: Text) -> bool:
        if self.allow == TOKEN_ONLY:
            return False
        try:
            address = ipaddress.ip_address(peer_ip)
        except ValueError:  # a Unix socket or an unknown peer
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if self.allow == LOOPBACK:
            return address.is_loopback
        return address.is_loopback or (address.is_private and not address.is_link_local)

    def refusal(self, peer_ip: Text, headers: Mapping[Text, Text]) -> Optional[Tuple[int, Text]]:
        """None to serve the request, else the HTTP status and the reason to answer."""
        authorization = headers.get("authorization")
        try:
            presented = presented_bearer(authorization)
        except MalformedAuthorization as problem:
            return 400, str(problem)
        if authorization is not None and authorization.strip():
            if self.token is not None and tokens_match(presented, self.token.encode("utf-8")):
                return None
            return 401, "wrong or unexpected credentials for /metrics"
        proxied = any(name in headers for name in PROXY_HEADERS)
        if not proxied and self._address_trusted(peer_ip):
            return None
        if self.token is None:
            return 403, (
                f"/metrics is served to {self.allow} addresses only: set {TOKEN_ENV} to allow "
                f"scrapes with a bearer token from elsewhere, or {ALLOW_ENV}={PRIVATE} to serve private networks"
            )
        return 401, "/metrics needs `Authorization: Bearer <token>` from this address"
