"""A Redis ticket-lock store whose every read-modify-write happens inside Redis.

Rasa 3.6's `RedisLockStore` issues a ticket by GET, modify in Python, SET
(`rasa/core/lock_store.py` L263-277, rasa issue 9213). Two replicas that do this at
the same moment both read ticket list N, both append, and the second SET erases the
first ticket: two messages of one conversation are then processed side by side.
Here each change of a lock is one Lua script, which Redis runs with nothing else
interleaved, so across any number of processes:

* `issue_ticket` never hands out the same number twice and never loses a ticket;
* finishing a ticket, pruning expired ones and deleting an empty lock are one step,
  so a ticket issued meanwhile by another replica is never deleted with the lock;
* `save_lock` is compare-and-set: it only writes over the value `get_lock` read.

Stored values keep the JSON shape of `TicketLock.dumps()` plus a `last_issued`
counter, so Rasa's own `RedisLockStore.get_lock` can still read them. The counter
keeps ticket numbers rising while a lock exists: a worker whose ticket expired
cannot later finish (remove) a newer worker's ticket that reused its number.

Ticket expiry is judged by the caller's clock, as in Rasa's `TicketLock`, so replica
clocks must agree to well within the lock lifetime (60 s by default): run NTP.

Enable it in `endpoints.yml`::

    lock_store:
      type: lepton_components.stores.atomic_redis_lock_store.AtomicRedisLockStore
      url: 127.0.0.1
      port: 6379
      db: 1
      key_prefix: lepton
      # optional: seconds between "is it my turn?" checks (Rasa: 1)
      wait_time_in_seconds: 0.05
"""

import asyncio
import inspect
import json
import logging
import time
from collections import deque
from contextlib import contextmanager
from typing import Any, AsyncContextManager, Deque, Dict, Iterator, Optional, Text

import redis
from rasa.core.lock import NO_TICKET_ISSUED, Ticket, TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.shared.exceptions import ConnectionException, InvalidConfigException
from rasa.shared.utils.io import raise_warning
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

# Helpers shared by the scripts below. A ticket is kept as the JSON string Rasa's
# `Ticket.dumps()` wrote, so values never lose precision by being re-encoded.
# "Live" follows `Ticket.has_expired`: a ticket is dead once `now > expires`.
_LUA_HELPERS = """
local function decode_lock(raw, now)
  local data = cjson.decode(raw)
  local live = {}
  local last_issued = tonumber(data['last_issued']) or -1
  for _, serialised in ipairs(data['tickets'] or {}) do
    local ticket = cjson.decode(serialised)
    if ticket['number'] > last_issued then last_issued = ticket['number'] end
    if now <= ticket['expires'] then
      table.insert(live, {number = ticket['number'], serialised = serialised})
    end
  end
  return data['conversation_id'], live, last_issued
end

local function encode_lock(conversation_id, live, last_issued)
  local tickets = {}
  for i, ticket in ipairs(live) do tickets[i] = cjson.encode(ticket.serialised) end
  return '{"conversation_id": ' .. cjson.encode(conversation_id)
    .. ', "tickets": [' .. table.concat(tickets, ', ')
    .. '], "last_issued": ' .. string.format('%d', last_issued) .. '}'
end
"""

# KEYS[1]: lock key. ARGV: now, expiry of the new ticket (as text), conversation id.
# Returns the new ticket's number.
_ISSUE_TICKET_LUA = (
    _LUA_HELPERS
    + """
local now = tonumber(ARGV[1])
local conversation_id, live, last_issued = ARGV[3], {}, -1
local raw = redis.call('GET', KEYS[1])
if raw then conversation_id, live, last_issued = decode_lock(raw, now) end
local number = last_issued + 1
table.insert(live, {
  number = number,
  serialised = '{"number": ' .. string.format('%d', number) .. ', "expires": ' .. ARGV[2] .. '}'
})
redis.call('SET', KEYS[1], encode_lock(conversation_id, live, number))
return number
"""
)

# KEYS[1]: lock key. ARGV: now, number of a ticket to remove ('' for none), '1' to
# delete the lock once no live ticket is left. Drops expired tickets. Returns the
# stored lock afterwards, or nil when there is none (any more).
_PRUNE_LUA = (
    _LUA_HELPERS
    + """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local finished = tonumber(ARGV[2])
local conversation_id, live, last_issued = decode_lock(raw, tonumber(ARGV[1]))
local kept = {}
for _, ticket in ipairs(live) do
  if ticket.number ~= finished then table.insert(kept, ticket) end
end
if #kept == 0 and ARGV[3] == '1' then
  redis.call('DEL', KEYS[1])
  return false
end
local pruned = encode_lock(conversation_id, kept, last_issued)
if pruned ~= raw then redis.call('SET', KEYS[1], pruned) end
return pruned
"""
)

# KEYS[1]: lock key. ARGV: the value the caller read ('' if there was none), the new
# value. Returns 1 if written, 0 if the stored value changed since it was read.
_COMPARE_AND_SET_LUA = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

# Seconds between checks whether a waiting ticket's turn has come. Rasa's callers
# leave it at `LockStore.lock`'s 1 s, so a message arriving while its conversation
# is busy waited up to a second longer than needed; a check is one cheap script call.
DEFAULT_WAIT_TIME_IN_SECONDS = 0.05

# The keyword arguments `RedisLockStore.__init__` accepts, plus ours: the keys allowed
# in the `lock_store` section of endpoints.yml (besides `type` and `url`).
_REDIS_LOCK_STORE_KEYS = frozenset(inspect.signature(RedisLockStore.__init__).parameters) - {"self"}
_KNOWN_KEYS = _REDIS_LOCK_STORE_KEYS | {"wait_time_in_seconds"}


class LockStoreUnavailable(LockError, ConnectionException):
    """Redis cannot be reached, so no message may be processed.

    A `ConnectionException` too, so callers can map every "backing service down"
    error to HTTP 503 with one `except`.
    """


class LockConflict(LockError):
    """`save_lock` was given a lock that another process changed after it was read."""


class StoredTicketLock(TicketLock):
    """A `TicketLock` that remembers how it was stored.

    `stored_as` is the exact value read from Redis (None for a new lock), which
    `save_lock` compares before writing. `highest_issued` is the largest ticket
    number this lock ever handed out, so new numbers keep rising after expiries.
    """

    def __init__(
        self,
        conversation_id: Text,
        tickets: Optional[Deque[Ticket]] = None,
        highest_issued: int = NO_TICKET_ISSUED,
        stored_as: Optional[bytes] = None,
    ) -> None:
        super().__init__(conversation_id, tickets)
        self.highest_issued = highest_issued
        self.stored_as = stored_as

    @classmethod
    def from_stored(cls, stored: bytes) -> "StoredTicketLock":
        """Parse a value written by this store or by Rasa's `RedisLockStore`."""
        data = json.loads(stored)
        tickets = deque(Ticket.from_dict(json.loads(ticket)) for ticket in data.get("tickets", []))
        highest_issued = max([int(data.get("last_issued", NO_TICKET_ISSUED))] + [t.number for t in tickets])
        return cls(data.get("conversation_id"), tickets, highest_issued, stored)

    @property
    def last_issued(self) -> int:
        """Number of the newest ticket ever issued, even if it expired since."""
        return max(super().last_issued, self.highest_issued)

    def issue_ticket(self, lifetime: float) -> int:
        """Issue a ticket numbered after every ticket this lock ever issued."""
        number = super().issue_ticket(lifetime)
        self.highest_issued = number
        return number

    def dumps(self) -> Text:
        """`TicketLock.dumps()` plus the `last_issued` counter."""
        tickets = [ticket.dumps() for ticket in self.tickets]
        return json.dumps(
            {"conversation_id": self.conversation_id, "tickets": tickets, "last_issued": self.last_issued}
        )


def _lock_store_settings(endpoint_config: EndpointConfig) -> Dict[Text, Any]:
    """`RedisLockStore` keyword arguments from the `lock_store` endpoint section."""
    settings: Dict[Text, Any] = dict(endpoint_config.kwargs)
    if endpoint_config.url:
        settings["host"] = endpoint_config.url
    return settings


def _validated(settings: Dict[Text, Any]) -> Dict[Text, Any]:
    """Check values Rasa would silently misuse; warn about and drop unknown keys."""
    unknown = sorted(set(settings) - _KNOWN_KEYS)
    if unknown:
        raise_warning(
            f"Ignoring unknown `lock_store` keys {unknown} for AtomicRedisLockStore; "
            f"known keys are `url` and {sorted(_KNOWN_KEYS - {'host'})}."
        )
    checked = {key: value for key, value in settings.items() if key in _KNOWN_KEYS}
    for key in ("port", "db"):
        if key in checked:
            try:
                checked[key] = int(checked[key])
            except (TypeError, ValueError):
                raise InvalidConfigException(
                    f"`lock_store.{key}` must be an integer, got {checked[key]!r}. "
                    f"Example:\n\nlock_store:\n  type: {AtomicRedisLockStore.__module__}."
                    f"AtomicRedisLockStore\n  url: 127.0.0.1\n  port: 6379\n  db: 1\n"
                )
    wait = checked.get("wait_time_in_seconds", DEFAULT_WAIT_TIME_IN_SECONDS)
    try:
        checked["wait_time_in_seconds"] = float(wait)
    except (TypeError, ValueError):
        checked["wait_time_in_seconds"] = 0.0
    if checked["wait_time_in_seconds"] <= 0:
        raise InvalidConfigException(
            f"`lock_store.wait_time_in_seconds` must be a number of seconds > 0, got {wait!r}. "
            f"Example: `wait_time_in_seconds: {DEFAULT_WAIT_TIME_IN_SECONDS}`."
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


class AtomicRedisLockStore(RedisLockStore):
    """Rasa's ticket lock on Redis, with every update made atomic by a Lua script.

    Semantics otherwise follow Rasa's `LockStore`: `lock()` issues a ticket, waits
    until it is first in line, and removes it afterwards (deleting the lock when no
    one else waits); tickets expire after `lock_lifetime` seconds so a crashed
    worker cannot block a conversation for ever (they are not renewed, so a message
    handled for longer than that loses exclusivity, as in Rasa). A waiter whose own
    ticket expires before its turn gets `LockError` instead of waiting for ever.
    Redis errors raise `LockStoreUnavailable` naming the server instead of letting
    a message through.
    """

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **settings: Any) -> None:
        """Connect lazily to Redis (a replica may start while Redis restarts).

        Rasa calls this with `endpoint_config` only (`rasa/core/lock_store.py`
        L334); direct callers pass `RedisLockStore`'s keyword arguments
        (`host`, `port`, `db`, `key_prefix`, `socket_timeout`, ...).
        """
        if endpoint_config is not None:
            settings = {**_lock_store_settings(endpoint_config), **settings}
        settings = _validated(settings)
        self.wait_time_in_seconds: float = settings.pop("wait_time_in_seconds")
        super().__init__(**settings)
        host, port, db = settings.get("host", "localhost"), settings.get("port", 6379), settings.get("db", 1)
        self.address = f"{host}:{port} db {db}"
        self._issue_ticket = self.red.register_script(_ISSUE_TICKET_LUA)
        self._prune = self.red.register_script(_PRUNE_LUA)
        self._compare_and_set = self.red.register_script(_COMPARE_AND_SET_LUA)

    @contextmanager
    def _redis_errors(self) -> Iterator[None]:
        """Turn redis-py errors into `LockError`s that say what to fix."""
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            raise LockStoreUnavailable(
                f"Cannot reach the Redis lock store at {self.address}: {error}. Without it, "
                "messages of one conversation could be processed at the same time, so this one "
                "was refused. Start Redis there, or fix `lock_store` (url, port, db, password) "
                "in endpoints.yml."
            ) from error
        except redis.exceptions.RedisError as error:
            raise LockError(f"The Redis lock store at {self.address} failed: {error!r}.") from error

    def _key(self, conversation_id: Text) -> Text:
        return self.key_prefix + conversation_id

    def _prune_lock(
        self, conversation_id: Text, finished_ticket: Optional[int] = None, delete_if_empty: bool = False
    ) -> Optional[bytes]:
        """Drop expired tickets (and `finished_ticket`) in one atomic step."""
        finished = "" if finished_ticket is None else finished_ticket
        arguments = [repr(time.time()), finished, int(delete_if_empty)]
        with self._redis_errors():
            return self._prune(keys=[self._key(conversation_id)], args=arguments)

    @staticmethod
    def create_lock(conversation_id: Text) -> TicketLock:
        """A new, not yet stored lock."""
        return StoredTicketLock(conversation_id)

    def get_lock(self, conversation_id: Text) -> Optional[TicketLock]:
        """The stored lock, remembering its value for a later `save_lock`."""
        with self._redis_errors():
            stored = self.red.get(self._key(conversation_id))
        return StoredTicketLock.from_stored(stored) if stored else None

    def save_lock(self, lock: TicketLock) -> None:
        """Write `lock` only if the stored value is still the one it was read from.

        Raises `LockConflict` otherwise: re-read with `get_lock` and retry. A lock
        not read from this store (e.g. from `create_lock`) is only written if none
        is stored yet.
        """
        read_as = lock.stored_as if isinstance(lock, StoredTicketLock) else None
        new_value = lock.dumps().encode("utf-8")
        key = self._key(lock.conversation_id)
        with self._redis_errors():
            written = self._compare_and_set(keys=[key], args=[read_as or b"", new_value])
        if not written:
            raise LockConflict(
                f"The lock for conversation '{lock.conversation_id}' changed after it was read; "
                "re-read it with `get_lock` and retry."
            )
        if isinstance(lock, StoredTicketLock):
            lock.stored_as = new_value

    def delete_lock(self, conversation_id: Text) -> None:
        """Delete the lock unless it still holds unexpired tickets.

        Rasa deletes unconditionally after checking that no one waits; between the
        check and the delete another replica may have issued a ticket, which would
        vanish with the lock. Here check and delete are one step.
        """
        self._log_deletion(conversation_id, self._prune_lock(conversation_id, delete_if_empty=True) is None)

    def issue_ticket(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Append a ticket expiring in `lock_lifetime` seconds; create the lock if needed."""
        expires = repr(time.time() + float(lock_lifetime))
        with self._redis_errors():
            number = self._issue_ticket(
                keys=[self._key(conversation_id)], args=[repr(time.time()), expires, conversation_id]
            )
        logger.debug(f"Issued ticket {number} for conversation '{conversation_id}'.")
        return int(number)

    def lock(
        self,
        conversation_id: Text,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: Optional[float] = None,
    ) -> AsyncContextManager[TicketLock]:
        """Rasa's `lock()`, checking every `wait_time_in_seconds` (the store's setting by default)."""
        if wait_time_in_seconds is None:
            wait_time_in_seconds = self.wait_time_in_seconds
        return super().lock(conversation_id, lock_lifetime, wait_time_in_seconds)

    async def _acquire_lock(
        self, conversation_id: Text, ticket: int, wait_time_in_seconds: float
    ) -> TicketLock:
        """Wait until `ticket` is first in line.

        Raises `LockError` once `ticket` has expired while waiting: it has lost its
        place, and Rasa's loop would otherwise wait for ever on a lock left empty.
        """
        while True:
            stored = self._prune_lock(conversation_id)
            lock = StoredTicketLock.from_stored(stored) if stored else None
            if lock is None or all(live.number != ticket for live in lock.tickets):
                raise LockError(
                    f"Could not acquire lock for conversation_id '{conversation_id}': ticket "
                    f"{ticket} expired before its turn. Raise TICKET_LOCK_LIFETIME if handling "
                    "one message can take longer."
                )
            if not lock.is_locked(ticket):
                logger.debug(f"Acquired lock for conversation '{conversation_id}'.")
                return lock
            await asyncio.sleep(wait_time_in_seconds)

    def update_lock(self, conversation_id: Text) -> None:
        """Remove expired tickets."""
        self._prune_lock(conversation_id)

    def finish_serving(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove ticket `ticket_number` (and expired ones), keeping the lock."""
        self._prune_lock(conversation_id, finished_ticket=ticket_number)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove ticket `ticket_number`; delete the lock if no live ticket remains."""
        remaining = self._prune_lock(conversation_id, finished_ticket=ticket_number, delete_if_empty=True)
        if remaining is None:
            self._log_deletion(conversation_id, deletion_successful=True)

