"""The protections `install_server_extensions` puts on the whole `rasa run` app.

Served for real (Rasa's `create_app` plus the Lepton channels on 127.0.0.1), so the
limits, error pages and token checks are Sanic's and Rasa's own code paths.
"""

import json
import logging
from typing import Any, Dict, Text

import aiohttp
import pytest
from rasa.shared.exceptions import InvalidConfigException
from sanic import Sanic

from lepton_components.server.access_log import ACCESS_LOGGER, REDACTED, install_access_log_filter, redact_url
from lepton_components.server.api_auth import API_TOKEN_ENV, configured_token, install_api_auth
from lepton_components.server.request_limits import MAX_REQUEST_BYTES_ENV, max_request_bytes
from tests.channels.webhook_harness import TIMEOUT_S, serve_app
from tests.rest_client import REST_JSON
from tests.server.lepton_app import API_TOKEN, ParsingAgent, lepton_app

JSON = {"Content-Type": "application/json"}


async def call(method: Text, url: Text, **kwargs: Any) -> Any:
    """(status, parsed JSON or None, content type) of one request."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        async with session.request(method, url, **kwargs) as reply:
            text = await reply.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            return reply.status, body, reply.headers.get("Content-Type", "")


def say(text: Text, sender: Text = "customer-1", padding: int = 0) -> Dict[Text, Any]:
    """A REST request from the website's backend; `padding` characters make the body larger."""
    body = {"sender": sender, "message": text, **({"padding": "a" * padding} if padding else {})}
    return {"data": json.dumps(body), "headers": REST_JSON}


@pytest.mark.asyncio
async def test_oversized_body_gets_json_413_and_the_server_keeps_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_REQUEST_BYTES_ENV, "2000")
    async with serve_app(lepton_app(ParsingAgent())) as url:
        status, body, _ = await call("POST", f"{url}/webhooks/rest/webhook", **say("a" * 5000))
        assert status == 413
        assert body["error"] == "payload_too_large" and MAX_REQUEST_BYTES_ENV in body["message"]
        status, body, _ = await call("POST", f"{url}/webhooks/rest/webhook", **say("hello"))
        assert status == 200 and body[0]["text"].startswith("Hi, I'm the **test** assistant")


@pytest.mark.asyncio
async def test_default_limit_is_one_mebibyte(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_REQUEST_BYTES_ENV, raising=False)
    async with serve_app(lepton_app(ParsingAgent())) as url:
        status, _, _ = await call("POST", f"{url}/webhooks/rest/webhook", **say("hi", padding=1_000_000))
        assert status == 200
        status, body, _ = await call("POST", f"{url}/webhooks/rest/webhook", **say("hi", padding=1_100_000))
        assert status == 413 and body["error"] == "payload_too_large"


@pytest.mark.parametrize("value", ["0", "-5", "1MB", "1.5"])
def test_limit_that_is_not_a_positive_whole_number_is_refused(value: Text) -> None:
    with pytest.raises(InvalidConfigException, match=MAX_REQUEST_BYTES_ENV):
        max_request_bytes({MAX_REQUEST_BYTES_ENV: value})


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "method, path, kwargs, status, code",
    [
        ("GET", "/no/such/route", {}, 404, "not_found"),
        ("GET", "/webhooks/rest/webhook", {}, 405, "method_not_allowed"),
        ("POST", "/webhooks/rest/webhook", {"data": b"{not json", "headers": REST_JSON}, 400, "bad_request"),
        ("POST", "/webhooks/rest/webhook", {"data": b"\xff\xfe\x00", "headers": REST_JSON}, 400, "bad_request"),
        ("POST", "/webhooks/rest/webhook", {"data": b"{}", "headers": JSON}, 401, "unauthorized"),
    ],
)
async def test_sanic_errors_answer_with_the_json_error_shape(
    method: Text, path: Text, kwargs: Dict[Text, Any], status: int, code: Text
) -> None:
    async with serve_app(lepton_app(ParsingAgent())) as url:
        got_status, body, content_type = await call(method, f"{url}{path}", **kwargs)
    assert (got_status, content_type) == (status, "application/json")
    assert body["error"] == code and body["message"]
    assert "Traceback" not in body["message"]


@pytest.mark.asyncio
async def test_unhandled_exception_is_a_json_500_without_its_text(caplog: pytest.LogCaptureFixture) -> None:
    app = lepton_app(ParsingAgent())

    @app.get("/explode")
    async def explode(_: Any) -> None:
        raise RuntimeError("secret database host db.internal:5432")

    async with serve_app(app) as url:
        status, body, _ = await call("GET", f"{url}/explode")
    assert status == 500 and body["error"] == "internal_error"
    assert "db.internal" not in json.dumps(body)
    assert any("db.internal" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)


@pytest.mark.asyncio
async def test_readiness_fails_until_a_model_is_loaded() -> None:
    agent = ParsingAgent()
    agent.ready = False
    app = lepton_app(agent)
    async with serve_app(app) as url:
        status, body, _ = await call("GET", f"{url}/webhooks/rest/ready")
        assert status == 503 and body["error"] == "no_model_loaded"
        assert (await call("GET", f"{url}/"))[0] == 200  # Rasa's health check cannot tell
        agent.ready = True
        status, body, _ = await call("GET", f"{url}/webhooks/rest/ready")
        assert status == 200 and body == {"status": "ready"}
        app.ctx.agent = None
        assert (await call("GET", f"{url}/webhooks/rest/ready"))[0] == 503


@pytest.mark.asyncio
async def test_api_token_is_checked_before_rasa_and_webhooks_stay_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    async with serve_app(lepton_app(ParsingAgent())) as url:
        for params in ({}, {"token": "wrong"}, {"token": API_TOKEN + "x"}):
            status, body, _ = await call("POST", f"{url}/model/parse", params=params, json={"text": "hi"})
            assert status == 401 and body["error"] == "unauthorized", params
        status, body, _ = await call("POST", f"{url}/model/parse", params={"token": API_TOKEN}, json={"text": "hi"})
        assert status == 200 and body["intent"]["name"] == "greet"
        assert (await call("POST", f"{url}/webhooks/rest/webhook", **say("hi")))[0] == 200


@pytest.mark.asyncio
async def test_lepton_api_token_protects_the_api_even_without_auth_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_TOKEN_ENV, API_TOKEN)
    async with serve_app(lepton_app(ParsingAgent(), auth_token=None)) as url:
        assert (await call("GET", f"{url}/status"))[0] == 401
        status, body, _ = await call("POST", f"{url}/model/parse", params={"token": API_TOKEN}, json={"text": "hi"})
        assert status == 200


def test_open_api_refuses_to_start_unless_explicitly_allowed() -> None:
    app = lepton_app(auth_token=None)
    with pytest.raises(InvalidConfigException, match="--auth-token"):
        install_api_auth(app, environment={})
    assert configured_token(app, {"LEPTON_ALLOW_OPEN_API": "true"}) is None


@pytest.mark.parametrize(
    "environment, match",
    [({API_TOKEN_ENV: "short"}, "at least 16"), ({API_TOKEN_ENV: "another-token-0123456789"}, "differ")],
)
def test_bad_api_token_configuration_is_refused(environment: Dict[Text, Text], match: Text) -> None:
    with pytest.raises(InvalidConfigException, match=match):
        configured_token(lepton_app(), environment)


def test_without_api_routes_nothing_is_required() -> None:
    app = Sanic("lepton_no_api")
    install_api_auth(app, environment={})
    assert not app.request_middleware


@pytest.mark.parametrize(
    "line, secret",
    [
        ("GET http://bot/status?token=s3cret", "s3cret"),
        ("POST http://bot/model/parse?emulation_mode=x&TOKEN=s3cret#frag", "s3cret"),
        ("GET http://bot/status?tok%65n=s3cret", "s3cret"),
        ("GET http://bot/webhooks/verified_facebook/webhook?hub.mode=subscribe&hub.verify_token=s3cret", "s3cret"),
    ],
)
def test_secrets_in_query_strings_are_redacted(line: Text, secret: Text) -> None:
    redacted = redact_url(line)
    assert secret not in redacted and REDACTED in redacted


def test_plain_urls_are_logged_unchanged() -> None:
    line = "GET http://bot/webhooks/rest/ready?tokens_used=3&x=1"
    assert redact_url(line) == line


def test_access_log_records_are_redacted_before_any_handler(caplog: pytest.LogCaptureFixture) -> None:
    install_access_log_filter()
    install_access_log_filter()
    access_logger = logging.getLogger(ACCESS_LOGGER)
    assert len(access_logger.filters) == len(set(map(type, access_logger.filters)))
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        # Exactly how Sanic 21.12 logs a response (sanic/http.py `log_response`).
        access_logger.info("", extra={"status": 200, "byte": 2, "host": "h", "request": "GET http://b/status?token=s3"})
    (record,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert record.request == f"GET http://b/status?token={REDACTED}"
