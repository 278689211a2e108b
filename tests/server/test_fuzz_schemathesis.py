"""schemathesis over docs/openapi.yml: in-process in the fast suite, against `rasa run` when slow."""

from pathlib import Path
from typing import Text

import requests

from tests.server.lepton_app import ADMIN_TOKEN, API_TOKEN, ParsingAgent, lepton_app
from tests.server.schemathesis_run import run_schemathesis
from tests.server.threaded_server import app_in_thread
from tests.rest_client import REST_AUTH


def new_session(url: Text) -> Text:
    reply = requests.post(f"{url}/webhooks/web_chat/sessions", timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()["session"]


def test_schemathesis_finds_no_server_errors_or_schema_violations(tmp_path: Path) -> None:
    with app_in_thread(lepton_app(ParsingAgent())) as url:
        result = run_schemathesis(url, tmp_path, API_TOKEN, ADMIN_TOKEN, new_session(url), max_examples=10)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        reply = requests.post(f"{url}/webhooks/rest/webhook", json={"sender": "after", "message": "hi"}, headers=REST_AUTH, timeout=10)
        assert reply.status_code == 200 and reply.json()[0]["buttons"]
