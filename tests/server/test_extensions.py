"""Whichever single Lepton entry `credentials.yml` lists, the whole server gets every protection, once."""

import json
from pathlib import Path
from typing import Any, List

import pytest
import redis.exceptions
from rasa.core.channels.channel import InputChannel
from sanic import Sanic

from lepton_components.channels.faq_admin import FaqAdminInput
from lepton_components.server.api_auth import API_TOKEN_ENV
from lepton_components.server.channel import LeptonServerInput
from lepton_components.server.extensions import server_extensions_installed
from lepton_components.server.request_limits import MAX_REQUEST_BYTES_ENV
from tests.channels.webhook_harness import serve_app
from tests.server.lepton_app import ADMIN_TOKEN, API_TOKEN, ParsingAgent, rasa_app
from tests.server.test_api_gate import call

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_TOKEN_ENV, API_TOKEN)
    monkeypatch.setenv(MAX_REQUEST_BYTES_ENV, "4096")
    for name in ("LEPTON_METRICS_ALLOW", "LEPTON_METRICS_TOKEN", "LEPTON_MODEL_DIR", "LEPTON_ALLOW_REMOTE_MODELS"):
        monkeypatch.delenv(name, raising=False)


def app_with(channels: List[InputChannel]) -> Sanic:
    app = rasa_app(channels, ParsingAgent(), auth_token=None)

    @app.get("/lepton-test/redis-down")
    async def redis_down(request: Any) -> None:
        raise redis.exceptions.ConnectionError("Error 111 connecting to 10.0.0.5:6379. Connection refused.")

    return app


@pytest.mark.asyncio
@pytest.mark.parametrize("channel", [FaqAdminInput(ADMIN_TOKEN), LeptonServerInput()], ids=["faq_admin", "switch"])
async def test_one_lepton_entry_installs_every_protection(channel: InputChannel, tmp_path: Path) -> None:
    async with serve_app(app_with([channel])) as url:
        # The API gate, although `rasa run` got no --auth-token.
        status, body, _ = await call("GET", f"{url}/status")
        assert (status, body["error"]) == (401, "unauthorized")
        # Body limits, with the JSON error shape.
        status, body, _ = await call("POST", f"{url}/model/parse", data=b"x" * 5000, headers=AUTH)
        assert (status, body["error"]) == (413, "payload_too_large")
        # JSON errors for Sanic's own answers.
        status, body, headers = await call("GET", f"{url}/no/such/page")
        assert (status, body["error"], headers["Content-Type"]) == (404, "not_found", "application/json")
        # API bodies.
        status, body, _ = await call("POST", f"{url}/model/parse", data=b'{"text": "\\ud800"}', headers=AUTH)
        assert (status, body["error"]) == (400, "bad_request")
        # Model sources.
        status, body, _ = await call("PUT", f"{url}/model", json={"model_file": str(tmp_path)}, headers=AUTH)
        assert (status, body["error"]) == (403, "forbidden")
        # Strict mode: an outage is a 503 naming the service, without its address.
        status, body, headers = await call("GET", f"{url}/lepton-test/redis-down")
        assert (status, body["service"], headers["Retry-After"]) == (503, "redis", "5")
        assert "10.0.0.5" not in json.dumps(body)
        # Metrics, for this machine.
        status, _, _ = await call("GET", f"{url}/metrics")
        assert status == 200


@pytest.mark.asyncio
async def test_without_a_lepton_entry_rasa_is_served_as_it_is() -> None:
    """The negative control: the protections come from the entry, not from importing Lepton."""
    app = app_with([])
    async with serve_app(app) as url:
        assert (await call("POST", f"{url}/model/parse", json={"text": "hi"}))[0] == 200
        assert (await call("GET", f"{url}/metrics"))[0] == 404
    assert not server_extensions_installed(app)


@pytest.mark.asyncio
async def test_several_entries_install_everything_once() -> None:
    once, twice = app_with([LeptonServerInput()]), app_with([FaqAdminInput(ADMIN_TOKEN), LeptonServerInput()])
    async with serve_app(once):
        pass
    async with serve_app(twice) as url:
        status, body, _ = await call("POST", f"{url}/model/parse", json={"text": "hi"}, headers=AUTH)
        assert status == 200 and body["intent"]["name"] == "greet"
    assert server_extensions_installed(once) and server_extensions_installed(twice)
    assert len(twice.request_middleware) == len(once.request_middleware)
    assert len(twice.response_middleware) == len(once.response_middleware)
    assert [route.path for route in twice.router.routes].count("metrics") == 1
