"""A Redis ticket-lock store that is atomic, never blocks the event loop and renews its tickets.

Rasa 3.6's `RedisLockStore` has four holes that let two messages of one conversation
be processed side by side, or stall a whole replica:

* it issues a ticket by GET, modify in Python, SET (`rasa/core/lock_store.py`
  L263-277, rasa issue 9213): two replicas doing that at once both append to ticket
  list N and the second SET erases the first ticket;
* ticket numbers restart at 0 whenever the lock is deleted, so a worker whose ticket
  expired can, when it finally finishes, remove a newer worker's ticket 0;
* tickets expire after the lock lifetime (60 s by default) even while their turn is
  still running, so a long turn lets the next message of the conversation start;
* it uses the synchronous client with a 10 s socket timeout on the event loop: a
  Redis that accepts connections but never answers freezes every conversation of
  the replica for 10 s per message.

Here:

* every change of a lock is one Lua script, which Redis runs with nothing else
  interleaved: issuing, taking a turn, finishing, pruning and deleting an empty lock
  cannot lose or duplicate a ticket across any number of processes; `save_lock` is
  compare-and-set (it only writes over the value `get_lock` read);
* ticket numbers are never reused: a per-conversation counter key outlives the
  lock by `COUNTER_RETENTION_SECONDS`, and a fresh counter starts at Redis' clock in
  microseconds, above every number issued before. Finishing removes only the
  finisher's own ticket;
* every key expires: the lock when its last ticket does, the counter
  `COUNTER_RETENTION_SECONDS` later. A quiet conversation leaves nothing behind;
* the holder's ticket is renewed `RENEWALS_PER_LIFETIME` times per lifetime while
  its turn runs (also on taking the turn), and renewal stops when the turn ends;
  a crashed replica stops renewing, so its ticket expires within one lifetime;
* one conversation holds at most `max_tickets_per_conversation` tickets (20): a
  flood of messages for one conversation is refused with `LockQueueFull` instead of
  growing a queue that every waiter re-reads from Redis several times a second;
* `lock()`, the one method Rasa calls (`Agent.handle_message`, the HTTP API,
  reminders), uses `redis.asyncio`, and both clients time out after 1 s by default
  (`socket_timeout`, `socket_connect_timeout`). A Redis that is down or silent fails
  the message with `LockStoreUnavailable` (HTTP 503 in Lepton's channels) within
  about that long while the replica keeps serving other conversations. The other,
  synchronous `LockStore` methods keep working for direct callers;
* a message cancelled mid-way (Sanic cancels the request of a client that went
  away) still removes its ticket, even one whose number had not arrived yet. A
  removal that fails after the turn ran is logged, not raised: the message was
  handled, and the ticket expires within one lifetime;
* errors and log lines name a conversation only as `describe()` does (channel and
  fingerprint): a sender id may be a phone number, and Lepton logs the first line of
  every lock error that refuses a message.

The Lua scripts are in `redis_lock_scripts`, the checks of the endpoints.yml section
in `redis_lock_settings`; this module holds the store. Expiry is judged by Redis' clock (`TIME`), so replica clocks need not agree. Stored
values keep the JSON shape of `TicketLock.dumps()` plus a `last_issued` counter, so
Rasa's own `RedisLockStore.get_lock` can still read them. As every key now has a TTL,
the Redis database must not evict keys under memory pressure: keep Redis' default
`maxmemory-policy noeviction` (a `volatile-*` or `allkeys-*` policy could drop a
live lock).

Enable it in `endpoints.yml`::

    lock_store:
      type: lepton_components.stores.atomic_redis_lock_store.AtomicRedisLockStore
      url: 127.0.0.1
      port: 6379
      db: 1
      key_prefix: lepton
      # optional: seconds between "is it my turn?" checks (Rasa: 1)
      wait_time_in_seconds: 0.05
      # optional: seconds to wait for Redis to answer / to accept a connection
      socket_timeout: 1
      socket_connect_timeout: 1
      # optional: messages of one conversation handled or waiting at once
      max_tickets_per_conversation: 20
"""

import asyncio
import json
import logging
import time
import weakref
from collections import deque
from contextlib import asynccontextmanager, contextmanager
from typing import Any, AsyncIterator, Awaitable, Deque, Iterator, List, Optional, Set, Text

try:
    import redis
    import redis.asyncio
except ImportError as error:
    raise ImportError(
        "AtomicRedisLockStore needs the `redis` Python package, version 4.2 or later (for "
        f"`redis.asyncio`), which could not be imported: {error}. Install it with "
        "`pip install 'redis>=4.2'`, or choose another `lock_store` in endpoints.yml."
    ) from error
from rasa.core.lock import NO_TICKET_ISSUED, Ticket, TicketLock
from rasa.core.lock_store import DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX, LOCK_LIFETIME, LockError, RedisLockStore
from rasa.shared.exceptions import ConnectionException
from rasa.utils.endpoints import EndpointConfig

from lepton_components.channels.conversation_ids import describe
from lepton_components.stores.redis_lock_scripts import (
    COUNTER_RETENTION_SECONDS,
    QUEUE_FULL,
    SAVED_EMPTY,
    TICKET_GONE,
    TURN_TAKEN,
    LockScripts,
)
from lepton_components.stores.redis_lock_settings import connection_settings, lifetime_in_microseconds, store_settings

__all__ = [
    "COUNTER_RETENTION_SECONDS",
    "AtomicRedisLockStore",
    "LockConflict",
    "LockQueueFull",
    "LockStoreUnavailable",
    "StoredTicketLock",
]

logger = logging.getLogger(__name__)

# A holder renews its ticket this many times per lock lifetime (every 20 s for Rasa's
# 60 s), so two renewals may fail or come late before its ticket would expire.
RENEWALS_PER_LIFETIME = 3


class LockStoreUnavailable(LockError, ConnectionException):
    """Redis cannot be reached, so no message may be processed.

    A `ConnectionException` too, so callers can map every "backing service down"
    error to HTTP 503 with one `except`.
    """


class LockQueueFull(LockError):
    """The conversation already has `max_tickets_per_conversation` messages in flight."""


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
        """Issue a ticket numbered as the store numbers them: rising, never reused."""
        self.remove_expired_tickets()
        now = time.time()
        number = max(self.last_issued + 1, int(now * 1_000_000))
        self.tickets.append(Ticket(number, now + lifetime))
        self.highest_issued = number
        return number

    def dumps(self) -> Text:
        """`TicketLock.dumps()` plus the `last_issued` counter."""
        tickets = [ticket.dumps() for ticket in self.tickets]
        return json.dumps(
            {"conversation_id": self.conversation_id, "tickets": tickets, "last_issued": self.last_issued}
        )


class AtomicRedisLockStore(RedisLockStore):
    """Rasa's ticket lock on Redis: atomic, renewed while held, asynchronous in `lock()`.

    Semantics otherwise follow Rasa's `LockStore`: `lock()` issues a ticket, waits
    until it is first in line, and removes it afterwards (deleting the lock when no
    one else waits). A waiting ticket expires after `lock_lifetime` seconds, and its
    waiter then gets `LockError` instead of waiting for ever; the holder's ticket is
    renewed until its turn ends. Redis errors raise `LockStoreUnavailable` naming the
    server instead of letting a message through.

    A subclass of `RedisLockStore` so that Rasa treats it as safe for several Sanic
    workers; its `__init__` is not called, as it would build a client with Rasa's
    10 s timeout.
    """

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **settings: Any) -> None:
        """Check the settings; connect lazily (a replica may start while Redis restarts).

        Rasa calls this with `endpoint_config` only (`rasa/core/lock_store.py`
        L334); direct callers pass `RedisLockStore`'s keyword arguments (`host`,
        `port`, `db`, `key_prefix`, `socket_timeout`, ...) and ours.
        """
        settings = store_settings(endpoint_config, settings)
        lifetime_in_microseconds(LOCK_LIFETIME)  # TICKET_LOCK_LIFETIME, refused at start-up
        self.wait_time_in_seconds: float = settings["wait_time_in_seconds"]
        self.max_tickets_per_conversation: int = settings["max_tickets_per_conversation"]
        key_prefix = settings.get("key_prefix")
        base = f"{key_prefix}:" if key_prefix else ""
        self.key_prefix = base + DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX
        # Conversation ids are appended to `key_prefix` ("...lock:"), so no id can
        # reach "...lock_counter:".
        self.counter_prefix = base + "lock_counter:"
        self._connection = connection_settings(settings)
        self.address = f"{self._connection['host']}:{self._connection['port']} db {self._connection['db']}"
        self.red = redis.Redis(**self._connection)
        self._scripts = LockScripts(self.red)
        # redis.asyncio connections belong to the loop that opened them.
        self._async_scripts: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LockScripts]" = (
            weakref.WeakKeyDictionary()
        )
        # Ticket removals still running after their turn was cancelled (kept referenced).
        self._finishing: Set["asyncio.Future[None]"] = set()

    def _scripts_for_this_loop(self) -> LockScripts:
        loop = asyncio.get_running_loop()
        scripts = self._async_scripts.get(loop)
        if scripts is None:
            scripts = LockScripts(redis.asyncio.Redis(**self._connection))
            self._async_scripts[loop] = scripts
        return scripts

    @contextmanager
    def _redis_errors(self) -> Iterator[None]:
        """Turn redis-py errors into `LockError`s that say what to fix."""
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            raise LockStoreUnavailable(
                f"Cannot reach the Redis lock store at {self.address}: {error}. Without it, "
                "messages of one conversation could be processed at the same time, so this one "
                "was refused. Start Redis there, or fix `lock_store` (url, port, db, password, "
                "socket_timeout) in endpoints.yml."
            ) from error
        except redis.exceptions.RedisError as error:
            raise LockError(f"The Redis lock store at {self.address} failed: {error!r}.") from error

    def _keys(self, conversation_id: Text) -> List[Text]:
        return [self.key_prefix + conversation_id, self.counter_prefix + conversation_id]

    def _issue_arguments(self, conversation_id: Text, lifetime_us: int) -> List[Any]:
        return [lifetime_us, conversation_id, self.max_tickets_per_conversation]

    def _issued(self, conversation_id: Text, issued: Any) -> int:
        """The number the issue script returned; `LockQueueFull` if it refused."""
        ticket = int(issued)
        if ticket == QUEUE_FULL:
            raise LockQueueFull(
                f"The conversation of {describe(conversation_id)} already has "
                f"{self.max_tickets_per_conversation} messages being handled or waiting, so this "
                "one was refused; resend it later. Raise `lock_store.max_tickets_per_conversation` "
                "in endpoints.yml if customers really send that many at once."
            )
        logger.debug(f"Issued ticket {ticket} for {describe(conversation_id)}.")
        return ticket

    # What Rasa calls: asynchronous.

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: Text,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: Optional[float] = None,
    ) -> AsyncIterator[TicketLock]:
        """Hold the conversation's lock while the body runs, renewing the ticket.

        Checks for the turn every `wait_time_in_seconds` (the store's setting when
        None, as Rasa's callers pass nothing).
        """
        wait = self.wait_time_in_seconds if wait_time_in_seconds is None else wait_time_in_seconds
        if not wait > 0:  # a zero interval would poll Redis in a busy loop
            raise ValueError(f"`wait_time_in_seconds` must be > 0, got {wait_time_in_seconds!r}.")
        lifetime_us = lifetime_in_microseconds(lock_lifetime)
        scripts = self._scripts_for_this_loop()
        ticket = await self._issue(scripts, conversation_id, lifetime_us, lock_lifetime)
        try:
            lock = await self._acquire_lock(conversation_id, ticket, wait, lock_lifetime)
            renewing = asyncio.create_task(self._keep_renewed(scripts, conversation_id, ticket, lifetime_us))
            try:
                yield lock
            finally:
                renewing.cancel()
                await asyncio.wait([renewing])
        finally:
            await self._finish_turn(scripts, conversation_id, ticket, lock_lifetime)

    async def _issue(
        self, scripts: LockScripts, conversation_id: Text, lifetime_us: int, lock_lifetime: float
    ) -> int:
        """Issue a ticket. If the caller is cancelled before the number arrives, the
        ticket is removed once it does, instead of blocking the conversation until it
        expires."""
        arguments = self._issue_arguments(conversation_id, lifetime_us)
        issuing = asyncio.ensure_future(scripts.issue_ticket(keys=self._keys(conversation_id), args=arguments))
        try:
            with self._redis_errors():
                issued = await asyncio.shield(issuing)
        except asyncio.CancelledError:
            issuing.add_done_callback(
                lambda done: self._remove_abandoned(scripts, conversation_id, done, lock_lifetime)
            )
            raise
        return self._issued(conversation_id, issued)

    def _remove_abandoned(
        self, scripts: LockScripts, conversation_id: Text, issuing: "asyncio.Future[Any]", lock_lifetime: float
    ) -> None:
        if issuing.cancelled() or issuing.exception() is not None:
            return  # nothing was issued, or we cannot know: it expires by itself
        ticket = int(issuing.result())
        if ticket != QUEUE_FULL:
            self._in_background(self._remove_ticket(scripts, conversation_id, ticket, lock_lifetime))

    def _in_background(self, work: Awaitable[None]) -> "asyncio.Future[None]":
        """Run `work` to the end even if whoever started it is cancelled."""
        future = asyncio.ensure_future(work)
        self._finishing.add(future)
        future.add_done_callback(self._finishing.discard)
        return future

    async def _acquire_lock(
        self,
        conversation_id: Text,
        ticket: int,
        wait_time_in_seconds: float,
        lock_lifetime: float = LOCK_LIFETIME,
    ) -> TicketLock:
        """Wait until `ticket` is first in line; it then expires `lock_lifetime` from now.

        Raises `LockError` once `ticket` has expired while waiting: it has lost its
        place, and Rasa's loop would otherwise wait for ever on a lock left empty.
        """
        scripts, keys = self._scripts_for_this_loop(), self._keys(conversation_id)
        lifetime_us = lifetime_in_microseconds(lock_lifetime)
        while True:
            with self._redis_errors():
                status, stored = await scripts.take_turn(keys=keys, args=[ticket, lifetime_us])
            if status == TURN_TAKEN:
                logger.debug(f"Acquired the lock for {describe(conversation_id)}.")
                return StoredTicketLock.from_stored(stored)
            if status == TICKET_GONE:
                raise LockError(
                    f"Could not acquire the lock for {describe(conversation_id)}: ticket "
                    f"{ticket} expired before its turn. Raise TICKET_LOCK_LIFETIME if messages "
                    "of one conversation can queue for longer."
                )
            await asyncio.sleep(wait_time_in_seconds)

    async def _keep_renewed(
        self, scripts: LockScripts, conversation_id: Text, ticket: int, lifetime_us: int
    ) -> None:
        """Push the holder's expiry forward until cancelled at the end of its turn."""
        interval = lifetime_us / 1_000_000 / RENEWALS_PER_LIFETIME
        keys = self._keys(conversation_id)
        while True:
            await asyncio.sleep(interval)
            try:
                status, _ = await scripts.take_turn(keys=keys, args=[ticket, lifetime_us])
            except redis.exceptions.RedisError as error:
                logger.warning(
                    f"Could not renew ticket {ticket} of {describe(conversation_id)} at the "
                    f"Redis lock store at {self.address} ({error!r}); retrying in {interval:.3g} s."
                )
                continue
            if status != TURN_TAKEN:
                logger.error(
                    f"Ticket {ticket} of {describe(conversation_id)} expired while its message "
                    "was still being handled (Redis unreachable, or the event loop blocked, for a "
                    "whole lock lifetime): another message of this conversation may now be handled "
                    "at the same time. Raise TICKET_LOCK_LIFETIME."
                )
                return

    async def _finish_turn(
        self, scripts: LockScripts, conversation_id: Text, ticket: int, lock_lifetime: float
    ) -> None:
        """Remove `ticket`, even if the turn's task is being cancelled (Sanic cancels a
        request whose client went away), so the next message need not wait for expiry."""
        removing = self._remove_ticket(scripts, conversation_id, ticket, lock_lifetime)
        await asyncio.shield(self._in_background(removing))

    async def _remove_ticket(
        self, scripts: LockScripts, conversation_id: Text, ticket: int, lock_lifetime: float
    ) -> None:
        """Logs instead of raising: the turn already ran, and an error here would tell
        the client its message was refused."""
        try:
            with self._redis_errors():
                await scripts.finish(keys=self._keys(conversation_id), args=[ticket])
        except LockError as error:
            logger.error(
                f"Could not remove ticket {ticket} of {describe(conversation_id)} after its "
                f"turn; the conversation's next message waits until it expires (at most "
                f"{lock_lifetime} s). {error}"
            )

    # Rasa's synchronous `LockStore` interface, for direct callers.

    def _finish(self, conversation_id: Text, ticket: Optional[int] = None) -> Optional[bytes]:
        """Drop expired tickets (and `ticket`), deleting an empty lock, in one step."""
        with self._redis_errors():
            return self._scripts.finish(keys=self._keys(conversation_id), args=["" if ticket is None else ticket])

    @staticmethod
    def create_lock(conversation_id: Text) -> TicketLock:
        """A new, not yet stored lock."""
        return StoredTicketLock(conversation_id)

    def get_lock(self, conversation_id: Text) -> Optional[TicketLock]:
        """The stored lock, remembering its value for a later `save_lock`."""
        with self._redis_errors():
            stored = self.red.get(self.key_prefix + conversation_id)
        return StoredTicketLock.from_stored(stored) if stored else None

    def save_lock(self, lock: TicketLock) -> None:
        """Write `lock` only if the stored value is still the one it was read from.

        Raises `LockConflict` otherwise: re-read with `get_lock` and retry. A lock
        not read from this store (e.g. from `create_lock`) is only written if none
        is stored yet. A lock without live tickets is deleted instead of written.
        """
        read_as = lock.stored_as if isinstance(lock, StoredTicketLock) else None
        new_value = lock.dumps().encode("utf-8")
        with self._redis_errors():
            outcome = self._scripts.compare_and_set(
                keys=self._keys(lock.conversation_id), args=[read_as or b"", new_value]
            )
        if not outcome:
            raise LockConflict(
                f"The lock for {describe(lock.conversation_id)} changed after it was read; "
                "re-read it with `get_lock` and retry."
            )
        if isinstance(lock, StoredTicketLock):
            lock.stored_as = None if outcome == SAVED_EMPTY else new_value

    def delete_lock(self, conversation_id: Text) -> None:
        """Delete the lock unless it still holds unexpired tickets.

        Rasa deletes unconditionally after checking that no one waits; between the
        check and the delete another replica may have issued a ticket, which would
        vanish with the lock. Here check and delete are one step.
        """
        self._log_deletion(conversation_id, self._finish(conversation_id) is None)

    @staticmethod
    def _log_deletion(conversation_id: Text, deletion_successful: bool) -> None:
        """Rasa's log line, naming the conversation as every Lepton log line does."""
        outcome = "Deleted" if deletion_successful else "Could not delete"
        logger.debug(f"{outcome} the lock for {describe(conversation_id)}.")

    def issue_ticket(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Append a ticket expiring in `lock_lifetime` seconds; create the lock if needed."""
        arguments = self._issue_arguments(conversation_id, lifetime_in_microseconds(lock_lifetime))
        with self._redis_errors():
            issued = self._scripts.issue_ticket(keys=self._keys(conversation_id), args=arguments)
        return self._issued(conversation_id, issued)

    def update_lock(self, conversation_id: Text) -> None:
        """Remove expired tickets (and the lock, if none is left)."""
        self._finish(conversation_id)

    def is_someone_waiting(self, conversation_id: Text) -> bool:
        """Whether the conversation holds an unexpired ticket."""
        return self._finish(conversation_id) is not None

    def finish_serving(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove ticket `ticket_number` (and expired ones)."""
        self._finish(conversation_id, ticket_number)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove ticket `ticket_number`; delete the lock if no live ticket remains."""
        if self._finish(conversation_id, ticket_number) is None:
            self._log_deletion(conversation_id, deletion_successful=True)
