"""Token buckets for public routes: how many requests one key (a sender, an address) may make.

Each message costs an NLU pass and database writes, so channels rate limit before any
work is done. A bucket holds up to `burst` requests and refills at `per_minute`; an
empty bucket means 429 with `Retry-After`. Buckets live in the memory of one server
process: with N replicas behind a load balancer that spreads requests, a client gets up
to N times the limit. That bounds what one client can make a replica do, which is the
point; an exact global count would cost a Redis round trip per request.

Hand-written rather than a library: the one installed (pyrate-limiter) comes only with
the test tools, and a bucket is a few lines of arithmetic.
"""

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Text, Tuple

from rasa.shared.exceptions import InvalidConfigException

# Keys of buckets remembered per limit; the least recently used is forgotten first, so
# memory stays bounded whatever number of addresses or sessions calls.
MAX_TRACKED_KEYS = 100_000
MESSAGES_PER_SENDER = "messages_per_sender"


@dataclass(frozen=True)
class RateLimit:
    """`burst` requests at once, then `per_minute` on average."""

    per_minute: float
    burst: int

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


def parse_rate_limits(
    channel: Text, raw: Any, defaults: Mapping[Text, RateLimit], example: Text
) -> Dict[Text, Optional[RateLimit]]:
    """A channel's `rate_limits` credentials key, `defaults` filled in; `null` switches a limit off."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InvalidConfigException(f"{channel}: `rate_limits` must be a mapping, got {raw!r}. Example:\n{example}")
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise InvalidConfigException(
            f"{channel}: unknown `rate_limits` key(s) {', '.join(map(str, unknown))}. "
            f"Known keys: {', '.join(defaults)}. Example:\n{example}"
        )
    limits: Dict[Text, Optional[RateLimit]] = dict(defaults)
    for name, value in raw.items():
        limits[name] = None if value is None else _limit(channel, name, value, defaults[name])
    return limits


def _limit(channel: Text, name: Text, value: Any, default: RateLimit) -> RateLimit:
    example = f"`rate_limits.{name}: {{per_minute: {default.per_minute:g}, burst: {default.burst}}}`"
    if not isinstance(value, Mapping) or set(value) - {"per_minute", "burst"}:
        raise InvalidConfigException(
            f"{channel}: `rate_limits.{name}` must be a mapping with `per_minute` and `burst` (or null for no "
            f"limit), got {value!r}. Example: {example}."
        )
    per_minute, burst = value.get("per_minute", default.per_minute), value.get("burst", default.burst)
    if isinstance(per_minute, bool) or not isinstance(per_minute, (int, float)) or not per_minute > 0:
        raise InvalidConfigException(
            f"{channel}: `rate_limits.{name}.per_minute` must be a number > 0, got {per_minute!r}. Example: {example}."
        )
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise InvalidConfigException(
            f"{channel}: `rate_limits.{name}.burst` must be a whole number >= 1, got {burst!r}. Example: {example}."
        )
    return RateLimit(float(per_minute), burst)


# What one customer may send on any channel: a person types a few messages a minute,
# quick replies come faster in bursts.
DEFAULT_PER_SENDER = RateLimit(per_minute=20, burst=10)


class TokenBuckets:
    """One token bucket per key for one limit, in this process."""

    def __init__(
        self, limit: RateLimit, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_TRACKED_KEYS
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._max_keys = max_keys
        # key -> (tokens left, time of that count)
        self._buckets: "OrderedDict[Text, Tuple[float, float]]" = OrderedDict()

    def take(self, key: Text) -> Optional[int]:
        """Takes one token for `key`: None if allowed, else the seconds to wait (>= 1)."""
        now = self._clock()
        tokens, then = self._buckets.pop(key, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - then) * self.limit.per_second)
        if tokens >= 1.0:
            self._remember(key, tokens - 1.0, now)
            return None
        self._remember(key, tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.limit.per_second))

    def _remember(self, key: Text, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


@dataclass(frozen=True)
class Limited:
    """A refused request: which limit, and when to try again."""

    name: Text
    limit: RateLimit
    retry_after_s: int


class RateLimiter:
    """All of a channel's limits; `check(name, key)` says whether a request may go on."""

    def __init__(self, limits: Mapping[Text, Optional[RateLimit]], clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets = {name: TokenBuckets(limit, clock) for name, limit in limits.items() if limit is not None}

    def check(self, name: Text, key: Text) -> Optional[Limited]:
        buckets = self._buckets.get(name)
        if buckets is None:
            return None
        wait = buckets.take(key)
        return None if wait is None else Limited(name, buckets.limit, wait)
