"""The hardening under real `rasa run`: readiness, API token, and schemathesis with the demo model."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Text, Tuple

import pytest
import requests

from tests.integration.conftest import REPO
from tests.integration.numbered_bot import numbered_bot_model  # noqa: F401 (fixture)
from tests.rest_client import REST_AUTH
from tests.server.schemathesis_run import run_schemathesis
from tests.server.test_rasa_internals import RASA_GUARDED_ROUTES

pytestmark = pytest.mark.slow

API_TOKEN = "hardening-api-token-0123456789abcdef"
ADMIN_TOKEN = "hardening-admin-token-0123456789abcdef"
START_TIMEOUT_S = 240


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rasa(
    arguments: List[Text], folder: Path, environment: Dict[Text, Text], credentials: Path = REPO / "bot" / "credentials.yml"
) -> subprocess.Popen:
    log = (folder / "rasa.log").open("w")
    rasa = Path(sys.executable).parent / "rasa"
    return subprocess.Popen(
        # bot/endpoints.yml as `make serve` uses it: SQLite in `folder`, which the operator
        # console of bot/credentials.yml needs.
        [str(rasa), "run", "--credentials", str(credentials), "--endpoints", str(REPO / "bot" / "endpoints.yml"),
         "--interface", "127.0.0.1", *arguments],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "LEPTON_ADMIN_TOKEN": ADMIN_TOKEN, **environment},
    )


def _wait_for(url: Text, process: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if requests.get(url, timeout=2).status_code in (200, 503):
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    pytest.fail("rasa run did not come up:\n" + log.read_text()[-3000:])


@pytest.fixture(scope="module")
def demo_server(demo_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Text]:
    folder = tmp_path_factory.mktemp("hardened")
    (folder / "data").mkdir()
    (folder / "data" / "faq.yml").write_text((REPO / "data" / "faq.yml").read_text(encoding="utf-8"), encoding="utf-8")
    port = _free_port()
    process = _rasa(["--model", str(demo_model_path), "--port", str(port), "--enable-api", "--auth-token", API_TOKEN],
                    folder, {"LEPTON_API_TOKEN": API_TOKEN})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/webhooks/rest/ready", process, folder / "rasa.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert API_TOKEN not in (folder / "rasa.log").read_text(), "the API token reached the log"


def test_schemathesis_against_rasa_run_with_the_demo_model(demo_server: Text, tmp_path: Path) -> None:
    session = requests.post(f"{demo_server}/webhooks/web_chat/sessions", timeout=10).json()["session"]
    result = run_schemathesis(demo_server, tmp_path, API_TOKEN, ADMIN_TOKEN, session, max_examples=15)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    reply = requests.post(
        f"{demo_server}/webhooks/rest/webhook", json={"sender": uuid.uuid4().hex, "message": "where is my order?"}, headers=REST_AUTH,
        timeout=60,
    )
    assert reply.status_code == 200 and "order number" in " ".join(m.get("text", "") for m in reply.json())


def test_demo_greeting_buttons_work_and_forced_entities_do_not(demo_server: Text) -> None:
    sender = uuid.uuid4().hex

    def say(text: Text) -> List[Dict]:
        reply = requests.post(f"{demo_server}/webhooks/rest/webhook", json={"sender": sender, "message": text}, headers=REST_AUTH,
                              timeout=60)
        assert reply.status_code == 200, reply.text
        return reply.json()

    buttons = [b for m in say("hi") for b in m.get("buttons", [])]
    assert any(b["payload"] == "/order_status" for b in buttons)
    assert "order number" in " ".join(m.get("text", "") for m in say("/order_status"))
    forced = requests.post(f"{demo_server}/model/parse", params={"token": API_TOKEN},
                           json={"text": '/order_status{"order_number": "LP-999999"}'}, timeout=60)
    assert forced.status_code == 200  # the API is trusted: it may still use intent commands


def test_api_needs_the_token(demo_server: Text) -> None:
    assert requests.post(f"{demo_server}/model/parse", json={"text": "hi"}, timeout=10).status_code == 401
    assert requests.get(f"{demo_server}/status", params={"token": "wrong"}, timeout=10).status_code == 401
    assert requests.get(f"{demo_server}/status", params={"token": API_TOKEN}, timeout=10).status_code == 200


def _broken_model(folder: Path) -> Text:
    """A model file Rasa finds but cannot load: `rasa run` then serves with no model."""
    model = folder / "broken.tar.gz"
    model.write_bytes(b"not a model archive")
    return str(model)


def test_readiness_is_503_while_no_model_is_loaded(tmp_path: Path) -> None:
    port = _free_port()
    process = _rasa(["--model", _broken_model(tmp_path), "--port", str(port)], tmp_path, {})
    try:
        _wait_for(f"http://127.0.0.1:{port}/webhooks/rest/ready", process, tmp_path / "rasa.log")
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        ready = requests.get(f"http://127.0.0.1:{port}/webhooks/rest/ready", timeout=5)
        assert ready.status_code == 503 and ready.json()["error"] == "no_model_loaded"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_open_api_refuses_to_start(tmp_path: Path) -> None:
    process = _rasa(["--model", _broken_model(tmp_path), "--port", str(_free_port()), "--enable-api"],
                    tmp_path, {"LEPTON_API_TOKEN": ""})
    try:
        process.wait(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.terminate()
        pytest.fail("rasa run served an open API")
    assert process.returncode != 0
    assert "without --auth-token or --jwt-secret" in (tmp_path / "rasa.log").read_text()


@pytest.fixture(scope="module")
def make_serve_api(numbered_bot_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Text, Path]]:  # noqa: F811
    """`rasa run --enable-api` as `make serve` starts it now: the token only in the environment,
    no --auth-token, and only the explicit `LeptonServerInput` switch listed."""
    folder = tmp_path_factory.mktemp("make-serve")
    # Not `models`, Rasa's default: the allowed folder must come from `--model` itself.
    (folder / "served-models").mkdir()
    model = folder / "served-models" / numbered_bot_model.name
    model.write_bytes(numbered_bot_model.read_bytes())
    credentials = folder / "credentials.yml"
    credentials.write_text("lepton_components.server.channel.LeptonServerInput:\n", encoding="utf-8")
    port = _free_port()
    process = _rasa(["--model", str(model), "--port", str(port), "--enable-api"], folder,
                    {"LEPTON_API_TOKEN": API_TOKEN}, credentials=credentials)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/version", process, folder / "rasa.log")
        deadline = time.time() + START_TIMEOUT_S
        while requests.get(f"{url}/status", headers=BEARER, timeout=5).status_code != 200:
            assert time.time() < deadline, (folder / "rasa.log").read_text()[-3000:]
            time.sleep(1)
        yield url, model
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert API_TOKEN not in (folder / "rasa.log").read_text(), "the API token reached the log"


BEARER = {"Authorization": f"Bearer {API_TOKEN}"}


def test_without_auth_token_every_api_route_still_needs_the_token(make_serve_api: Tuple[Text, Path]) -> None:
    url, _ = make_serve_api
    for method, path in sorted(RASA_GUARDED_ROUTES):
        target = f"{url}/{path.replace('<conversation_id:path>', 'someone')}"
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}):
            reply = requests.request(method, target, headers=headers, json={"text": "hi"}, timeout=10)
            assert reply.status_code == 401, (method, path, reply.status_code, reply.text[:200])
    parsed = requests.post(f"{url}/model/parse", headers=BEARER, json={"text": "message 7"}, timeout=30)
    assert parsed.status_code == 200 and parsed.json()["intent"]["name"] == "inform"
    assert requests.post(f"{url}/model/parse", params={"token": API_TOKEN}, json={"text": "hi"}, timeout=30).ok


def test_put_model_loads_only_from_the_model_folder(make_serve_api: Tuple[Text, Path], tmp_path: Path) -> None:
    url, model = make_serve_api
    planted = tmp_path / "planted.tar.gz"
    planted.write_bytes(model.read_bytes())
    for body in ({"model_file": str(planted)}, {"model_server": {"url": "http://127.0.0.1:9/m.tar.gz"}},
                 {"model_file": "m.tar.gz", "remote_storage": "aws"}):
        reply = requests.put(f"{url}/model", headers=BEARER, json=body, timeout=30)
        assert reply.status_code == 403 and reply.json()["error"] == "forbidden", (body, reply.text)
    assert requests.put(f"{url}/model", headers=BEARER, json={"model_file": str(model)}, timeout=120).status_code == 204


def test_metrics_are_served_to_this_machine(make_serve_api: Tuple[Text, Path]) -> None:
    url, _ = make_serve_api
    reply = requests.get(f"{url}/metrics", timeout=10)
    assert reply.status_code == 200 and "lepton_http_request_duration_seconds" in reply.text
