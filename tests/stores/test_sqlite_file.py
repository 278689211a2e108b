"""The embedded tracker store's SQLite file: kept connections and WAL, never a stale file."""

import os
import sqlite3
import threading
from pathlib import Path
from typing import List

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.stores.sqlite_file import is_sqlite_file
from lepton_components.stores.strict_tracker_store import StrictSQLTrackerStore, TrackerStoreUnavailable

DOMAIN = Domain.from_dict({"slots": {"order_id": {"type": "text", "mappings": [{"type": "custom"}]}}})


def store_on(path: Path) -> StrictSQLTrackerStore:
    return StrictSQLTrackerStore(domain=DOMAIN, dialect="sqlite", db=str(path))


def turn(text: str) -> List[Event]:
    return [UserUttered(text, {"name": "greet", "confidence": 1.0}), ActionExecuted("utter_greet"), BotUttered(f"re: {text}")]


def conversation(sender_id: str, *texts: str) -> DialogueStateTracker:
    events: List[Event] = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]
    for text in texts:
        events += turn(text)
    return DialogueStateTracker.from_events(sender_id, events, DOMAIN.slots)


def user_texts(tracker: DialogueStateTracker) -> List[str]:
    return [event.text for event in tracker.events if isinstance(event, UserUttered)]


@pytest.mark.asyncio
async def test_the_store_keeps_its_connection_and_commits_through_a_write_ahead_log(tmp_path: Path) -> None:
    store = store_on(tmp_path / "rasa.db")
    await store.save(conversation("c", "hi", "where is my order"))
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    assert isinstance(store.engine.pool, sa.pool.QueuePool) and store.engine.pool.checkedin() >= 1
    # The operator console runs its queries on worker threads, on the same engine.
    seen: List[int] = []
    worker = threading.Thread(
        target=lambda: seen.append(store.engine.connect().execute(sa.text("SELECT count(*) FROM events")).scalar())
    )
    worker.start()
    worker.join()
    assert seen == [9]
    store.engine.dispose()


@pytest.mark.asyncio
async def test_a_deleted_database_file_fails_loudly_instead_of_taking_writes_into_the_void(tmp_path: Path) -> None:
    path = tmp_path / "rasa.db"
    store = store_on(path)
    await store.save(conversation("c", "hi"))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            name.unlink()
    with pytest.raises(TrackerStoreUnavailable, match="deleted or replaced while the bot was running"):
        await store.save(conversation("c", "hi", "anyone there"))
    for _ in range(30):  # more than the pool holds: each refusal gives its connection back
        with pytest.raises(TrackerStoreUnavailable, match="Stop the bot"):
            await store.retrieve("c")  # stays refused: nothing goes into a new, empty file
    assert store.engine.pool.checkedout() == 0
    store.engine.dispose()


@pytest.mark.asyncio
async def test_a_backup_restored_under_the_running_bot_is_refused_then_read_after_a_restart(tmp_path: Path) -> None:
    path, backup = tmp_path / "rasa.db", tmp_path / "backup.db"
    store = store_on(path)
    await store.save(conversation("c", "hi"))
    with sqlite3.connect(path) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)  # what `sqlite3 rasa.db .backup backup.db` does
    await store.save(conversation("c", "hi", "my order is late"))
    assert user_texts(await store.retrieve("c")) == ["hi", "my order is late"]

    os.replace(backup, path)  # the operator restores the backup under the running bot
    with pytest.raises(TrackerStoreUnavailable, match="deleted or replaced"):
        await store.retrieve("c")  # neither the old file nor its log mixed into the backup
    store.engine.dispose()  # the bot stops: SQLite folds the old log into the old file

    restarted = store_on(path)
    assert user_texts(await restarted.retrieve("c")) == ["hi"]
    restarted.engine.dispose()


def test_only_a_file_database_gets_the_file_engine() -> None:
    assert is_sqlite_file(sa.engine.make_url("sqlite:///rasa.db"))
    assert not is_sqlite_file(sa.engine.make_url("sqlite://"))
    assert not is_sqlite_file(sa.engine.make_url("sqlite:///:memory:"))
    assert not is_sqlite_file(sa.engine.make_url("postgresql://postgres@127.0.0.1/lepton"))
