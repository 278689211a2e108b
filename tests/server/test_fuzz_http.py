"""Hypothesis fuzzing of the routes customers and integrations reach, in-process and bounded.

Each route gets junk bodies (not JSON, invalid UTF-8, wrong JSON types, empty) and
awkward text (control characters, emoji, right-to-left scripts, lone surrogate escapes,
1 MB); every answer must be a 4xx or a normal reply, never a 5xx, and a normal message
must still work afterwards. Derandomized with few examples, so it runs in seconds.
"""

import json
from typing import Any, Iterator, Text

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.lepton_app import API_TOKEN, ParsingAgent, lepton_app
from tests.server.threaded_server import app_in_thread

FUZZ = settings(
    max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TIMEOUT_S = 10
JSON = {"Content-Type": "application/json"}

AWKWARD_TEXTS = [
    "", " ", "\x00", "\x07\x1b[31mred\x1b[0m", "\r\n\t", "\u202eevil\u202c", "مرحبا، أين طلبي؟",
    "שלום", "😀👍🏽👨‍👩‍👧", "\ufeff", "\u200b\u200d", "a" * 1_000_000, "/", "/greet{", '/greet{"a": [',
]
texts = st.sampled_from(AWKWARD_TEXTS) | st.text(max_size=300) | st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=50
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
junk_bytes = st.binary(max_size=200) | st.sampled_from(
    [b"", b"{", b"\xff\xfe\xfd", b'{"message": "\\ud800"}', b'{"text": "\\udfff"}', b"NaN", b"[" * 500 + b"]" * 500]
)


def rest_bodies(text_key: Text) -> st.SearchStrategy[bytes]:
    """Bodies for a route that expects {text_key: <string>}: right shape, wrong types, junk."""
    right_shape = st.fixed_dictionaries({text_key: texts}, optional={"sender": texts, "id": texts, "payload": texts})
    wrong_types = st.fixed_dictionaries({text_key: json_values}) | json_values
    as_json = (right_shape | wrong_types).map(lambda value: json.dumps(value).encode("utf-8"))
    return as_json | junk_bytes


@pytest.fixture(scope="module")
def server() -> Iterator[Text]:
    with app_in_thread(lepton_app(ParsingAgent())) as url:
        yield url


def assert_handled(reply: requests.Response) -> None:
    assert reply.status_code < 500, (reply.status_code, reply.text[:500])
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply.text[:200]
    reply.json()


def assert_still_serving(server: Text) -> None:
    reply = requests.post(f"{server}/webhooks/rest/webhook", json={"sender": "after-fuzz", "message": "hi"}, timeout=TIMEOUT_S)
    assert reply.status_code == 200 and reply.json()[0]["buttons"], reply.text


@FUZZ
@given(body=rest_bodies("message"))
def test_rest_webhook_never_fails_on_bad_input(server: Text, body: bytes) -> None:
    reply = requests.post(f"{server}/webhooks/rest/webhook", data=body, headers=JSON, timeout=TIMEOUT_S)
    assert_handled(reply)
    if reply.status_code == 200:
        assert isinstance(reply.json(), list)


@FUZZ
@given(body=rest_bodies("text"))
def test_model_parse_never_fails_on_bad_input(server: Text, body: bytes) -> None:
    reply = requests.post(
        f"{server}/model/parse", params={"token": API_TOKEN}, data=body, headers=JSON, timeout=TIMEOUT_S
    )
    assert_handled(reply)


@pytest.fixture(scope="module")
def session(server: Text) -> Text:
    reply = requests.post(f"{server}/webhooks/web_chat/sessions", timeout=TIMEOUT_S)
    assert reply.status_code == 201
    return reply.json()["session"]


@FUZZ
@given(body=rest_bodies("text"))
def test_web_chat_messages_never_fail_on_bad_input(server: Text, session: Text, body: bytes) -> None:
    headers = {**JSON, "Authorization": f"Bearer {session}"}
    reply = requests.post(f"{server}/webhooks/web_chat/messages", data=body, headers=headers, timeout=TIMEOUT_S)
    assert_handled(reply)
    history = requests.get(f"{server}/webhooks/web_chat/history", headers=headers, timeout=TIMEOUT_S)
    assert history.status_code == 200, history.text[:300]


@FUZZ
@given(
    authorization=st.text(max_size=80) | st.sampled_from(["Bearer ", "Bearer \x00", "bearer  x", "Basic Zm9vOmJhcg=="]),
    origin=st.none() | st.text(max_size=40) | st.sampled_from(["null", "https://evil.example"]),
)
def test_web_chat_tokens_and_origins_never_fail(server: Text, authorization: Text, origin: Any) -> None:
    headers = {"Authorization": authorization, **({"Origin": origin} if origin is not None else {})}
    try:
        reply = requests.get(f"{server}/webhooks/web_chat/history", headers=headers, timeout=TIMEOUT_S)
    except (ValueError, requests.exceptions.InvalidHeader):
        return  # requests refuses to send such a header at all
    assert_handled(reply)


def test_server_still_answers_normally_after_the_fuzz(server: Text) -> None:
    """Ordered last in this module: a normal conversation works after all of the above."""
    assert_still_serving(server)
    parsed = requests.post(f"{server}/model/parse", params={"token": API_TOKEN}, json={"text": "hi"}, timeout=TIMEOUT_S)
    assert parsed.status_code == 200 and parsed.json()["intent"]["name"] == "greet"
