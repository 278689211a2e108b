"""The operator console's `credentials.yml` entry, checked once at start-up.

Only the keys every part shares are read here; `handoff` and `review` are passed whole
to their parts, which check them with their own settings classes.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Text

from rasa.shared.exceptions import InvalidConfigException

CREDENTIALS_KEY = "lepton_components.operators.console.OperatorConsoleInput"
MIN_ADMIN_PASSWORD_LENGTH = 12
KNOWN_KEYS = ("admin_password", "secure_cookies", "session_hours", "handoff", "review")


def _problem(message: Text) -> InvalidConfigException:
    return InvalidConfigException(f"{CREDENTIALS_KEY} in credentials.yml: {message}")


@dataclass(frozen=True)
class OperatorSettings:
    """What the console needs before any part starts."""

    # Password of the `admin` account, created on the first start if no admin exists.
    admin_password: Optional[Text] = None
    # Session cookies travel over HTTPS only; turn off for http://localhost only.
    secure_cookies: bool = True
    session_hours: float = 12.0
    handoff: Dict[Text, Any] = field(default_factory=dict)
    review: Dict[Text, Any] = field(default_factory=dict)

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "OperatorSettings":
        values = dict(credentials or {})
        unknown = sorted(set(values) - set(KNOWN_KEYS))
        if unknown:
            raise _problem(f"unknown keys {unknown}; the keys are {list(KNOWN_KEYS)} (README.md, 'Operators').")
        password = values.get("admin_password")
        if password is not None:
            password = str(password)
            if password.startswith("${") or len(password) < MIN_ADMIN_PASSWORD_LENGTH:
                raise _problem(
                    f"`admin_password` must be at least {MIN_ADMIN_PASSWORD_LENGTH} characters, e.g. "
                    "`admin_password: ${LEPTON_OPERATOR_PASSWORD}` with the variable set (the Makefile "
                    "generates one into .lepton-operator-password), or remove the key and create accounts "
                    "with `python -m lepton_components.operators.access.accounts add`."
                )
        secure = values.get("secure_cookies", True)
        if not isinstance(secure, bool):
            raise _problem("`secure_cookies` must be true or false.")
        hours = values.get("session_hours", 12.0)
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 24 * 7:
            raise _problem("`session_hours` must be a number of hours above 0 and at most 168.")
        for part in ("handoff", "review"):
            if not isinstance(values.get(part) or {}, dict):
                raise _problem(f"`{part}` must be a mapping of settings.")
        return cls(
            admin_password=password,
            secure_cookies=secure,
            session_hours=float(hours),
            handoff=dict(values.get("handoff") or {}),
            review=dict(values.get("review") or {}),
        )
