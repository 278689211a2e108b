"""The web chat's `credentials.yml` keys, checked at start-up with the fix in each message."""

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Text
from urllib.parse import urlsplit

from rasa.shared.exceptions import InvalidConfigException

from lepton_components.channels.web_chat.client_address import Network, parse_trusted_proxies
from lepton_components.channels.rate_limits import RateLimit
from lepton_components.channels.web_chat.rate_limits import parse_web_chat_rate_limits
from lepton_components.channels.web_chat.sessions import MIN_SECRET_LENGTH

CREDENTIALS_KEY = "lepton_components.channels.web_chat.WebChatInput"
SECRET_ENV = "LEPTON_WEB_CHAT_SECRET"
_SECRET_FIX = (
    f"Generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` (`make serve` writes one "
    f"to .lepton-web-chat-secret), export it as {SECRET_ENV} and reference it in credentials.yml:\n"
    f"{CREDENTIALS_KEY}:\n  session_secret: ${{{SECRET_ENV}}}\n"
    "Every replica needs the same secret; changing it ends every open session."
)


@dataclass
class WebChatSettings:
    """The channel's `credentials.yml` keys (see the README's table)."""

    session_secret: Optional[Text] = None
    allowed_origins: List[Text] = field(default_factory=list)
    max_message_length: int = 2000
    history_limit: int = 200
    title: Text = "Support"
    allow_typed_commands: bool = False
    # A token is valid this long after it was issued; the open widget renews it.
    session_idle_timeout_minutes: float = 24 * 60
    # No token of a session is valid this long after the session began.
    session_max_lifetime_minutes: float = 7 * 24 * 60
    max_event_streams_per_session: int = 3
    rate_limits: Optional[Dict[Text, Any]] = None
    trusted_proxies: List[Text] = field(default_factory=list)
    # Parsed from the keys above by `check()`.
    limits: Dict[Text, Optional[RateLimit]] = field(init=False, repr=False, default_factory=dict)
    proxy_networks: List[Network] = field(init=False, repr=False, default_factory=list)

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "WebChatSettings":
        credentials = dict(credentials or {})
        known = {item.name for item in fields(cls) if item.init}
        unknown = sorted(set(credentials) - known)
        if unknown:
            raise InvalidConfigException(
                f"The web_chat channel got unknown key(s) {', '.join(map(str, unknown))} in credentials.yml. "
                f"Known keys: {', '.join(sorted(known))}."
            )
        return cls(**credentials)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        self._check_secret()
        if not isinstance(self.allowed_origins, list) or not all(
            isinstance(origin, str) and _is_origin(origin) for origin in self.allowed_origins
        ):
            raise InvalidConfigException(
                f"web_chat: `allowed_origins` must be a list of origins such as "
                f'["https://shop.example.com"] (scheme, host and optional port; no path), '
                f"got {self.allowed_origins!r}."
            )
        for key in ("max_message_length", "history_limit", "max_event_streams_per_session"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfigException(
                    f"web_chat: `{key}` must be a whole number >= 1, got {value!r}. "
                    f"Example: `{key}: {_default(key)}`."
                )
        for key in ("session_idle_timeout_minutes", "session_max_lifetime_minutes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidConfigException(
                    f"web_chat: `{key}` must be a number of minutes > 0, got {value!r}. "
                    f"Example: `{key}: {_default(key):g}`."
                )
        if self.session_idle_timeout_minutes > self.session_max_lifetime_minutes:
            raise InvalidConfigException(
                f"web_chat: `session_idle_timeout_minutes` ({self.session_idle_timeout_minutes:g}) must not exceed "
                f"`session_max_lifetime_minutes` ({self.session_max_lifetime_minutes:g})."
            )
        if not isinstance(self.allow_typed_commands, bool):
            raise InvalidConfigException(
                f"web_chat: `allow_typed_commands` must be true or false, got {self.allow_typed_commands!r}."
            )
        if not isinstance(self.title, str) or not self.title.strip():
            raise InvalidConfigException(f"web_chat: `title` must be a non-empty text, got {self.title!r}.")
        self.limits = parse_web_chat_rate_limits(self.rate_limits)
        self.proxy_networks = parse_trusted_proxies(self.trusted_proxies)

    def _check_secret(self) -> None:
        secret = self.session_secret
        if secret is None or secret == "":
            raise InvalidConfigException(
                "web_chat: `session_secret` is missing. The server signs every chat session with it, so that "
                f"no client can make up a session. {_SECRET_FIX}"
            )
        if not isinstance(secret, str) or len(secret.strip()) < MIN_SECRET_LENGTH:
            length = len(secret.strip()) if isinstance(secret, str) else "not a text"
            raise InvalidConfigException(
                f"web_chat: `session_secret` must be a random text of at least {MIN_SECRET_LENGTH} characters, "
                f"got {length}. {_SECRET_FIX}"
            )
        self.session_secret = secret.strip()

    @property
    def idle_timeout_s(self) -> float:
        return float(self.session_idle_timeout_minutes) * 60.0

    @property
    def max_lifetime_s(self) -> float:
        return float(self.session_max_lifetime_minutes) * 60.0


def _default(key: Text) -> Any:
    return WebChatSettings.__dataclass_fields__[key].default


def _is_origin(value: Text) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.path in ("", "/") and not (
        parts.query or parts.fragment
    )
