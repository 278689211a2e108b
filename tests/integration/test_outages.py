"""Real PostgreSQL and Redis outages under `rasa run --endpoints bot/endpoints.scaled.yml`.

The server is started exactly as the README's scaled set-up does (the shipped
endpoints file, pointed at a throwaway database and Redis key prefix, and
bot/credentials.yml), so nothing but configuration switches strict mode on. It serves
the small trained bot of tests/integration/numbered_bot.py, whose answer to "which
number was it?" comes from a slot set before the outage. Each outage stops the real
service for a few seconds and always starts it again.
"""

import re
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Text, Tuple

import pytest
import requests

from tests.integration.numbered_bot import acknowledgement, message, numbered_bot_model  # noqa: F401 (fixture)
from tests.integration.scaled_services import (
    free_port,
    PG_HOST,
    PG_PORT,
    REDIS_PORT,
    RasaServer,
    dedicated_database,
    delete_redis_keys,
    postgres_up,
    redis_up,
    scaled_endpoints,
    start_postgres,
    start_redis,
    stop_postgres,
    stop_redis,
    stopped,
)
from tests.rest_client import REST_AUTH
from tests.services import require_service

pytestmark = pytest.mark.slow

API_TOKEN = "outage-test-api-token"
REDIS_DB = 14
NUMBER = 42
RECALL = "which number was it?"
REFUSED = message(7)


@pytest.fixture(scope="module")
def services() -> Iterator[None]:
    if not (postgres_up() and redis_up()):
        require_service(f"PostgreSQL ({PG_HOST}:{PG_PORT}) and Redis (:{REDIS_PORT}) must run; .ci/run starts them")
    yield
    # Whatever happened, leave both running for the other tests.
    start_postgres()
    start_redis()


@pytest.fixture(scope="module")
def server(
    services: None, numbered_bot_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tuple[RasaServer, Text]]:
    folder = tmp_path_factory.mktemp("outage-server")
    key_prefix = f"leptonoutage{uuid.uuid4().hex[:8]}"
    with dedicated_database("lepton_outage") as database:
        endpoints = scaled_endpoints(folder, database, REDIS_DB, key_prefix)
        api = ["--enable-api", "--auth-token", API_TOKEN]
        try:
            with RasaServer(numbered_bot_model, endpoints, folder, free_port(), api) as rasa:
                yield rasa, database
        finally:
            delete_redis_keys(REDIS_DB, key_prefix)


def _post(rasa: RasaServer, sender: Text, text: Text) -> requests.Response:
    return requests.post(f"{rasa.url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, headers=REST_AUTH, timeout=60)


def _say(rasa: RasaServer, sender: Text, text: Text) -> List[Text]:
    reply = _post(rasa, sender, text)
    assert reply.status_code == 200, reply.text
    return [message.get("text") or "" for message in reply.json()]


def _tracker(rasa: RasaServer, sender: Text) -> requests.Response:
    # The REST channel keeps its conversations under `rest:<sender>`.
    return requests.get(f"{rasa.url}/conversations/rest:{sender}/tracker", params={"token": API_TOKEN}, timeout=30)


def _user_texts(tracker: Dict[Text, Any]) -> List[Text]:
    return [event["text"] for event in tracker["events"] if event["event"] == "user"]


def _start_conversation(rasa: RasaServer) -> Text:
    """A customer who has given a number: the slot the outage must not lose."""
    sender = f"outage-{uuid.uuid4().hex[:8]}"
    assert _say(rasa, sender, "hello") == ["hello"]
    assert _say(rasa, sender, message(NUMBER)) == [acknowledgement(NUMBER)]
    tracker = _tracker(rasa, sender)
    assert tracker.status_code == 200 and tracker.json()["slots"]["seq"] == str(NUMBER)
    return sender


def _lines_naming(log: Text, needle: Text) -> List[Text]:
    return [line for line in log.splitlines() if needle in line]


def _refused(rasa: RasaServer, sender: Text, service: Text) -> Tuple[requests.Response, Text]:
    """Send a message during an outage: it must get a 503 naming `service`. Returns the
    response and what the server logged meanwhile."""
    offset = len(rasa.log_text())
    refused = _post(rasa, sender, REFUSED)
    time.sleep(0.5)  # the server writes its log line just before answering
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "service_unavailable" and refused.json()["service"] == service
    return refused, rasa.log_text()[offset:]


def _assert_recovered(rasa: RasaServer, sender: Text, service: Text) -> None:
    """The first message after the restart succeeds at once and the conversation is intact."""
    started = time.monotonic()
    # Answered from the slot set before the outage ("your number is None" if it were lost).
    assert _say(rasa, sender, RECALL) == [f"your number is {NUMBER}"]
    elapsed = time.monotonic() - started
    print(f"first reply after {service} came back: {elapsed:.2f} s")
    assert elapsed < 10, f"first reply after {service} came back took {elapsed:.1f} s"
    tracker = _tracker(rasa, sender)
    assert tracker.status_code == 200, tracker.text
    # Everything said before is there, the refused message is not, the new one is.
    assert _user_texts(tracker.json()) == ["hello", message(NUMBER), RECALL]


def test_postgres_outage_answers_503_and_the_conversation_survives(server: Tuple[RasaServer, Text]) -> None:
    rasa, database = server
    sender = _start_conversation(rasa)

    with stopped(stop_postgres, start_postgres):
        refused, outage_log = _refused(rasa, sender, "tracker_store")
        api = _tracker(rasa, sender)

    assert refused.headers["Retry-After"] == "5"
    assert "tracker_store" in refused.json()["message"] and "Resend it" in refused.json()["message"]
    assert database not in refused.text  # the address is for the log, not the client
    (line,) = _lines_naming(outage_log, database)
    assert re.search(rf"HTTP 503 for a REST message .*TrackerStoreUnavailable: .*{PG_HOST}:{PG_PORT}/{database}", line)
    # Rasa's HTTP API gets the same answer instead of its 500.
    assert api.status_code == 503 and api.json()["service"] == "tracker_store"

    _assert_recovered(rasa, sender, "PostgreSQL")


def test_redis_outage_answers_503_and_the_conversation_survives(server: Tuple[RasaServer, Text]) -> None:
    rasa, _ = server
    sender = _start_conversation(rasa)

    with stopped(stop_redis, start_redis):
        _, outage_log = _refused(rasa, sender, "lock_store")

    (line,) = _lines_naming(outage_log, f"{PG_HOST}:{REDIS_PORT} db {REDIS_DB}")
    assert "HTTP 503 for a REST message" in line and "LockStoreUnavailable" in line

    _assert_recovered(rasa, sender, "Redis")


def test_a_replaced_model_is_strict_too(server: Tuple[RasaServer, Text], numbered_bot_model: Path) -> None:
    """`PUT /model` builds a new Agent with Rasa's lenient wrapper; it must not hide outages."""
    rasa, _ = server
    sender = _start_conversation(rasa)
    loaded = requests.put(
        f"{rasa.url}/model", params={"token": API_TOKEN}, json={"model_file": str(numbered_bot_model)}, timeout=300
    )
    assert loaded.status_code == 204, loaded.text

    with stopped(stop_postgres, start_postgres):
        _refused(rasa, sender, "tracker_store")

    _assert_recovered(rasa, sender, "PostgreSQL")
