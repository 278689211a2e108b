"""The `lock_store` section of endpoints.yml for `AtomicRedisLockStore`, checked at start-up.

Rasa hands a lock store its section as text or numbers and never checks them: a port
of "63a79" fails on the first message, a quoted `use_ssl: "false"` switches TLS on,
and an invalid `key_prefix` falls back to the prefix every bot shares. Here each value
is checked before anything connects, and a bad one raises `InvalidConfigException`
naming the key, the value and the YAML to write.
"""

import inspect
import math
from typing import Any, Dict, Optional, Text, Tuple

from rasa.core.lock_store import RedisLockStore
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.utils.io import raise_warning
from rasa.utils.endpoints import EndpointConfig

# What endpoints.yml names as `lock_store.type` (the examples in error messages show it).
STORE_TYPE = "lepton_components.stores.atomic_redis_lock_store.AtomicRedisLockStore"

# Seconds to wait for Redis to answer a command / to accept a connection. Rasa waits
# 10 s, on the event loop; a healthy Redis answers in well under a
# millisecond, and a message waits this long before it is refused.
DEFAULT_SOCKET_TIMEOUT_IN_SECONDS = 1.0
DEFAULT_SOCKET_CONNECT_TIMEOUT_IN_SECONDS = 1.0
MAX_SOCKET_TIMEOUT_IN_SECONDS = 10.0

# Seconds between checks whether a waiting ticket's turn has come. Rasa's callers
# leave it at `LockStore.lock`'s 1 s, so a message arriving while its conversation
# is busy waited up to a second longer than needed; a check is one cheap script call.
DEFAULT_WAIT_TIME_IN_SECONDS = 0.05
MAX_WAIT_TIME_IN_SECONDS = 10.0

# Most tickets (the turn being handled plus those waiting) one conversation may hold.
# Every check for a turn reads the whole queue, so an unbounded queue costs Redis
# time growing with its square; a customer rarely has more than a few messages in
# flight. Further messages get `LockQueueFull` (HTTP 503 in Lepton's channels).
DEFAULT_MAX_TICKETS_PER_CONVERSATION = 20
MAX_MAX_TICKETS_PER_CONVERSATION = 10_000

# The keyword arguments `RedisLockStore.__init__` accepts, plus ours: the keys allowed
# in the `lock_store` section of endpoints.yml (besides `type` and `url`).
_REDIS_LOCK_STORE_KEYS = frozenset(inspect.signature(RedisLockStore.__init__).parameters) - {"self"}
KNOWN_KEYS = _REDIS_LOCK_STORE_KEYS | {
    "wait_time_in_seconds",
    "socket_connect_timeout",
    "max_tickets_per_conversation",
}


def store_settings(endpoint_config: Optional[EndpointConfig], overrides: Dict[Text, Any]) -> Dict[Text, Any]:
    """The checked settings, with defaults filled in, from the endpoint section and
    `RedisLockStore`-style keyword arguments (which win)."""
    settings: Dict[Text, Any] = {}
    if endpoint_config is not None:
        settings.update(endpoint_config.kwargs)
        if endpoint_config.url:
            settings["host"] = endpoint_config.url
    settings.update(overrides)
    return _validated(settings)


def connection_settings(settings: Dict[Text, Any]) -> Dict[Text, Any]:
    """Keyword arguments for `redis.Redis` and `redis.asyncio.Redis` alike."""
    return {
        "host": settings.get("host", "localhost"),
        "port": settings.get("port", 6379),
        "db": settings.get("db", 1),
        "username": settings.get("username"),
        "password": settings.get("password"),
        "ssl": settings.get("use_ssl", False),
        "ssl_certfile": settings.get("ssl_certfile"),
        "ssl_keyfile": settings.get("ssl_keyfile"),
        "ssl_ca_certs": settings.get("ssl_ca_certs"),
        "socket_timeout": settings["socket_timeout"],
        "socket_connect_timeout": settings["socket_connect_timeout"],
    }


def lifetime_in_microseconds(lock_lifetime: Any) -> int:
    """A ticket lifetime, refusing values that would make every ticket born expired."""
    try:
        seconds = float(lock_lifetime)
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise InvalidConfigException(
            f"The ticket lock lifetime must be a number of seconds > 0, got {lock_lifetime!r}. "
            "Set the TICKET_LOCK_LIFETIME environment variable to e.g. 60, or leave it unset."
        )
    return max(1, round(seconds * 1_000_000))


def _example(line: Text) -> Text:
    return f"Example:\n\nlock_store:\n  type: {STORE_TYPE}\n  url: 127.0.0.1\n  {line}\n"


def _as_integer(value: Any) -> Optional[int]:
    """`value` as an int; None for booleans, fractions and non-numbers.

    Strings count: Rasa substitutes `${VAR}` in endpoints.yml as text.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _check_integer(
    settings: Dict[Text, Any],
    key: Text,
    example: Text,
    default: Optional[int] = None,
    bounds: Optional[Tuple[int, int]] = None,
) -> None:
    """`settings[key]` as an int within `bounds`, or `default` when absent (if given)."""
    if key not in settings and default is None:
        return
    value = settings.get(key, default)
    number = _as_integer(value)
    if number is None or (bounds is not None and not bounds[0] <= number <= bounds[1]):
        allowed = f" from {bounds[0]} to {bounds[1]}" if bounds else ""
        raise InvalidConfigException(
            f"`lock_store.{key}` must be an integer{allowed}, got {value!r}. {_example(example)}"
        )
    settings[key] = number


def _check_seconds(settings: Dict[Text, Any], key: Text, default: float, maximum: float) -> None:
    """`settings[key]` as seconds in (0, maximum], or `default` when absent."""
    value = settings.get(key, default)
    seconds = math.nan
    if not isinstance(value, bool):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            pass
    if not 0 < seconds <= maximum:  # also refuses NaN
        raise InvalidConfigException(
            f"`lock_store.{key}` must be a number of seconds > 0 and <= {maximum:g}, got {value!r}. "
            + _example(f"{key}: {default:g}")
        )
    settings[key] = seconds


def _validated(settings: Dict[Text, Any]) -> Dict[Text, Any]:
    """Check values Rasa would silently misuse; warn about and drop unknown keys."""
    unknown = sorted(set(settings) - KNOWN_KEYS)
    if unknown:
        raise_warning(
            f"Ignoring unknown `lock_store` keys {unknown} for AtomicRedisLockStore; "
            f"known keys are `url` and {sorted(KNOWN_KEYS - {'host'})}."
        )
    checked = {key: value for key, value in settings.items() if key in KNOWN_KEYS}
    _check_integer(checked, "port", "port: 6379", bounds=(1, 65535))
    _check_integer(checked, "db", "db: 1")
    _check_integer(
        checked,
        "max_tickets_per_conversation",
        f"max_tickets_per_conversation: {DEFAULT_MAX_TICKETS_PER_CONVERSATION}",
        default=DEFAULT_MAX_TICKETS_PER_CONVERSATION,
        bounds=(1, MAX_MAX_TICKETS_PER_CONVERSATION),
    )
    _check_seconds(checked, "wait_time_in_seconds", DEFAULT_WAIT_TIME_IN_SECONDS, MAX_WAIT_TIME_IN_SECONDS)
    _check_seconds(checked, "socket_timeout", DEFAULT_SOCKET_TIMEOUT_IN_SECONDS, MAX_SOCKET_TIMEOUT_IN_SECONDS)
    _check_seconds(
        checked, "socket_connect_timeout", DEFAULT_SOCKET_CONNECT_TIMEOUT_IN_SECONDS, MAX_SOCKET_TIMEOUT_IN_SECONDS
    )
    use_ssl = checked.get("use_ssl", False)
    if not isinstance(use_ssl, bool):
        # A quoted "false" would switch TLS on.
        raise InvalidConfigException(
            f"`lock_store.use_ssl` must be true or false, got {use_ssl!r}. {_example('use_ssl: true')}"
        )
    key_prefix = checked.get("key_prefix")
    if key_prefix is not None and not (isinstance(key_prefix, str) and key_prefix.isalnum()):
        # Rasa would warn and fall back to the shared default prefix, silently
        # mixing this bot's locks with any other bot's on the same Redis db.
        raise InvalidConfigException(
            f"`lock_store.key_prefix` must be letters and digits only, got {key_prefix!r}. "
            "Example: `key_prefix: lepton`."
        )
    return checked
