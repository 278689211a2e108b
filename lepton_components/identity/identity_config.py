"""The `tracker_store` keys of `LinkedTrackerStore`, checked when the server starts.

Units follow what people configure: code lifetimes in minutes, link lifetimes in days.
A wrong value raises `InvalidConfigException` naming the key and showing the YAML to
write; an unknown key only warns (a typo would otherwise silently keep a default).
"""

import difflib
import logging
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Text

from rasa.shared.exceptions import InvalidConfigException

from lepton_components.identity.link_registry import LinkLimits

logger = logging.getLogger(__name__)

STORE_TYPE = "lepton_components.identity.linked_tracker_store.LinkedTrackerStore"


def _example(key: Text, value: Any) -> Text:
    return f"For example, in endpoints.yml:\n  tracker_store:\n    type: {STORE_TYPE}\n    {key}: {value}"


@dataclass(frozen=True)
class IdentityConfig:
    """Everything about linking that a deployment may change."""

    # Slots whose values follow the customer to linked conversations.
    shared_slots: List[Text] = field(default_factory=lambda: ["order_number", "email"])
    # Also carry the active form and its requested slot, so a form goes on elsewhere.
    share_active_loop: bool = True
    # How long a link code works after the bot gave it.
    code_ttl_minutes: float = 5.0
    # How long a link lasts before it ends by itself (the customer can end it earlier).
    link_ttl_days: float = 30.0
    # Wrong codes one conversation may send per window before it is locked out.
    max_failed_codes_per_conversation: int = 5
    # The window the cap counts in, and the lock-out's length.
    failed_code_window_minutes: float = 15.0

    @classmethod
    def from_endpoint(cls, settings: Dict[Text, Any]) -> "IdentityConfig":
        known = {f.name for f in fields(cls)}
        for key in settings:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" Did you mean `{close[0]}`?" if close else ""
                logger.warning(f"LinkedTrackerStore ignores the unknown tracker_store key `{key}`.{hint}")
        config = cls(**{key: value for key, value in settings.items() if key in known})
        config._validate()
        return config

    def _validate(self) -> None:
        slots = self.shared_slots
        if not isinstance(slots, list) or not all(isinstance(name, str) and name for name in slots):
            raise InvalidConfigException(
                f"`tracker_store.shared_slots` must be a list of slot names, got {slots!r}. "
                + _example("shared_slots", "[order_number, email]")
            )
        if not isinstance(self.share_active_loop, bool):
            raise InvalidConfigException(
                f"`tracker_store.share_active_loop` must be true or false, got {self.share_active_loop!r}. "
                + _example("share_active_loop", "true")
            )
        for key, integer in (
            ("code_ttl_minutes", False),
            ("link_ttl_days", False),
            ("max_failed_codes_per_conversation", True),
            ("failed_code_window_minutes", False),
        ):
            value = getattr(self, key)
            is_number = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
            if not is_number or value <= 0:
                kind = "a whole number" if integer else "a number"
                raise InvalidConfigException(
                    f"`tracker_store.{key}` must be {kind} > 0, got {value!r}. "
                    + _example(key, getattr(type(self), key, None) or 5)
                )

    @property
    def limits(self) -> LinkLimits:
        return LinkLimits(
            code_ttl_s=self.code_ttl_minutes * 60,
            link_ttl_s=self.link_ttl_days * 24 * 3600,
            max_failures_per_sender=self.max_failed_codes_per_conversation,
            failure_window_s=self.failed_code_window_minutes * 60,
        )
