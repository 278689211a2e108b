"""Who may read `/metrics`: metrics name intents and show traffic, so not the internet.

Configured by environment variables (read once, when the server starts):

* `LEPTON_METRICS_ALLOW`: `private` (default) serves loopback and private-network
  addresses (10/8, 172.16/12, 192.168/16, fc00::/7, ...), where Prometheus runs;
  `loopback` only 127.0.0.1 and ::1; `token` nobody without the token.
* `LEPTON_METRICS_TOKEN`: a secret of at least 16 characters; a request with
  `Authorization: Bearer <token>` is served from any address. Compared in constant time.

The address is the TCP peer, never a header a client could forge. A request carrying
`Forwarded`, `X-Forwarded-For` or `X-Real-IP` came through a reverse proxy, whose own
private address says nothing about the client, so it needs the token.
"""

import hmac
import ipaddress
import os
from dataclasses import dataclass
from typing import Mapping, Optional, Text, Tuple

from rasa.shared.exceptions import InvalidConfigException

ALLOW_ENV = "LEPTON_METRICS_ALLOW"
TOKEN_ENV = "LEPTON_METRICS_TOKEN"
PRIVATE, LOOPBACK, TOKEN_ONLY = "private", "loopback", "token"
MIN_TOKEN_LENGTH = 16
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


@dataclass(frozen=True)
class MetricsAccess:
    """The access rule for `/metrics`; `refusal(...)` says why a request is refused."""

    allow: Text = PRIVATE
    token: Optional[Text] = None

    @classmethod
    def from_env(cls) -> "MetricsAccess":
        allow = os.environ.get(ALLOW_ENV, PRIVATE).strip().lower() or PRIVATE
        if allow not in (PRIVATE, LOOPBACK, TOKEN_ONLY):
            raise InvalidConfigException(
                f"{ALLOW_ENV} must be one of `{PRIVATE}`, `{LOOPBACK}` or `{TOKEN_ONLY}`, got {allow!r}. "
                f"Unset it to serve /metrics to loopback and private addresses only."
            )
        token = os.environ.get(TOKEN_ENV) or None
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise InvalidConfigException(
                f"{TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters, got {len(token)}. Generate one with "
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
        scheme, _, presented = (headers.get("authorization") or "").partition(" ")
        if presented:
            if self.token is not None and scheme.lower() == "bearer" and hmac.compare_digest(
                presented.strip().encode("utf-8"), self.token.encode("utf-8")
            ):
                return None
            return 401, "wrong or unexpected credentials for /metrics"
        proxied = any(name in headers for name in PROXY_HEADERS)
        if not proxied and self._address_trusted(peer_ip):
            return None
        if self.token is None:
            return 403, (
                f"/metrics is served to {self.allow} addresses only (set {TOKEN_ENV} to allow "
                "scrapes with a bearer token from elsewhere)"
            )
        return 401, "/metrics needs `Authorization: Bearer <token>` from this address"
