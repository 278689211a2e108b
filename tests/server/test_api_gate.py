"""The API gate on a real Rasa API app: every route Rasa guards needs the token, however it is sent.

The app is Rasa's `create_app` with only `LeptonServerInput` listed (so nothing but the
server extensions is added) and `LEPTON_API_TOKEN` set, served on 127.0.0.1.
"""

import json
from typing import Any, Dict, Optional, Text

import aiohttp
import jwt
import pytest
import rasa.server
from rasa.shared.exceptions import InvalidConfigException
from sanic import response

from lepton_components.server.api_auth import API_TOKEN_ENV, configured_token
from lepton_components.server.channel import LeptonServerInput
from tests.channels.webhook_harness import TIMEOUT_S, serve_app
from tests.server.lepton_app import API_TOKEN, ParsingAgent, rasa_app
from tests.server.raw_http import bearer_header, query, raw_request
from tests.server.test_rasa_internals import RASA_GUARDED_ROUTES

JWT_SECRET = "test-jwt-secret-0123456789abcdef"
# A concrete URL for each route Rasa guards.
API_URLS = sorted((method, "/" + path.replace("<conversation_id:path>", "someone")) for method, path in RASA_GUARDED_ROUTES)
WRONG = [
    {},
    {"params": {"token": "wrong-token-0123456789abcdef"}},
    {"params": {"token": API_TOKEN + "x"}},
    {"headers": {"Authorization": "Bearer wrong-token-0123456789abcdef"}},
    {"headers": {"Authorization": f"Basic {API_TOKEN}"}},
    {"headers": {"Authorization": API_TOKEN}},
    {"headers": {"Authorization": "Bearer"}},
]


async def call(method: Text, url: Text, **kwargs: Any) -> Any:
    """(status, parsed JSON or None, headers) of one request."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        async with session.request(method, url, **kwargs) as reply:
            text = await reply.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            return reply.status, body, reply.headers


def parse(text: Text = "hi", **kwargs: Any) -> Dict[Text, Any]:
    return {"json": {"text": text}, **kwargs}


@pytest.fixture(autouse=True)
def api_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_TOKEN_ENV, API_TOKEN)


@pytest.mark.asyncio
@pytest.mark.parametrize("rasa_token", [None, API_TOKEN], ids=["env-only (make serve)", "with --auth-token"])
async def test_every_route_rasa_guards_refuses_missing_and_wrong_tokens(rasa_token: Optional[Text]) -> None:
    async with serve_app(rasa_app([LeptonServerInput()], ParsingAgent(), auth_token=rasa_token)) as url:
        for method, path in API_URLS:
            for credentials in WRONG:
                status, body, headers = await call(method, url + path, **credentials)
                assert (status, body["error"]) == (401, "unauthorized"), (method, path, credentials, body)
                assert headers["WWW-Authenticate"] == "Bearer"
        # Routes Rasa leaves open stay open.
        assert (await call("GET", url + "/"))[0] == 200
        assert (await call("GET", url + "/version"))[0] == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("rasa_token", [None, API_TOKEN], ids=["env-only (make serve)", "with --auth-token"])
async def test_the_token_works_as_a_bearer_header_and_as_the_query_parameter(rasa_token: Optional[Text]) -> None:
    async with serve_app(rasa_app([LeptonServerInput()], ParsingAgent(), auth_token=rasa_token)) as url:
        for credentials in ({"headers": {"Authorization": f"Bearer {API_TOKEN}"}},
                            {"headers": {"Authorization": f"bearer  {API_TOKEN} "}},
                            {"params": {"token": API_TOKEN}}):
            status, body, _ = await call("POST", f"{url}/model/parse", **parse(**credentials))
            assert status == 200 and body["intent"]["name"] == "greet", credentials


@pytest.mark.asyncio
async def test_a_route_guarded_by_requires_auth_but_missing_from_any_list_is_gated_too() -> None:
    app = rasa_app([LeptonServerInput()], ParsingAgent(), auth_token=None)

    @app.get("/reports/conversations")
    @rasa.server.requires_auth(app, None)
    async def report(request: Any) -> Any:
        return response.json({"every": "conversation"})

    async with serve_app(app) as url:
        status, body, _ = await call("GET", f"{url}/reports/conversations")
        assert status == 401 and "every" not in json.dumps(body)
        status, body, _ = await call("GET", f"{url}/reports/conversations",
                                     headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert status == 200 and body == {"every": "conversation"}


@pytest.mark.asyncio
@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"\xc3\x28", b"Bearer " + API_TOKEN.encode() + b"\x80"])
async def test_an_authorization_header_that_is_not_utf8_gets_400_not_500(value: bytes) -> None:
    async with serve_app(rasa_app([LeptonServerInput()], ParsingAgent(), auth_token=None)) as url:
        reply = await raw_request(url, "POST", b"/model/parse", [(b"Authorization", value)], b'{"text": "hi"}')
        assert reply.status == 400 and reply.json()["error"] == "bad_request"
        assert "UTF-8" in reply.json()["message"]
        # With the right token in the URL the bad header is still refused, not ignored.
        reply = await raw_request(url, "POST", query("/model/parse", API_TOKEN), [(b"Authorization", value)], b"{}")
        assert reply.status == 400
        reply = await raw_request(url, "POST", b"/model/parse", [bearer_header(API_TOKEN.encode())], b'{"text": "hi"}')
        assert reply.status == 200


@pytest.mark.asyncio
async def test_with_jwt_a_bearer_that_is_not_the_api_token_goes_to_rasas_jwt_check() -> None:
    admin = jwt.encode({"user": {"username": "ops", "role": "admin"}}, JWT_SECRET, algorithm="HS256")
    forged = jwt.encode({"user": {"username": "ops", "role": "admin"}}, "not-the-secret-0123456789", algorithm="HS256")
    app = rasa_app([LeptonServerInput()], ParsingAgent(), auth_token=None, jwt_secret=JWT_SECRET)
    async with serve_app(app) as url:
        assert (await call("POST", f"{url}/model/parse", **parse(headers={"Authorization": f"Bearer {admin}"})))[0] == 200
        assert (await call("POST", f"{url}/model/parse", **parse(headers={"Authorization": f"Bearer {forged}"})))[0] == 401
        assert (await call("POST", f"{url}/model/parse", **parse(headers={"Authorization": f"Bearer {API_TOKEN}"})))[0] == 200
        # A wrong `?token=` is refused even next to a valid JWT: it never reaches Rasa's `==`.
        wrong_query = parse(headers={"Authorization": f"Bearer {admin}"}, params={"token": "wrong-token-0123456789"})
        assert (await call("POST", f"{url}/model/parse", **wrong_query))[0] == 401


@pytest.mark.parametrize("token", ["short", "sixteen chars ok", "tökentökentökentöken", "token\x07token\x07token"])
def test_weak_or_unprintable_tokens_are_refused_at_start(token: Text) -> None:
    with pytest.raises(InvalidConfigException, match="at least 16 printable ASCII characters without spaces"):
        configured_token(rasa_app([], auth_token=None), {API_TOKEN_ENV: token})
