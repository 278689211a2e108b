"""An SQL tracker store that fails loudly instead of forgetting the conversation.

Rasa 3.6 has two ways of hiding a database outage:

* `SQLTrackerStore.__init__` retries an unreachable database every 5 s for ever
  (`rasa/core/tracker_store.py` L1090-1116), so a replica with a wrong port hangs at
  startup. Here startup gives up after `startup_timeout` seconds.
* `Agent` always wraps the tracker store in `FailSafeTrackerStore`
  (`rasa/core/agent.py` L519-528). Its `retrieve`, `retrieve_full_tracker`, `keys`
  and `save` catch every `Exception` (`tracker_store.py` L1437-1474): a failed
  retrieve logs an error and returns None, so the processor starts a brand-new
  conversation; a failed save logs and writes to an in-memory store that is never
  read back. The customer silently loses context on every message.

`StrictSQLTrackerStore` raises `TrackerStoreUnavailable` (naming the database and the
fix) on every database error, but under a default `FailSafeTrackerStore` that error
is still only logged. No exception raised by the wrapped store escapes it; the one
way out Rasa offers is its `on_tracker_store_error` callback, which is called inside
the `except` block, so a callback that raises propagates the error. Call
`make_tracker_store_strict(agent)` once the agent exists (e.g. in a Sanic
`after_server_start` listener, and again after `PUT /model` builds a new agent) to
install such a callback. `rasa run` does that when `bot/credentials.yml` lists
`lepton_components.channels.rest.LeptonRestInput` (see `lepton_components.server`).

Enable it in `endpoints.yml`::

    tracker_store:
      type: lepton_components.stores.strict_tracker_store.StrictSQLTrackerStore
      dialect: postgresql
      url: 127.0.0.1
      port: 5432
      db: lepton
      username: postgres
"""

import functools
import itertools
import json
import logging
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Text, Type, Union

import sqlalchemy as sa
import sqlalchemy.exc
import sqlalchemy.orm
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import (
    FailSafeTrackerStore,
    SQLTrackerStore,
    TrackerStore,
    create_engine_kwargs,
)
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import ConnectionException, InvalidConfigException

from lepton_components.stores.conversation_cache import CachedConversation, ConversationCache
from lepton_components.stores.sqlite_file import is_sqlite_file, sqlite_file_engine
from lepton_components.stores.store_startup import fails_loudly, quoted, require_sql_driver

if TYPE_CHECKING:
    from rasa.core.agent import Agent

logger = logging.getLogger(__name__)

STORE_TYPE = "lepton_components.stores.strict_tracker_store.StrictSQLTrackerStore"

# Seconds libpq waits for one connection; its own default waits for the TCP stack
# (minutes) while the whole event loop of the replica is blocked.
DEFAULT_CONNECT_TIMEOUT = 5
# Seconds to keep retrying at startup, for databases started alongside the bot.
DEFAULT_STARTUP_TIMEOUT = 30
# Conversations kept in memory between messages (conversation_cache.py); a 20-message
# conversation of the demo bot takes about 100 kB.
DEFAULT_CACHED_CONVERSATIONS = 500


@functools.lru_cache(maxsize=None)
def _event_class(type_name: Text) -> Optional[Type[Event]]:
    """Rasa's `Event.resolve_by_type`, once per name: it walks the whole tree of `Event`
    subclasses for every event, which was most of rebuilding a conversation from its rows."""
    return Event.resolve_by_type(type_name)


def deserialise_events(serialised: Iterable[Dict[Text, Any]]) -> List[Event]:
    """What Rasa's `rasa.shared.core.events.deserialise_events` returns, with the classes looked up once."""
    events = []
    for parameters in serialised:
        if "event" not in parameters:
            continue
        # Like Rasa: a row whose type is null is left out with a warning.
        event_class = _event_class(parameters["event"]) if parameters["event"] is not None else None
        event = event_class._from_parameters(parameters) if event_class else None
        if event is None:
            logger.warning(f"A stored event could not be read and is left out: {parameters!r}")
            continue
        events.append(event)
    return events


class TrackerStoreUnavailable(ConnectionException):
    """The conversation database cannot be used, so no message may be processed.

    A `ConnectionException` too, so callers can map every "backing service down"
    error to HTTP 503 with one `except`.
    """


def _describe(url: Union[Text, "sa.engine.URL"]) -> Text:
    """The database URL without its password, for error messages."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _unavailable(where: Text, error: Exception) -> TrackerStoreUnavailable:
    # The driver's first line says what failed (refused, unknown database, bad
    # password) without the SQL statement and the conversation data bound to it.
    cause = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return TrackerStoreUnavailable(
        f"The SQL tracker store at {where} cannot be used ({type(error).__name__}: {cause}). "
        "Conversations can be neither loaded nor saved. Start the database, or fix "
        "`tracker_store` (url, port, db, username, password) in endpoints.yml; set `login_db` "
        "to an existing database to have the `db` created."
    )


def _non_negative(key: Text, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0:
        raise InvalidConfigException(
            f"`tracker_store.{key}` must be a number of seconds >= 0, got {value!r}. "
            f"Example: `{key}: 5`."
        )
    return number


def _wait_for_database(url: Union[Text, "sa.engine.URL"], startup_timeout: float) -> None:
    """Connect once, retrying for `startup_timeout` seconds; raise if it never works."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            try:
                with engine.connect():
                    return
            except sqlalchemy.exc.SQLAlchemyError as error:
                if time.monotonic() >= deadline:
                    raise _unavailable(_describe(url), error) from error
                logger.warning(f"Waiting for the tracker store database at {_describe(url)}: {error}")
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    finally:
        engine.dispose()


class StrictSQLTrackerStore(SQLTrackerStore):
    """`SQLTrackerStore` whose database errors raise `TrackerStoreUnavailable`.

    Reads and writes the same `events` table as Rasa's store. Extra endpoint keys:
    `connect_timeout` (seconds per PostgreSQL connection attempt),
    `startup_timeout` (seconds to wait for the database when the replica starts) and
    `cached_conversations` (recently used conversations kept in memory and checked
    against the database's newest event row before each use; 0 rebuilds every
    conversation from its rows on every message, as Rasa does).
    """

    @fails_loudly(quoted(STORE_TYPE))
    def __init__(
        self,
        domain: Optional[Domain] = None,
        dialect: Text = "sqlite",
        host: Optional[Text] = None,
        port: Optional[int] = None,
        db: Text = "rasa.db",
        username: Optional[Text] = None,
        password: Optional[Text] = None,
        event_broker: Optional[EventBroker] = None,
        login_db: Optional[Text] = None,
        query: Optional[Dict] = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        cached_conversations: int = DEFAULT_CACHED_CONVERSATIONS,
        **kwargs: Dict[Text, Any],
    ) -> None:
        """Check the driver is installed and the database reachable, then let Rasa create the `events` table."""
        require_sql_driver(dialect, quoted(STORE_TYPE))
        connect_timeout = _non_negative("connect_timeout", connect_timeout)
        startup_timeout = _non_negative("startup_timeout", startup_timeout)
        try:
            self._cache: ConversationCache[DialogueStateTracker] = ConversationCache(cached_conversations)
        except ValueError as error:
            # The cache checks the value; the error here names the endpoints.yml key.
            raise InvalidConfigException(
                f"`tracker_store.cached_conversations` must be a whole number >= 0, got {cached_conversations!r}. "
                "Example: `cached_conversations: 500` (0: none)."
            ) from error
        query = dict(query or {})
        if dialect.startswith("postgresql"):
            # libpq takes whole seconds and treats 0 as "wait for ever".
            query.setdefault("connect_timeout", str(max(1, round(connect_timeout))))
        url = self.get_db_url(dialect, host, port, db, username, password, login_db, query)
        _wait_for_database(url, startup_timeout)
        super().__init__(
            domain, dialect, host, port, db, username, password, event_broker, login_db, query, **kwargs
        )
        url = self.engine.url
        self.engine.dispose()
        if is_sqlite_file(url):
            self.engine = sqlite_file_engine(url)
        else:
            # Test each pooled connection before use: after a database restart the pool
            # still holds connections to the old server, and each would fail one message
            # although the database is back.
            self.engine = sa.create_engine(url, pool_pre_ping=True, **create_engine_kwargs(url))
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)
        self.where = _describe(self.engine.url)

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise _unavailable(self.where, error) from error

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        """The latest session's tracker, or None if the conversation is new: from the cache
        when the database holds no newer event, else rebuilt from the rows."""
        with self._database_errors(), self.session_scope() as session:
            newest = self._newest_row_id(session, sender_id)
            cached = self._cache.get(sender_id, newest)
            if cached is not None:
                return cached.snapshot.copy()
            rows = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).all()
        if not self.domain or not rows:
            return None
        events = deserialise_events(json.loads(row.data) for row in rows)
        tracker = DialogueStateTracker.from_events(sender_id, events, self.domain.slots)
        self._cache.put(sender_id, CachedConversation(newest, len(rows), tracker.copy()))
        return tracker

    async def retrieve_full_tracker(self, conversation_id: Text) -> Optional[DialogueStateTracker]:
        """The tracker with every session, or None if the conversation is new."""
        with self._database_errors():
            return await super().retrieve_full_tracker(conversation_id)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Append the events the database does not hold yet (Rasa's rule: the tracker's
        events after as many as the database holds for the latest session)."""
        sender_id = tracker.sender_id
        with self._database_errors():
            await self.stream_events(tracker)
            with self.session_scope() as session:
                cached = self._cache.get(sender_id, self._newest_row_id(session, sender_id))
                if cached is not None:
                    stored = cached.stored_events
                else:
                    stored = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).count()
                new_events = list(itertools.islice(tracker.events, stored, None))
                newest = cached.newest_row_id if cached else None
                for event in new_events:
                    # Core inserts, one per event: each returns its row id (the cache's
                    # version), without the ORM's unit of work around them.
                    newest = session.execute(_INSERT_EVENT, _row(sender_id, event)).inserted_primary_key[0]
                session.commit()
        # Only a tracker that is exactly the latest session, as `retrieve` rebuilds it, is
        # kept: not one that started a new session, nor one holding older sessions too.
        whole = len(tracker.events) == stored + len(new_events)
        started_a_session = any(isinstance(event, SessionStarted) for event in new_events)
        if not self.domain or newest is None or not whole or started_a_session:
            self._cache.forget(sender_id)
        else:
            self._cache.put(sender_id, CachedConversation(newest, stored + len(new_events), tracker.copy()))
        logger.debug(f"Tracker with sender_id '{sender_id}' stored to database")

    def _newest_row_id(self, session: "sa.orm.Session", sender_id: Text) -> Optional[int]:
        # A Core statement built once: the ORM query's construction cost more than the
        # (indexed) query itself, on every message.
        return session.execute(_NEWEST_ROW_ID, {"sender_id": sender_id}).scalar()

    async def keys(self) -> Iterable[Text]:
        """Every stored conversation id."""
        with self._database_errors():
            return await super().keys()


_NEWEST_ROW_ID = sa.select(sa.func.max(SQLTrackerStore.SQLEvent.id)).where(
    SQLTrackerStore.SQLEvent.sender_id == sa.bindparam("sender_id")
)
_INSERT_EVENT = SQLTrackerStore.SQLEvent.__table__.insert()


def _row(sender_id: Text, event: Event) -> Dict[Text, Any]:
    """The `events` row Rasa's store writes for `event`."""
    data = event.as_dict()
    return {
        "sender_id": sender_id,
        "type_name": event.type_name,
        "timestamp": data.get("timestamp"),
        "intent_name": data.get("parse_data", {}).get("intent", {}).get("name"),
        "action_name": data.get("name"),
        "data": json.dumps(data),
    }


def raise_tracker_store_error(error: Exception) -> None:
    """`FailSafeTrackerStore` callback that re-raises instead of falling back."""
    raise error


def is_strict(tracker_store: TrackerStore) -> bool:
    """Whether `tracker_store` is a wrapper installed by `make_tracker_store_strict`."""
    return (
        isinstance(tracker_store, FailSafeTrackerStore)
        and tracker_store._on_tracker_store_error is raise_tracker_store_error
    )


def make_tracker_store_strict(agent: "Agent") -> TrackerStore:
    """Make the agent's tracker store errors reach the caller instead of being logged.

    Rewraps the store `Agent` put inside `FailSafeTrackerStore` with a callback that
    re-raises, and hands the new wrapper to the processor too. Safe to call twice.
    Returns the new wrapper.
    """
    current = agent.tracker_store
    processor = agent.processor
    if is_strict(current) and (processor is None or processor.tracker_store is current):
        # Already strict: `install_strict_mode` calls this on every request.
        return current
    # FailSafeTrackerStore has no public accessor for the store it wraps.
    primary = current._tracker_store if isinstance(current, FailSafeTrackerStore) else current
    strict = FailSafeTrackerStore(primary, on_tracker_store_error=raise_tracker_store_error)
    agent.tracker_store = strict
    if processor is not None:
        processor.tracker_store = strict
    return strict
