"""Hypothesis fuzzing of the routes customers and integrations reach, in-process and bounded.

Each route gets junk bodies (not JSON, invalid UTF-8, wrong JSON types, empty) and
awkward text (control characters, emoji, right-to-left scripts, lone surrogate escapes,
1 MB); every answer must be a 4xx or a normal reply, never a 5xx, and a normal message
must still work afterwards. Every JSON and YAML route of Rasa's HTTP API, served with a
real trained model, must answer invalid UTF-8 and lone surrogates with exactly 400, and
`Authorization` headers of arbitrary bytes (sent over a raw socket, as no client library
would) must get 400 or 401 from the API, faq_admin and /metrics. Derandomized with few
examples, so it runs in seconds.
"""

import asyncio
import json
from pathlib import Path
from typing import Any, Iterator, Text, Tuple

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_components.server.api_auth import API_TOKEN_ENV
from lepton_components.server.api_bodies import SCHEMAS, YAML_ROUTES
from lepton_components.server.channel import LeptonServerInput
from tests.integration.numbered_bot import numbered_bot_model  # noqa: F401 (fixture)
from tests.server.lepton_app import API_TOKEN, ParsingAgent, lepton_app, rasa_app
from tests.server.raw_http import raw_request
from tests.server.threaded_server import app_in_thread
from tests.rest_client import REST_AUTH, REST_JSON

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
    [b"", b"{", b"\xff\xfe\xfd", b'{"message": "\\ud800"}', b'{"text": "\\udfff"}', b"NaN", b"[" * 500 + b"]" * 500,
     # Above U+10FFFF: ujson raises SystemError for it, not ValueError.
     b'{"message": "\xf4\x90\x80\x80", "text": "\xf4\x90\x80\x80"}']
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
    reply = requests.post(f"{server}/webhooks/rest/webhook", json={"sender": "after-fuzz", "message": "hi"}, headers=REST_AUTH, timeout=TIMEOUT_S)
    assert reply.status_code == 200 and reply.json()[0]["buttons"], reply.text


@FUZZ
@given(body=rest_bodies("message"))
def test_rest_webhook_never_fails_on_bad_input(server: Text, body: bytes) -> None:
    reply = requests.post(f"{server}/webhooks/rest/webhook", data=body, headers=REST_JSON, timeout=TIMEOUT_S)
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


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _with_lone_surrogate(value: Any, code: int, as_key: bool) -> bytes:
    """`value` in a JSON object next to a string (or key) holding one lone surrogate, `\\udXXX`-escaped."""
    lone = "x" + chr(code) + "y"
    document = {lone: value} if as_key else {"text": lone, "name": lone, "sender": "user", "event": "user",
                                               "payload": value}
    return json.dumps(document).encode("ascii")


not_utf8 = st.binary(min_size=1, max_size=200).filter(lambda data: not _utf8(data)) | st.sampled_from(
    [b"\xff", b'{"text": "\xed\xa0\x80"}', b'{"text": "hi\xc3"}', b'["\xf4\x90\x80\x80"]']
)
lone_surrogates = st.builds(_with_lone_surrogate, json_values, st.integers(0xD800, 0xDFFF), st.booleans())
API_JSON_ROUTES = sorted(SCHEMAS)
API_TEXT_ROUTES = sorted(YAML_ROUTES)


def api_target(route: Text) -> bytes:
    return ("/" + route.replace("<conversation_id:path>", "fuzz-conversation")).encode("ascii")


@pytest.fixture(scope="module")
def api_server(numbered_bot_model: Path) -> Iterator[Text]:  # noqa: F811
    """Rasa's API with a real trained model and the Lepton extensions (switched on explicitly)."""
    patch = pytest.MonkeyPatch()
    patch.setenv(API_TOKEN_ENV, API_TOKEN)
    try:
        app = rasa_app([LeptonServerInput()], auth_token=None, model_path=str(numbered_bot_model))
        with app_in_thread(app) as url:
            yield url
    finally:
        patch.undo()


def send(url: Text, method: Text, target: bytes, headers: Any, body: bytes = b"") -> Any:
    return asyncio.run(raw_request(url, method, target, headers, body))


API_AUTH = (b"Authorization", b"Bearer " + API_TOKEN.encode("ascii"))


@FUZZ
@given(route=st.sampled_from(API_JSON_ROUTES), body=not_utf8 | lone_surrogates)
def test_rasa_api_json_routes_answer_bad_text_with_400(api_server: Text, route: Tuple[Text, Text], body: bytes) -> None:
    method, path = route
    reply = send(api_server, method, api_target(path), [API_AUTH, (b"Content-Type", b"application/json")], body)
    assert reply.status == 400, (route, body[:100], reply.status, reply.body[:300])
    assert reply.json()["error"] == "bad_request"


@FUZZ
@given(route=st.sampled_from(API_TEXT_ROUTES), body=not_utf8)
def test_rasa_api_yaml_routes_answer_invalid_utf8_with_400(api_server: Text, route: Tuple[Text, Text], body: bytes) -> None:
    method, path = route
    reply = send(api_server, method, api_target(path), [API_AUTH, (b"Content-Type", b"application/x-yaml")], body)
    assert reply.status == 400 and "UTF-8" in reply.json()["message"], (route, reply.status, reply.body[:300])


# Any bytes a header value can hold on the wire: everything but CR and LF, which end it.
header_values = st.binary(max_size=80).map(lambda data: data.replace(b"\r", b"").replace(b"\n", b"")) | st.sampled_from(
    [b"Bearer \xff", b"Bearer " + API_TOKEN.encode() + b"\x80", b"\xc3\x28", b"Bearer", b"bearer \x00", b" "]
)


@FUZZ
@given(value=header_values)
def test_hostile_authorization_bytes_get_400_or_401(server: Text, api_server: Text, value: bytes) -> None:
    header = [(b"Authorization", value)]
    for url, method, target in (
        (api_server, "POST", b"/model/parse"),
        (api_server, "GET", b"/status"),
        (server, "GET", b"/webhooks/faq_admin/status"),
        (server, "POST", b"/webhooks/faq_admin/reload"),
    ):
        reply = send(url, method, target, header, b'{"text": "hi"}' if method == "POST" else b"")
        assert reply.status in (400, 401), (target, value, reply.status, reply.body[:200])
        assert reply.json()["error"] in ("bad_request", "unauthorized")
    metrics = send(server, "GET", b"/metrics", header)
    assert metrics.status in (200, 400, 401), (value, metrics.status)


def test_rasa_api_still_works_after_the_fuzz(api_server: Text) -> None:
    reply = send(api_server, "POST", b"/model/parse", [API_AUTH], b'{"text": "message 5"}')
    assert reply.status == 200 and reply.json()["intent"]["name"] == "inform"
    assert send(api_server, "GET", b"/status", [API_AUTH]).status == 200


def test_server_still_answers_normally_after_the_fuzz(server: Text) -> None:
    """Ordered last in this module: a normal conversation works after all of the above."""
    assert_still_serving(server)
    parsed = requests.post(f"{server}/model/parse", params={"token": API_TOKEN}, json={"text": "hi"}, timeout=TIMEOUT_S)
    assert parsed.status_code == 200 and parsed.json()["intent"]["name"] == "greet"
