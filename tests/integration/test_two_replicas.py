"""Two `rasa run` replicas on one PostgreSQL database and AtomicRedisLockStore: an audit.

100 conversations talk at once, 20 messages each, their requests spread round-robin
over both replicas. Most customers wait for each reply; some send bursts of several
messages at once, which is where a lock that is not atomic across replicas lets two
replicas process one conversation side by side (lost, duplicated or interleaved
events). Afterwards the `events` table itself is read and checked conversation by
conversation.

The bot (tests/integration/numbered_bot.py) is small but really trained, so that
2,000 messages fit in a few minutes on two cores. Each reply quotes the message
number, so every bot turn can be matched to its user message.
"""

import asyncio
import json
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Text, Tuple

import aiohttp
import pytest
import sqlalchemy as sa

from tests.integration.numbered_bot import acknowledgement, message, numbered_bot_model  # noqa: F401 (fixture)
from tests.integration.scaled_services import (
    free_port,
    RasaServer,
    database_url,
    dedicated_database,
    delete_redis_keys,
    postgres_up,
    redis_up,
    scaled_endpoints,
)
from tests.rest_client import REST_AUTH
from tests.services import require_service

pytestmark = pytest.mark.slow

CONVERSATIONS = 100
MESSAGES = 20
# Every BURST_EVERY-th conversation sends its messages in groups of BURST_SIZE at once.
BURST_EVERY = 4
BURST_SIZE = 5
REDIS_DB = 13
REQUEST_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def replicas(numbered_bot_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[List[Text], Text]]:
    """Two replicas with the shipped scaled endpoints, on a fresh database and key prefix."""
    if not (postgres_up() and redis_up()):
        require_service("PostgreSQL and Redis must run on 127.0.0.1; .ci/run starts them")
    from lepton_components.stores.strict_tracker_store import StrictSQLTrackerStore

    folder = tmp_path_factory.mktemp("replicas")
    key_prefix = f"leptonaudit{uuid.uuid4().hex[:8]}"
    with dedicated_database("lepton_audit") as database:
        # Create the `events` table once, so the replicas do not race to create it.
        StrictSQLTrackerStore(dialect="postgresql", host="127.0.0.1", port=5432, db=database,
                              username="postgres").engine.dispose()
        endpoints = scaled_endpoints(folder, database, REDIS_DB, key_prefix)
        servers = [RasaServer(numbered_bot_model, endpoints, folder, free_port()) for _ in range(2)]
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_until_up()
            yield [server.url for server in servers], database
        finally:
            for server in servers:
                server.stop()
            delete_redis_keys(REDIS_DB, key_prefix)


def _groups(conversation: int) -> List[List[int]]:
    """Message numbers 1..MESSAGES, grouped by what is sent at once."""
    numbers = list(range(1, MESSAGES + 1))
    size = BURST_SIZE if conversation % BURST_EVERY == 0 else 1
    return [numbers[start:start + size] for start in range(0, MESSAGES, size)]


class RoundRobin:
    """Hands out the replicas' URLs in turn, request by request."""

    def __init__(self, urls: Sequence[Text]) -> None:
        self.urls, self.count = list(urls), 0

    def next(self) -> Text:
        self.count += 1
        return self.urls[self.count % len(self.urls)]


async def _send(session: aiohttp.ClientSession, url: Text, sender: Text, number: int) -> Tuple[int, Text]:
    payload = {"sender": sender, "message": message(number)}
    async with session.post(f"{url}/webhooks/rest/webhook", json=payload, headers=REST_AUTH) as reply:
        return reply.status, await reply.text()


async def _talk(urls: Sequence[Text], senders: List[Text]) -> Dict[Tuple[Text, int], Tuple[int, Text]]:
    balancer = RoundRobin(urls)
    replies: Dict[Tuple[Text, int], Tuple[int, Text]] = {}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=0)

    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def customer(index: int, sender: Text) -> None:
            for group in _groups(index):
                results = await asyncio.gather(*(_send(session, balancer.next(), sender, n) for n in group))
                replies.update({(sender, n): result for n, result in zip(group, results)})

        await asyncio.gather(*(customer(index, sender) for index, sender in enumerate(senders)))
    return replies


def _conversation_events(database: Text, senders: List[Text]) -> Dict[Text, List[Tuple[Text, Text]]]:
    """(type, text) of every user and bot event, in the order the table holds them."""
    engine = sa.create_engine(database_url(database), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT sender_id, type_name, data FROM events "
                    "WHERE sender_id = ANY(:senders) AND type_name IN ('user', 'bot') ORDER BY id"
                ),
                # The REST channel keeps its conversations under `rest:<sender>`.
                {"senders": [f"rest:{sender}" for sender in senders]},
            ).fetchall()
    finally:
        engine.dispose()
    events: Dict[Text, List[Tuple[Text, Text]]] = defaultdict(list)
    for sender_id, type_name, data in rows:
        events[sender_id[len("rest:"):]].append((type_name, json.loads(data).get("text")))
    return events


def _audit(index: int, events: List[Tuple[Text, Text]]) -> List[Text]:
    """Problems in one conversation's stored events; empty when it is exactly right."""
    problems = []
    users = [text for kind, text in events if kind == "user"]
    if len(users) != MESSAGES:
        problems.append(f"{len(users)} user events instead of {MESSAGES}")
    # Each user message must be followed directly by its own reply, nothing in between.
    expected_turns = [(("user", message(n)), ("bot", acknowledgement(n))) for n in map(int, _numbers(users))]
    actual_turns = list(zip(events[0::2], events[1::2]))
    if len(events) != 2 * len(users) or actual_turns != expected_turns:
        problems.append(f"turns interleaved or unanswered: {events}")
    # Sent one at a time: in send order. Sent in bursts: each burst before the next.
    stored = list(map(int, _numbers(users)))
    position = 0
    for group in _groups(index):
        if sorted(stored[position:position + len(group)]) != group:
            problems.append(f"messages {group} not stored as one block in order: {stored}")
            break
        position += len(group)
    return problems


def _numbers(user_texts: List[Text]) -> List[Text]:
    return [text.split()[-1] for text in user_texts]


def test_two_replicas_store_every_turn_once_in_order(replicas: Tuple[List[Text], Text]) -> None:
    urls, database = replicas
    senders = [f"audit-{index:03d}-{uuid.uuid4().hex[:6]}" for index in range(CONVERSATIONS)]

    started = time.monotonic()
    replies = asyncio.run(_talk(urls, senders))
    elapsed = time.monotonic() - started
    print(f"{len(replies)} messages over {len(urls)} replicas in {elapsed:.1f} s")

    failed = {key: value for key, value in replies.items() if value[0] != 200}
    assert not failed, f"{len(failed)} requests failed, e.g. {list(failed.items())[:3]}"
    # Each HTTP reply is the reply to that request, not to another message.
    wrong = {
        key: text for key, (_, text) in replies.items()
        if json.loads(text) != [{"recipient_id": key[0], "text": acknowledgement(key[1])}]
    }
    assert not wrong, f"{len(wrong)} replies answer another message, e.g. {list(wrong.items())[:3]}"

    stored = _conversation_events(database, senders)
    problems = {sender: _audit(index, stored.get(sender, [])) for index, sender in enumerate(senders)}
    problems = {sender: found for sender, found in problems.items() if found}
    assert not problems, f"{len(problems)} of {CONVERSATIONS} conversations stored wrongly, e.g. " + str(
        list(problems.items())[:2]
    )
    assert sum(len(events) for events in stored.values()) == 2 * CONVERSATIONS * MESSAGES
