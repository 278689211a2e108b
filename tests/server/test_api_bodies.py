"""Bodies Rasa's API cannot read get 400 before Rasa sees them, on every route that reads one.

Served with a real trained model (the numbered bot), so a body that got past the check
would reach Rasa's real handlers, which answer such bodies with 500 (checked below).
"""

from pathlib import Path
from typing import Any, Iterator, Text

import pytest

from lepton_components.server.api_auth import API_TOKEN_ENV
from lepton_components.server.api_bodies import SCHEMAS, YAML_ROUTES
from lepton_components.server.channel import LeptonServerInput
from tests.integration.numbered_bot import numbered_bot_model  # noqa: F401 (fixture)
from tests.server.lepton_app import API_TOKEN, rasa_app
from tests.server.raw_http import bearer_header, raw_request
from tests.server.threaded_server import app_in_thread

AUTH = bearer_header(API_TOKEN.encode("ascii"))
JSON_TYPE = (b"Content-Type", b"application/json")
YAML_TYPE = (b"Content-Type", b"application/x-yaml")

JSON_ROUTES = sorted(SCHEMAS)
NOT_UTF8 = [b"\xff\xfe", b'{"text": "hi\xff", "sender": "user", "name": "x"}', b'{"text": "\xed\xa0\x80"}']
LONE_SURROGATES = [
    b'{"text": "\\ud800", "sender": "user", "name": "utter_ack", "model_file": "\\udfff"}',
    b'[{"event": "user", "text": "hi \\udc00", "parse_data": {}}]',
    b'{"event": "bot", "text": "x", "\\ud83d": 1}',
]
WRONG_SHAPES = [b"", b"null", b"42", b'"text"', b'{"text": 7, "sender": [], "name": {}, "event": 1, "model_file": 7}']
# Bodies Rasa's own handlers (no Lepton check in front) answer with 500.
RASA_FAILS_ON = [
    ("POST", "/model/parse", b"\xff\xfe"),
    ("POST", "/model/parse", b"[]"),
    ("PUT", "/model", b"[]"),
    ("POST", "/conversations/someone/messages", b"[]"),
    ("POST", "/conversations/someone/trigger_intent", b'{"name": "inform", "entities": [1]}'),
    ("POST", "/conversations/someone/tracker/events", b'[{"event": "user", "text": "hi"}]'),
    ("POST", "/conversations/someone/tracker/events", b"[]"),
]


def url_of(route: Text) -> bytes:
    return ("/" + route.replace("<conversation_id:path>", "someone")).encode("ascii")


@pytest.fixture(scope="module")
def server(numbered_bot_model: Path) -> Iterator[Text]:  # noqa: F811
    patch = pytest.MonkeyPatch()
    patch.setenv(API_TOKEN_ENV, API_TOKEN)
    try:
        with app_in_thread(rasa_app([LeptonServerInput()], auth_token=None, model_path=str(numbered_bot_model))) as url:
            yield url
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def stock_rasa(numbered_bot_model: Path) -> Iterator[Text]:  # noqa: F811
    """The same app without any Lepton channel: Rasa alone (open, as it allows)."""
    with app_in_thread(rasa_app([], auth_token=None, model_path=str(numbered_bot_model))) as url:
        yield url


def run(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)


@pytest.mark.parametrize("method, route", JSON_ROUTES)
@pytest.mark.parametrize("body", NOT_UTF8 + LONE_SURROGATES + WRONG_SHAPES)
def test_unreadable_json_bodies_get_400(server: Text, method: Text, route: Text, body: bytes) -> None:
    reply = run(raw_request(server, method, url_of(route), [AUTH, JSON_TYPE], body))
    assert reply.status == 400, (reply.status, reply.body[:300])
    assert reply.json()["error"] == "bad_request" and reply.json()["message"]
    assert "Traceback" not in reply.json()["message"]


def wrong_container(method: Text, route: Text) -> bytes:
    """A list where the route reads an object, an object where it reads a list of events."""
    reads_object = SCHEMAS[(method, route)].get("type") == "object" or route.endswith("tracker/events") and method == "POST"
    return b"[]" if reads_object else b'{"event": "bot", "text": "hi"}'


@pytest.mark.parametrize("method, route", JSON_ROUTES)
def test_the_wrong_container_gets_400(server: Text, method: Text, route: Text) -> None:
    reply = run(raw_request(server, method, url_of(route), [AUTH, JSON_TYPE], wrong_container(method, route)))
    assert reply.status == 400 and "shape" in reply.json()["message"], (reply.status, reply.body[:300])


@pytest.mark.parametrize("method, route", sorted(YAML_ROUTES) + [("POST", "model/test/intents")])
@pytest.mark.parametrize("body", NOT_UTF8)
def test_yaml_bodies_that_are_not_utf8_get_400(server: Text, method: Text, route: Text, body: bytes) -> None:
    reply = run(raw_request(server, method, url_of(route), [AUTH, YAML_TYPE], body))
    assert reply.status == 400 and "UTF-8" in reply.json()["message"], reply.body[:300]


def test_the_token_is_checked_before_the_body(server: Text) -> None:
    assert run(raw_request(server, "POST", b"/model/parse", [JSON_TYPE], b"\xff")).status == 401


@pytest.mark.parametrize("method, path, body", RASA_FAILS_ON)
def test_what_stock_rasa_answers_with_500_gets_400(server: Text, stock_rasa: Text, method: Text, path: Text,
                                                   body: bytes) -> None:
    assert run(raw_request(stock_rasa, method, path.encode(), [JSON_TYPE], body)).status == 500
    assert run(raw_request(server, method, path.encode(), [AUTH, JSON_TYPE], body)).status == 400


def test_valid_bodies_still_reach_rasa(server: Text) -> None:
    parsed = run(raw_request(server, "POST", b"/model/parse", [AUTH, JSON_TYPE], '{"text": "message 3 😀"}'.encode()))
    assert parsed.status == 200 and parsed.json()["intent"]["name"] == "inform"
    pair = run(raw_request(server, "POST", b"/model/parse", [AUTH, JSON_TYPE], b'{"text": "\\ud83d\\ude00"}'))
    assert pair.status == 200 and pair.json()["text"] == "😀"
    added = run(raw_request(server, "POST", b"/conversations/c1/messages", [AUTH, JSON_TYPE],
                            b'{"text": "message 4", "sender": "user"}'))
    assert added.status == 200 and added.json()["latest_message"]["text"] == "message 4"
    events = run(raw_request(server, "POST", b"/conversations/c1/tracker/events", [AUTH, JSON_TYPE],
                             b'{"event": "slot", "name": "seq", "value": "9"}'))
    assert events.status == 200 and events.json()["slots"]["seq"] == "9"
