"""StrictSQLTrackerStore against the real local PostgreSQL.

Every test session works in its own throwaway database, dropped at the end. An
outage is real: PostgreSQL stops accepting connections to that database and ends
the open ones, or the store is pointed at a port where nothing listens.
"""

import asyncio
import datetime
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, List, Text

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import FailSafeTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActionReverted,
    ActiveLoop,
    AllSlotsReset,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    DefinePrevUserUtteredFeaturization,
    EntitiesAdded,
    Event,
    FollowupAction,
    LoopInterrupted,
    ReminderScheduled,
    Restarted,
    SessionStarted,
    SlotSet,
    StoryExported,
    UserUttered,
    UserUtteranceReverted,
)
from rasa.shared.core.events import deserialise_events as rasa_deserialise_events
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import ConnectionException, InvalidConfigException
from rasa.utils.endpoints import read_endpoint_config

from lepton_components.stores.strict_tracker_store import (
    StrictSQLTrackerStore,
    TrackerStoreUnavailable,
    deserialise_events,
    make_tracker_store_strict,
)
from tests.services import require_service

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
STORE_TYPE = "lepton_components.stores.strict_tracker_store.StrictSQLTrackerStore"
SAMPLE_ENDPOINTS = Path(__file__).resolve().parents[2] / "bot" / "endpoints.scaled.yml"
DOMAIN = Domain.from_dict({"slots": {"order_id": {"type": "text", "mappings": [{"type": "custom"}]}}})


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.engine.Engine]:
    """Autocommit connection to the server, for CREATE/ALTER/DROP DATABASE."""
    engine = sa.create_engine(
        f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres?connect_timeout=3",
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    try:
        engine.connect().close()
    except sa.exc.OperationalError as error:
        require_service(f"PostgreSQL is not running on {PG_HOST}:{PG_PORT} ({error.orig}); .ci/run starts it")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def database(postgres_admin: sa.engine.Engine) -> Iterator[Text]:
    name = f"lepton_test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield name
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def make_store(database: Text) -> Iterator[Callable[..., StrictSQLTrackerStore]]:
    """Stores on the session database (each one is like another replica)."""
    created: List[StrictSQLTrackerStore] = []

    def make(**overrides: Any) -> StrictSQLTrackerStore:
        settings = dict(
            domain=DOMAIN, dialect="postgresql", host=PG_HOST, port=PG_PORT, db=database, username=PG_USER
        )
        store = StrictSQLTrackerStore(**{**settings, **overrides})
        created.append(store)
        return store

    yield make
    for store in created:
        store.engine.dispose()


@contextmanager
def database_offline(admin: sa.engine.Engine, name: Text) -> Iterator[None]:
    """Refuse new connections to `name` and end the open ones, then restore."""
    with admin.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        connection.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
            {"name": name},
        )
    try:
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))


def _conversation() -> Text:
    return f"customer-{uuid.uuid4().hex[:8]}"


def _tracker(sender_id: Text) -> DialogueStateTracker:
    events: List[Event] = [
        SessionStarted(),
        ActionExecuted("action_listen"),
        UserUttered("where is order 42", intent={"name": "order_status", "confidence": 0.93}),
        SlotSet("order_id", "42"),
        ActionExecuted("utter_order_status"),
        BotUttered("Order 42 ships today."),
        ActionExecuted("action_listen"),
    ]
    return DialogueStateTracker.from_events(sender_id, events, DOMAIN.slots)


def _stored_rows(database: Text, sender_id: Text) -> int:
    engine = sa.create_engine(
        f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}", poolclass=sa.pool.NullPool
    )
    with engine.connect() as connection:
        query = sa.text("SELECT count(*) FROM events WHERE sender_id = :sender_id")
        return connection.execute(query, {"sender_id": sender_id}).scalar()


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind((PG_HOST, 0))
        return probe.getsockname()[1]


def test_a_tracker_saved_by_one_replica_is_retrieved_by_another(
    make_store: Callable[..., StrictSQLTrackerStore], database: Text
) -> None:
    sender_id = _conversation()
    tracker = _tracker(sender_id)

    asyncio.run(make_store().save(tracker))
    retrieved = asyncio.run(make_store().retrieve(sender_id))

    assert [event.as_dict() for event in retrieved.events] == [event.as_dict() for event in tracker.events]
    assert retrieved.get_slot("order_id") == "42"
    assert _stored_rows(database, sender_id) == len(tracker.events)


def test_saving_again_appends_only_new_events(
    make_store: Callable[..., StrictSQLTrackerStore], database: Text
) -> None:
    store, sender_id = make_store(), _conversation()
    tracker = _tracker(sender_id)
    asyncio.run(store.save(tracker))

    tracker.update(UserUttered("thanks", intent={"name": "thank", "confidence": 0.9}))
    asyncio.run(store.save(tracker))

    assert _stored_rows(database, sender_id) == len(tracker.events)
    assert sender_id in asyncio.run(store.keys())


def test_sample_endpoint_file_creates_this_store_through_rasa(database: Text) -> None:
    endpoint = read_endpoint_config(str(SAMPLE_ENDPOINTS), endpoint_type="tracker_store")
    assert (endpoint.type, endpoint.url, endpoint.kwargs["dialect"]) == (STORE_TYPE, PG_HOST, "postgresql")
    endpoint.kwargs["db"] = database  # the sample's `lepton` need not exist here

    store = TrackerStore.create(endpoint, domain=DOMAIN)

    # Rasa only wraps non-async stores (AwaitableTrackerStore); this one is used as is.
    assert type(store) is StrictSQLTrackerStore
    store.engine.dispose()


def test_an_unreachable_database_fails_startup_quickly_with_the_fix(make_store: Callable[..., Any]) -> None:
    port = _unused_port()
    started = time.monotonic()

    expected = rf"at postgresql://postgres@{PG_HOST}:{port}/.*endpoints.yml"
    with pytest.raises(TrackerStoreUnavailable, match=expected):
        make_store(port=port, startup_timeout=1)

    # Rasa's own SQLTrackerStore would retry every 5 s for ever here.
    assert 1 <= time.monotonic() - started < 10


def test_a_missing_database_is_named_in_the_error(make_store: Callable[..., Any]) -> None:
    expected = r'database "lepton_absent_db" does not exist.*login_db'
    with pytest.raises(TrackerStoreUnavailable, match=expected):
        make_store(db="lepton_absent_db", startup_timeout=0)


@pytest.mark.parametrize("key, value", [("startup_timeout", -1), ("connect_timeout", "soon")])
def test_invalid_timeouts_name_the_key(make_store: Callable[..., Any], key: Text, value: Any) -> None:
    with pytest.raises(InvalidConfigException, match=rf"`tracker_store.{key}` must be a number of seconds"):
        make_store(**{key: value})


def test_an_outage_raises_on_every_operation_and_the_store_recovers(
    make_store: Callable[..., StrictSQLTrackerStore], postgres_admin: sa.engine.Engine, database: Text
) -> None:
    store, sender_id = make_store(), _conversation()
    tracker = _tracker(sender_id)
    asyncio.run(store.save(tracker))

    with database_offline(postgres_admin, database):
        operations = (
            store.retrieve(sender_id),
            store.retrieve_full_tracker(sender_id),
            store.save(tracker),
            store.keys(),
        )
        for operation in operations:
            with pytest.raises(TrackerStoreUnavailable, match=rf"{PG_HOST}:{PG_PORT}/{database}") as raised:
                asyncio.run(operation)
            assert isinstance(raised.value, ConnectionException)

    assert len(asyncio.run(store.retrieve(sender_id)).events) == len(tracker.events)


def test_rasas_fail_safe_wrapper_hides_the_outage_until_made_strict(
    make_store: Callable[..., StrictSQLTrackerStore], postgres_admin: sa.engine.Engine, database: Text
) -> None:
    from rasa.core.agent import Agent

    store, sender_id = make_store(), _conversation()
    asyncio.run(store.save(_tracker(sender_id)))
    agent = Agent(domain=DOMAIN, tracker_store=store)
    agent.processor = SimpleNamespace(tracker_store=agent.tracker_store)  # stands in for a loaded model
    assert isinstance(agent.tracker_store, FailSafeTrackerStore)

    with database_offline(postgres_admin, database):
        # Rasa 3.6: the error is only logged; the conversation looks brand new.
        assert asyncio.run(agent.tracker_store.retrieve(sender_id)) is None
        fresh = asyncio.run(agent.tracker_store.get_or_create_tracker(sender_id))
        assert fresh.get_slot("order_id") is None

        strict = make_tracker_store_strict(agent)
        assert make_tracker_store_strict(agent)._tracker_store is store  # idempotent

        for operation in (
            agent.tracker_store.get_or_create_tracker(sender_id),
            agent.processor.tracker_store.retrieve(sender_id),
            strict.save(fresh),
        ):
            with pytest.raises(TrackerStoreUnavailable):
                asyncio.run(operation)

    assert asyncio.run(agent.tracker_store.retrieve(sender_id)).get_slot("order_id") == "42"


def test_connections_dropped_by_a_database_restart_do_not_fail_the_next_message(
    make_store: Callable[..., StrictSQLTrackerStore], postgres_admin: sa.engine.Engine, database: Text
) -> None:
    """A restart ends every pooled connection; the next use must reconnect, not fail once."""
    store, sender_id = make_store(), _conversation()
    asyncio.run(store.save(_tracker(sender_id)))
    assert store.engine.pool.checkedin() >= 1  # a pooled connection to the old server

    with postgres_admin.connect() as connection:
        ended = connection.execute(
            sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :name"),
            {"name": database},
        ).scalar()
    assert ended >= 1

    assert asyncio.run(store.retrieve(sender_id)).get_slot("order_id") == "42"


# ------------------------------------------------------------------ conversations kept in memory


def _as_dicts(tracker: DialogueStateTracker) -> List[dict]:
    return [event.as_dict() for event in tracker.events]


def _one_turn(tracker: DialogueStateTracker, text: Text, order_id: Text) -> None:
    tracker.update(UserUttered(text, intent={"name": "order_status", "confidence": 0.9}))
    tracker.update(SlotSet("order_id", order_id))
    tracker.update(ActionExecuted("utter_order_status"))
    tracker.update(BotUttered(f"Order {order_id} ships today."))
    tracker.update(ActionExecuted("action_listen"))


def test_a_cached_conversation_is_what_the_database_rebuilds_turn_after_turn(
    make_store: Callable[..., StrictSQLTrackerStore], database: Text
) -> None:
    cached, uncached, sender_id = make_store(), make_store(cached_conversations=0), _conversation()
    asyncio.run(cached.save(_tracker(sender_id)))
    for turn in range(4):
        tracker = asyncio.run(cached.retrieve(sender_id))
        assert _as_dicts(tracker) == _as_dicts(asyncio.run(uncached.retrieve(sender_id)))
        _one_turn(tracker, f"and order {turn}?", str(turn))
        asyncio.run(cached.save(tracker))
        assert _stored_rows(database, sender_id) == len(tracker.events)
    assert sender_id in cached._cache
    final = asyncio.run(cached.retrieve(sender_id))
    assert _as_dicts(final) == _as_dicts(asyncio.run(uncached.retrieve(sender_id)))
    assert final.get_slot("order_id") == "3"


def test_changing_a_retrieved_tracker_without_saving_does_not_change_the_next_retrieve(
    make_store: Callable[..., StrictSQLTrackerStore],
) -> None:
    store, sender_id = make_store(), _conversation()
    asyncio.run(store.save(_tracker(sender_id)))
    asyncio.run(store.retrieve(sender_id))  # the first save started a session: read once to cache
    first = asyncio.run(store.retrieve(sender_id))
    _one_turn(first, "not saved", "99")
    again = asyncio.run(store.retrieve(sender_id))
    assert len(again.events) == len(first.events) - 5 and again.get_slot("order_id") == "42"


def test_events_another_replica_appended_are_read_although_the_conversation_is_cached(
    make_store: Callable[..., StrictSQLTrackerStore],
) -> None:
    mine, other, sender_id = make_store(), make_store(), _conversation()
    asyncio.run(mine.save(_tracker(sender_id)))
    asyncio.run(mine.retrieve(sender_id))
    assert sender_id in mine._cache

    theirs = asyncio.run(other.retrieve(sender_id))
    _one_turn(theirs, "from the other replica", "7")
    asyncio.run(other.save(theirs))

    seen = asyncio.run(mine.retrieve(sender_id))
    assert _as_dicts(seen) == _as_dicts(theirs) and seen.get_slot("order_id") == "7"
    # And saving on top of it appends only this replica's new events.
    _one_turn(seen, "back here", "8")
    asyncio.run(mine.save(seen))
    assert _as_dicts(asyncio.run(other.retrieve(sender_id))) == _as_dicts(seen)


def test_a_conversation_deleted_in_the_database_is_gone_from_the_cache_too(
    make_store: Callable[..., StrictSQLTrackerStore], database: Text
) -> None:
    store, sender_id = make_store(), _conversation()
    asyncio.run(store.save(_tracker(sender_id)))
    asyncio.run(store.retrieve(sender_id))
    with store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM events WHERE sender_id = :s"), {"s": sender_id})
    assert asyncio.run(store.retrieve(sender_id)) is None


@pytest.mark.parametrize("value", [-1, 2.5, "many", True])
def test_an_invalid_cache_size_names_the_key(make_store: Callable[..., Any], value: Any) -> None:
    with pytest.raises(InvalidConfigException, match=r"`tracker_store.cached_conversations` must be a whole number"):
        make_store(cached_conversations=value)


def test_the_default_endpoint_file_keeps_conversations_in_sqlite_with_this_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the SQLite file is relative to where the bot runs
    endpoint = read_endpoint_config(str(SAMPLE_ENDPOINTS.with_name("endpoints.yml")), endpoint_type="tracker_store")
    store = TrackerStore.create(endpoint, domain=DOMAIN)
    assert type(store) is StrictSQLTrackerStore and store.engine.url.get_backend_name() == "sqlite"
    sender_id = _conversation()
    asyncio.run(store.save(_tracker(sender_id)))
    tracker = asyncio.run(store.retrieve(sender_id))
    _one_turn(tracker, "and now?", "43")
    asyncio.run(store.save(tracker))
    assert _as_dicts(asyncio.run(store.retrieve(sender_id))) == _as_dicts(tracker)
    assert (tmp_path / "lepton-trackers.db").is_file()
    store.engine.dispose()


def test_stored_events_are_read_back_as_rasa_reads_them() -> None:
    events: List[Event] = _tracker("customer").events_after_latest_restart() + [
        ActionExecutionRejected("order_status_form"),
        ActionReverted(),
        ActiveLoop("order_status_form"),
        AllSlotsReset(),
        ConversationPaused(),
        ConversationResumed(),
        DefinePrevUserUtteredFeaturization(False),
        EntitiesAdded([{"entity": "order_number", "value": "LP-123456"}]),
        FollowupAction("utter_greet"),
        LoopInterrupted(True),
        ReminderScheduled("remind", trigger_date_time=datetime.datetime(2026, 12, 7)),
        Restarted(),
        StoryExported(),
        UserUtteranceReverted(),
        UserUttered("LP-123456", {"name": "inform", "confidence": 0.9}, [{"entity": "order_number", "value": "LP-123456"}]),
    ]
    rows = [event.as_dict() for event in events]
    read = deserialise_events(rows)
    assert read == rasa_deserialise_events(rows)
    assert [type(event) for event in read] == [type(event) for event in events]
    # Rows Rasa leaves out: no type, and a null type.
    unreadable = [{"text": "no type"}, {"event": None, "text": "null type"}]
    assert deserialise_events(unreadable + rows) == rasa_deserialise_events(unreadable + rows) == read
