"""`PUT /model` (and `/model/test/intents?model=`) load only what the operator allowed.

A real trained model (the numbered bot, trained once per session in seconds) is served
by Rasa's API app as `rasa run --model <folder>/<file>` would, with the token sent, so
every refusal here is one an attacker holding a leaked API token would meet.
"""

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, Text, Tuple

import pytest
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.server.api_auth import API_TOKEN_ENV
from lepton_components.server.channel import LeptonServerInput
from lepton_components.server.model_sources import ALLOW_REMOTE_ENV, MODEL_DIR_ENV, ModelSources
from tests.channels.webhook_harness import serve_app
from tests.integration.numbered_bot import numbered_bot_model  # noqa: F401 (fixture)
from tests.server.lepton_app import API_TOKEN, rasa_app
from tests.server.test_api_gate import call

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_TOKEN_ENV, API_TOKEN)
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)


@pytest.fixture
def folders(numbered_bot_model: Path, tmp_path: Path) -> Tuple[Path, Path]:
    """(the server's model file in its models/ folder, a copy of it outside that folder)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "elsewhere").mkdir()
    inside = tmp_path / "models" / numbered_bot_model.name
    outside = tmp_path / "elsewhere" / "planted.tar.gz"
    shutil.copy(numbered_bot_model, inside)
    shutil.copy(numbered_bot_model, outside)
    return inside, outside


async def load(url: Text, body: Dict[Text, Any]) -> Tuple[int, Any]:
    status, reply, _ = await call("PUT", f"{url}/model", json=body, headers=AUTH)
    return status, reply


async def loaded_model(url: Text) -> Text:
    status, body, _ = await call("GET", f"{url}/status", headers=AUTH)
    assert status == 200, body
    return body["model_file"]


@pytest.mark.asyncio
async def test_only_model_files_inside_the_model_folder_are_loaded(folders: Tuple[Path, Path]) -> None:
    inside, outside = folders
    (inside.parent / "link.tar.gz").symlink_to(outside)
    app = rasa_app([LeptonServerInput()], auth_token=None, model_path=str(inside))
    async with serve_app(app) as url:
        for planted in (str(outside), f"{inside.parent}/../elsewhere/{outside.name}", str(inside.parent / "link.tar.gz"),
                        str(inside.parent.parent), "/", "models\x00/x.tar.gz", "a/" * 5000):
            status, body = await load(url, {"model_file": planted})
            assert status == 403 and body["error"] == "forbidden", (planted, body)
            assert MODEL_DIR_ENV in body["message"] and str(inside.parent) in body["message"]
        assert await loaded_model(url) == inside.name
        assert (await load(url, {"model_file": str(inside)}))[0] == 204
        assert (await load(url, {"model_file": str(inside.parent)}))[0] == 204  # Rasa takes the newest in it


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [
        {"model_server": {"url": "http://169.254.169.254/latest/meta-data", "wait_time_between_pulls": None}},
        {"model_file": "model.tar.gz", "model_server": {"url": "http://127.0.0.1:1/m.tar.gz"}},
        {"model_file": "model.tar.gz", "remote_storage": "aws"},
        {"model_file": "model.tar.gz", "remote_storage": ""},
    ],
)
async def test_models_from_servers_named_in_the_request_are_refused(folders: Tuple[Path, Path], body: Dict) -> None:
    inside, _ = folders
    async with serve_app(rasa_app([LeptonServerInput()], auth_token=None, model_path=str(inside))) as url:
        status, reply = await load(url, body)
        assert status == 403 and ALLOW_REMOTE_ENV in reply["message"], reply
        assert await loaded_model(url) == inside.name


@pytest.mark.asyncio
async def test_the_evaluation_model_of_test_intents_is_checked_the_same_way(folders: Tuple[Path, Path]) -> None:
    inside, outside = folders
    test_data = {"rasa_nlu_data": {"common_examples": [{"text": "message 3", "intent": "inform"}]}}
    async with serve_app(rasa_app([LeptonServerInput()], auth_token=None, model_path=str(inside))) as url:
        status, body, _ = await call("POST", f"{url}/model/test/intents", params={"model": str(outside)},
                                     json=test_data, headers=AUTH)
    assert status == 403 and MODEL_DIR_ENV in body["message"]


@pytest.mark.asyncio
async def test_lepton_model_dir_moves_the_allowed_folder(folders: Tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    inside, outside = folders
    monkeypatch.setenv(MODEL_DIR_ENV, str(outside.parent))
    async with serve_app(rasa_app([LeptonServerInput()], auth_token=None, model_path=str(inside))) as url:
        assert (await load(url, {"model_file": str(outside)}))[0] == 204
        assert await loaded_model(url) == outside.name
        assert (await load(url, {"model_file": str(inside)}))[0] == 403


@pytest.fixture
def model_server(numbered_bot_model: Path) -> Iterator[Text]:
    """A model server on 127.0.0.1 that hands out the numbered bot's archive."""
    archive = numbered_bot_model.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("filename", "served.tar.gz")
            self.send_header("ETag", "served-1")
            self.send_header("Content-Length", str(len(archive)))
            self.end_headers()
            self.wfile.write(archive)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/model.tar.gz"
    finally:
        server.shutdown()


@pytest.mark.asyncio
async def test_remote_models_load_when_explicitly_allowed(
    folders: Tuple[Path, Path], model_server: Text, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside, _ = folders
    monkeypatch.setenv(ALLOW_REMOTE_ENV, "true")
    async with serve_app(rasa_app([LeptonServerInput()], auth_token=None, model_path=str(inside))) as url:
        status, body = await load(url, {"model_server": {"url": model_server, "wait_time_between_pulls": None}})
        assert status == 204, body
        assert await loaded_model(url) == "served.tar.gz"


def test_settings_are_checked_when_the_server_starts(tmp_path: Path) -> None:
    app = rasa_app([], auth_token=None)
    with pytest.raises(InvalidConfigException, match=f"{MODEL_DIR_ENV} must name an existing folder"):
        ModelSources.from_app(app, {MODEL_DIR_ENV: str(tmp_path / "missing")})
    with pytest.raises(InvalidConfigException, match=f"{ALLOW_REMOTE_ENV} must be `true` or `false`, got 'maybe'"):
        ModelSources.from_app(app, {ALLOW_REMOTE_ENV: "maybe"})
    assert ModelSources.from_app(app, {}).folder == Path("models").resolve()
