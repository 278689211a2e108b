"""Two web chat replicas as deployed: each its own SQL tracker store and Redis lock store object.

They share only what real replicas share, the database (one SQLite file here,
PostgreSQL in production) and Redis. A message dropped on one replica and retried on
the other is processed once; a session ended on one is refused by the other.
"""

import asyncio
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, List, Text, Tuple

import aiohttp
import pytest
import pytest_asyncio
import redis
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered

from lepton_components.stores.atomic_redis_lock_store import AtomicRedisLockStore
from tests.channels.web_chat_bot import ScriptedAgent, web_chat_channel
from tests.channels.webhook_harness import TIMEOUT_S, serve_channel

pytestmark = pytest.mark.timeout(60)

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Not the lock store tests' database (they flush theirs); keys carry a per-test prefix.
REDIS_DB = 13
SLOW = {"text": "A considered answer.", "delay": 1.0}


@pytest.fixture
def key_prefix() -> Any:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        pytest.skip(f"Redis is not running on {REDIS_HOST}:{REDIS_PORT} ({error}).")
    prefix = "leptonwebchat" + uuid.uuid4().hex[:8]
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def replica(database: Path, key_prefix: Text) -> ScriptedAgent:
    """One replica's agent: its own store objects over the shared database and Redis."""
    agent = ScriptedAgent(
        SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(database)),
        AtomicRedisLockStore(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, key_prefix=key_prefix, socket_timeout=5),
    )
    agent.scripted["slow question"] = SLOW
    return agent


@pytest_asyncio.fixture
async def replicas(tmp_path: Path, key_prefix: Text) -> AsyncIterator[Tuple[List[ScriptedAgent], List[Text]]]:
    database = tmp_path / "trackers.db"
    agents = [replica(database, key_prefix), replica(database, key_prefix)]
    async with serve_channel(web_chat_channel(), agents[0].handle_message, agent=agents[0]) as first, serve_channel(
        web_chat_channel(), agents[1].handle_message, agent=agents[1]
    ) as second:
        yield agents, [first, second]


async def post(http: aiohttp.ClientSession, url: Text, token: Text, body: Any = None) -> Tuple[int, Any]:
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as reply:
        return reply.status, await reply.json(content_type=None)


@pytest.mark.asyncio
async def test_a_message_dropped_on_one_replica_and_retried_on_the_other_is_processed_once(replicas) -> None:
    (first, second), (url_a, url_b) = replicas
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http:
        async with http.post(f"{url_a}/sessions") as issued:
            token = (await issued.json())["session"]
        body = {"text": "slow question", "id": uuid.uuid4().hex}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as impatient:
            with pytest.raises(asyncio.TimeoutError):
                await post(impatient, f"{url_a}/messages", token, body)
        retry = await post(http, f"{url_b}/messages", token, body)
        assert retry == (200, {"messages": [{"sender": "bot", "text": "A considered answer."}]})
        assert await post(http, f"{url_b}/messages", token, body) == retry
    assert [m.text for m in first.received] == ["slow question"] and second.received == []
    tracker = await second.tracker_store.retrieve_full_tracker(first.received[0].sender_id)
    assert [event.text for event in tracker.events if isinstance(event, UserUttered)] == ["slow question"]


@pytest.mark.asyncio
async def test_a_session_ended_on_one_replica_is_refused_by_the_other(replicas) -> None:
    (first, second), (url_a, url_b) = replicas
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http:
        async with http.post(f"{url_b}/sessions") as issued:
            token = (await issued.json())["session"]
        assert (await post(http, f"{url_b}/messages", token, {"text": "hello"}))[0] == 200
        async with http.delete(f"{url_a}/sessions", headers={"Authorization": f"Bearer {token}"}) as ended:
            assert ended.status == 204
        status, body = await post(http, f"{url_b}/messages", token, {"text": "still me?"})
        assert status == 401 and body["error"] == "session_revoked"
        status, body = await post(http, f"{url_b}/sessions/refresh", token)
        assert status == 401 and body["error"] == "session_revoked"
    assert [m.text for m in first.received + second.received] == ["hello"]
