"""The handoff queue on SQLite and PostgreSQL: one row per conversation, and changes of hands
that two replicas can never both win."""

import asyncio
import uuid
from pathlib import Path
from typing import Iterator, Tuple

import pytest
import sqlalchemy as sa

from lepton_components.operators.database import create_tables
from lepton_components.operators.handoff.queue import BOT_GAVE_UP, CUSTOMER_ASKED, HELD, WAITING, HandoffQueue
from tests.operators.handoff_bot import Clock
from tests.services import require_service

pytestmark = pytest.mark.asyncio
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres?connect_timeout=3"


@pytest.fixture(params=["sqlite", "postgresql"])
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tuple[HandoffQueue, HandoffQueue, Clock]]:
    """Two queues on one database, each with its own engine: two replicas of the bot."""
    clock = Clock(1000.0)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'trackers.db'}"
        engines = [sa.create_engine(url), sa.create_engine(url)]
        create_tables(engines[0])
        yield HandoffQueue(engines[0], clock), HandoffQueue(engines[1], clock), clock
        return
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        admin.connect().close()
    except sa.exc.OperationalError as error:
        require_service(f"PostgreSQL is not running on 127.0.0.1:5432 ({error.orig}); .ci/run starts it")
    name = f"lepton_handoff_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.replace("/postgres?", f"/{name}?")
    engines = [sa.create_engine(url), sa.create_engine(url)]
    try:
        create_tables(engines[0])
        yield HandoffQueue(engines[0], clock), HandoffQueue(engines[1], clock), clock
    finally:
        for engine in engines:
            engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}"'))
        admin.dispose()


async def test_a_conversation_waits_once_and_others_can_read_its_status(replicas) -> None:
    first, second, clock = replicas
    assert await first.status_of("rest:ada") is None
    opened = await first.open("rest:ada", "support", "rest", CUSTOMER_ASKED)
    assert opened is not None and opened.status == WAITING and opened.opened_at == 1000.0
    # Asking again (another replica, the same moment) changes nothing.
    assert await second.open("rest:ada", "billing", "rest", BOT_GAVE_UP) is None
    seen = await second.status_of("rest:ada")
    assert (seen.queue, seen.status, seen.agent, seen.reason, seen.unread) == ("support", WAITING, None, CUSTOMER_ASKED, 0)


async def test_of_many_simultaneous_claims_on_two_replicas_exactly_one_wins(replicas) -> None:
    first, second, _ = replicas
    await first.open("web-" + "a" * 40, "support", "web_chat", CUSTOMER_ASKED)
    claims = [
        (first if index % 2 else second).claim("web-" + "a" * 40, f"agent{index}") for index in range(8)
    ]
    results = await asyncio.gather(*claims)
    assert results.count(True) == 1
    winner = f"agent{results.index(True)}"
    held = await first.status_of("web-" + "a" * 40)
    assert (held.status, held.agent) == (HELD, winner)
    assert await second.claim("web-" + "a" * 40, "late") is False


async def test_release_only_matches_the_state_it_was_decided_on(replicas) -> None:
    first, second, _ = replicas
    await first.open("rest:bo", "support", "rest", BOT_GAVE_UP)
    waiting = await first.status_of("rest:bo")
    assert await second.claim("rest:bo", "dana")
    # Decided on "waiting", but dana took it meanwhile: nothing is released.
    assert await first.release(waiting) is False
    held = await first.status_of("rest:bo")
    assert await first.release(held) is True
    assert await second.status_of("rest:bo") is None
    assert await second.release(held) is False


async def test_a_wait_expires_only_if_nobody_claimed_it(replicas) -> None:
    first, second, clock = replicas
    await first.open("rest:old", "support", "rest", CUSTOMER_ASKED)
    clock.now += 60
    await first.open("rest:new", "support", "rest", CUSTOMER_ASKED)
    clock.now += 60
    overdue = await first.overdue(opened_before=1030.0)
    assert [handoff.conversation_id for handoff in overdue] == ["rest:old"]
    assert await first.claim("rest:old", "dana")
    assert await second.expire("rest:old", opened_before=1030.0) is False
    assert (await first.status_of("rest:old")).agent == "dana"
    assert await second.expire("rest:new", opened_before=1030.0) is False  # not overdue
    assert await second.expire("rest:new", opened_before=2000.0) is True
    assert await first.status_of("rest:new") is None


async def test_lists_unread_counts_and_unclaim(replicas) -> None:
    first, _, clock = replicas
    await first.open("rest:1", "support", "rest", CUSTOMER_ASKED)
    clock.now += 1
    await first.open("rest:2", "billing", "rest", CUSTOMER_ASKED)
    clock.now += 1
    await first.open("rest:3", "support", "rest", CUSTOMER_ASKED)
    assert [h.conversation_id for h in await first.waiting_for(["support"])] == ["rest:1", "rest:3"]
    assert [h.conversation_id for h in await first.waiting_for(None)] == ["rest:1", "rest:2", "rest:3"]
    assert await first.touch("rest:1") and await first.touch("rest:1")
    assert (await first.status_of("rest:1")).unread == 2
    assert await first.touch("rest:unknown") is False
    assert await first.claim("rest:1", "dana") and await first.claim("rest:2", "eve")
    assert (await first.status_of("rest:1")).unread == 0  # claiming opens the conversation
    await first.touch("rest:1")
    await first.mark_read("rest:1", "eve")  # not hers: nothing changes
    assert (await first.status_of("rest:1")).unread == 1
    await first.mark_read("rest:1", "dana")
    assert (await first.status_of("rest:1")).unread == 0
    assert [h.conversation_id for h in await first.held_by("dana")] == ["rest:1"]
    assert [h.conversation_id for h in await first.held_by_others("dana")] == ["rest:2"]
    assert await first.unclaim("rest:1", "eve") is False
    assert await first.unclaim("rest:1", "dana") is True
    back = await first.status_of("rest:1")
    assert (back.status, back.agent, back.claimed_at) == (WAITING, None, None)
