"""The `handoff:` block of the operator console's `credentials.yml` entry, checked at start-up.

    lepton_components.operators.console.OperatorConsoleInput:
      handoff:
        timezone: America/New_York
        opening_hours: {mon: "08:00-20:00", ..., sat: "09:00-17:00", sun: closed}
        queue: support
        wait_timeout_minutes: 30
        handoff_actions: [utter_handoff]
        webhook: {url: https://helpdesk.example/lepton, secret: ${LEPTON_HANDOFF_WEBHOOK_SECRET}}
        helpdesk_token: ${LEPTON_HELPDESK_TOKEN}

The console is built when Rasa reads credentials.yml, so a bad value stops the server
before it serves, with the key and the fix in the message (docs/handoff.md).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Text, Tuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rasa.shared.exceptions import InvalidConfigException

from lepton_components.operators.access.accounts import QUEUE_PATTERN
from lepton_components.operators.handoff.hours import DEFAULT_OPENING_HOURS, BadOpeningHours, OpeningHours
from lepton_components.operators.settings import CREDENTIALS_KEY

KNOWN_KEYS = (
    "timezone",
    "opening_hours",
    "queue",
    "wait_timeout_minutes",
    "handoff_actions",
    "handoff_intents",
    "webhook",
    "helpdesk_token",
)
WEBHOOK_KEYS = ("url", "secret", "timeout_seconds")
MIN_SECRET_LENGTH = 32
MAX_WAIT_TIMEOUT_MINUTES = 7 * 24 * 60
_SECRET_FIX = "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`, export it and write"


def _problem(key: Text, message: Text) -> InvalidConfigException:
    return InvalidConfigException(f"{CREDENTIALS_KEY} in credentials.yml: `handoff.{key}` {message} (docs/handoff.md)")


@dataclass(frozen=True)
class WebhookSettings:
    """Where events go for a helpdesk (Zendesk, Freshdesk, Chatwoot): signed JSON POSTs."""

    url: Text
    secret: Text
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class HandoffSettings:
    """What the handoff part needs: when to queue, where, for how long, and who else hears of it."""

    timezone: Text = "America/New_York"
    opening_hours: OpeningHours = field(
        default_factory=lambda: OpeningHours.parse(ZoneInfo("America/New_York"), DEFAULT_OPENING_HOURS)
    )
    queue: Text = "support"
    wait_timeout_minutes: float = 30.0
    handoff_actions: Tuple[Text, ...] = ("utter_handoff",)
    # A handoff after one of these intents is "customer_asked", any other "bot_gave_up".
    handoff_intents: Tuple[Text, ...] = ("human_handoff",)
    webhook: Optional[WebhookSettings] = None
    helpdesk_token: Optional[Text] = None

    @property
    def wait_timeout_seconds(self) -> float:
        return self.wait_timeout_minutes * 60.0

    @classmethod
    def from_mapping(cls, values: Optional[Dict[Text, Any]]) -> "HandoffSettings":
        values = dict(values or {})
        unknown = sorted(str(key) for key in set(values) - set(KNOWN_KEYS))
        if unknown:
            raise InvalidConfigException(
                f"{CREDENTIALS_KEY} in credentials.yml: unknown `handoff` keys {unknown}; the keys are "
                f"{list(KNOWN_KEYS)} (docs/handoff.md)."
            )
        zone_name = values.get("timezone", cls.timezone)
        hours = _opening_hours(zone_name, values.get("opening_hours", DEFAULT_OPENING_HOURS))
        return cls(
            timezone=zone_name,
            opening_hours=hours,
            queue=_queue(values.get("queue", cls.queue)),
            wait_timeout_minutes=_wait_timeout(values.get("wait_timeout_minutes", cls.wait_timeout_minutes)),
            handoff_actions=_names("handoff_actions", values.get("handoff_actions", list(cls.handoff_actions))),
            handoff_intents=_names("handoff_intents", values.get("handoff_intents", list(cls.handoff_intents))),
            webhook=_webhook(values.get("webhook")),
            helpdesk_token=_secret("helpdesk_token", values.get("helpdesk_token"), "LEPTON_HELPDESK_TOKEN"),
        )


def _zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise _problem("timezone", "must be an IANA time zone name such as `America/New_York` or `Europe/Berlin`")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _problem(
            "timezone",
            f"is {name!r}, which is not an IANA time zone name; write one such as `America/New_York` or "
            "`Europe/Berlin` (if it is one, the system lacks time zone data: `pip install tzdata`)",
        ) from None


def _opening_hours(zone_name: Any, mapping: Any) -> OpeningHours:
    zone = _zone(zone_name)
    try:
        return OpeningHours.parse(zone, mapping)
    except BadOpeningHours as problem:
        raise _problem("opening_hours", f"is wrong: {problem}") from None


def _queue(value: Any) -> Text:
    if not isinstance(value, str) or not QUEUE_PATTERN.fullmatch(value):
        raise _problem(
            "queue",
            f"is {value!r}; it must be a queue name of 1 to 40 characters of a-z, 0-9, '.', '_' or '-' such as "
            "`support`, as agents' accounts list their queues",
        )
    return value


def _wait_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_WAIT_TIMEOUT_MINUTES:
        raise _problem(
            "wait_timeout_minutes",
            f"is {value!r}; it must be a number of minutes above 0 and at most {MAX_WAIT_TIMEOUT_MINUTES} "
            "(how long a conversation waits for an agent before the bot takes it back), e.g. 30",
        )
    return float(value)


def _names(key: Text, value: Any) -> Tuple[Text, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(name, str) and name.strip() == name and name for name in value)
    ):
        example = "[utter_handoff]" if key == "handoff_actions" else "[human_handoff]"
        raise _problem(key, f"is {value!r}; it must be a non-empty list of names from the domain, e.g. {example}")
    return tuple(value)


def _secret(key: Text, value: Any, variable: Text) -> Optional[Text]:
    if value is None:
        return None
    if not isinstance(value, str) or value.startswith("${") or len(value) < MIN_SECRET_LENGTH:
        raise _problem(
            key,
            f"must be at least {MIN_SECRET_LENGTH} characters; {_SECRET_FIX} `{key}: ${{{variable}}}` "
            "(an unset variable stays `${...}`), or remove the key",
        )
    return value


def _webhook(value: Any) -> Optional[WebhookSettings]:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _problem("webhook", "must be a mapping with `url` and `secret` (and optionally `timeout_seconds`)")
    unknown = sorted(str(key) for key in set(value) - set(WEBHOOK_KEYS))
    if unknown:
        raise _problem("webhook", f"has unknown keys {unknown}; its keys are {list(WEBHOOK_KEYS)}")
    url = value.get("url")
    if url is None:
        if value.get("secret") is not None:
            raise _problem("webhook.url", "is missing; set the helpdesk's https:// URL or remove `webhook`")
        return None
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _problem("webhook.url", f"is {url!r}; it must be an http:// or https:// URL such as https://helpdesk.example/lepton")
    if value.get("secret") is None:
        raise _problem(
            "webhook.secret",
            f"is required with `webhook.url`: the receiver checks each event's signature with it; {_SECRET_FIX} "
            "`secret: ${LEPTON_HANDOFF_WEBHOOK_SECRET}`",
        )
    secret = _secret("webhook.secret", value.get("secret"), "LEPTON_HANDOFF_WEBHOOK_SECRET")
    timeout = value.get("timeout_seconds", WebhookSettings.timeout_seconds)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
        raise _problem("webhook.timeout_seconds", f"is {timeout!r}; it must be a number of seconds above 0 and at most 60, e.g. 5")
    return WebhookSettings(url=url, secret=str(secret), timeout_seconds=float(timeout))
