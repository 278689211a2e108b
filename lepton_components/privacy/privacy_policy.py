"""What to do with each kind of personal data, each slot and each entity: the settings.

Read from the `tracker_store` section of endpoints.yml (see docs/privacy.md)::

    pii: {email: mask, phone: mask, card: mask, iban: mask}   # detected kinds
    slots: {order_number: keep, email: hash}                 # override detection
    entities: {email: hash}
    phone_regions: [US]
    allow: [support@lepton.example]
    hash_secret_env: LEPTON_PII_HASH_SECRET
    mask_logs: true

Every detected kind defaults to `mask`: forgetting a setting must not store raw data.
`hash` needs a secret from the environment: without one the store refuses to start
instead of falling back to an unkeyed (guessable: a phone number has few enough
possible values to hash them all) or a raw value.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Mapping, Optional, Sequence, Text, Tuple

import phonenumbers
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.privacy.pii_detectors import KINDS

logger = logging.getLogger(__name__)

MASK = "mask"
HASH = "hash"
KEEP = "keep"
ACTIONS = (MASK, HASH, KEEP)
DEFAULT_SECRET_ENV = "LEPTON_PII_HASH_SECRET"
# HMAC keys shorter than this are guessable; 32 random hex characters is what to use.
MIN_SECRET_LENGTH = 16
DEFAULT_PHONE_REGIONS = ("US",)
KNOWN_KEYS = frozenset({"pii", "slots", "entities", "phone_regions", "allow", "hash_secret_env", "mask_logs"})
EXAMPLE = (
    "  tracker_store:\n    type: lepton_components.privacy.masking_tracker_store.MaskingTrackerStore\n"
    "    inner: {type: SQL, dialect: sqlite, db: lepton-trackers.db}\n"
    "    pii: {email: mask, phone: mask, card: mask, iban: hash}\n"
    "    slots: {order_number: keep, email: hash}"
)


def _actions(key: Text, value: Any, names: Optional[Sequence[Text]] = None) -> Dict[Text, Text]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidConfigException(
            f"`tracker_store.{key}` must map names to one of {list(ACTIONS)}, got {value!r}. Example:\n{EXAMPLE}"
        )
    actions = {}
    for name, action in value.items():
        if names is not None and name not in names:
            raise InvalidConfigException(
                f"`tracker_store.{key}` names an unknown kind of personal data {name!r}; "
                f"allowed: {list(names)}. Example:\n{EXAMPLE}"
            )
        if action not in ACTIONS:
            raise InvalidConfigException(
                f"`tracker_store.{key}.{name}` must be one of {list(ACTIONS)}, got {action!r}. Example:\n{EXAMPLE}"
            )
        actions[str(name)] = action
    return actions


def _regions(value: Any) -> Tuple[Text, ...]:
    regions = [value] if isinstance(value, str) else value
    if not isinstance(regions, (list, tuple)) or not regions:
        raise InvalidConfigException(
            f"`tracker_store.phone_regions` must be a list of country codes, got {value!r}. "
            "Example: `phone_regions: [US, GB]`."
        )
    unknown = [region for region in regions if str(region).upper() not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise InvalidConfigException(
            f"`tracker_store.phone_regions` has codes libphonenumber does not know: {unknown}. "
            "Use ISO 3166 two-letter codes, e.g. `phone_regions: [US, GB]`."
        )
    return tuple(str(region).upper() for region in regions)


def _secret(env_name: Text, environ: Mapping[Text, Text]) -> bytes:
    secret = environ.get(env_name, "")
    if len(secret) < MIN_SECRET_LENGTH:
        problem = "is not set" if not secret else f"has {len(secret)} characters, fewer than {MIN_SECRET_LENGTH}"
        raise InvalidConfigException(
            f"`tracker_store` hashes personal data (an action `hash`), but the environment variable "
            f"{env_name} {problem}. Set it to a long random secret, e.g. `export {env_name}=$(openssl rand -hex 32)`, "
            "and keep it: a new secret gives every value a new token. Or use `mask` instead of `hash`."
        )
    return secret.encode("utf-8")


@dataclass(frozen=True)
class PrivacyPolicy:
    """The validated settings. `kinds` always has an action for every detected kind."""

    kinds: Mapping[Text, Text] = field(default_factory=lambda: {kind: MASK for kind in KINDS})
    slots: Mapping[Text, Text] = field(default_factory=dict)
    entities: Mapping[Text, Text] = field(default_factory=dict)
    phone_regions: Tuple[Text, ...] = DEFAULT_PHONE_REGIONS
    allow: FrozenSet[Text] = frozenset()
    hash_secret: Optional[bytes] = None
    mask_logs: bool = True

    @classmethod
    def from_settings(
        cls, settings: Mapping[Text, Any], environ: Optional[Mapping[Text, Text]] = None
    ) -> "PrivacyPolicy":
        """Validates the endpoint settings; raises `InvalidConfigException` naming the key."""
        unknown = sorted(set(settings) - KNOWN_KEYS)
        if unknown:
            logger.warning(
                f"`tracker_store` has keys the masking store does not use: {unknown} (known: {sorted(KNOWN_KEYS)})."
            )
        kinds = {kind: MASK for kind in KINDS}
        kinds.update(_actions("pii", settings.get("pii"), KINDS))
        slots = _actions("slots", settings.get("slots"))
        entities = _actions("entities", settings.get("entities"))
        allow = settings.get("allow") or []
        if not isinstance(allow, (list, tuple)) or not all(isinstance(value, str) for value in allow):
            raise InvalidConfigException(
                f"`tracker_store.allow` must be a list of values never to mask, got {allow!r}. "
                "Example: `allow: [support@lepton.example]`."
            )
        mask_logs = settings.get("mask_logs", True)
        if not isinstance(mask_logs, bool):
            raise InvalidConfigException(f"`tracker_store.mask_logs` must be true or false, got {mask_logs!r}.")
        secret = None
        if HASH in (*kinds.values(), *slots.values(), *entities.values()):
            env_name = str(settings.get("hash_secret_env") or DEFAULT_SECRET_ENV)
            secret = _secret(env_name, os.environ if environ is None else environ)
        return cls(
            kinds=kinds,
            slots=slots,
            entities=entities,
            phone_regions=_regions(settings.get("phone_regions", list(DEFAULT_PHONE_REGIONS))),
            allow=frozenset(value.strip().lower() for value in allow),
            hash_secret=secret,
            mask_logs=mask_logs,
        )
