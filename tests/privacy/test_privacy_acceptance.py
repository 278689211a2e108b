"""Acceptance: a conversation full of personal data over the REST channel against
`rasa run` with the masking SQL tracker store and DEBUG logging to a file. Neither the
SQLite database nor the log files may hold a raw value; the bot still answers with the
order number, in the turn it was given and from storage in a later turn."""

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import List, Text

import pytest
import requests
import yaml

from lepton_components.privacy.masking_tracker_store import STORE_TYPE
from lepton_components.privacy.privacy_policy import DEFAULT_SECRET_ENV
from tests.integration.conftest import REPO, demo_model_path  # noqa: F401 - session fixture
from tests.integration.scaled_services import CREDENTIALS, RasaServer, free_port
from tests.rest_client import REST_AUTH

pytestmark = pytest.mark.slow

ORDER = "LP-482913"
# Each raw value as typed, and the forms a careless store or log could write it in.
RAW = {
    "email": ["ada.lovelace@example.com"],
    "phone": ["+44 20 7946 0958", "7946 0958", "+442079460958", "2079460958"],
    "card": ["4111 1111 1111 1111", "4111111111111111"],
    "iban": ["GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", "WEST 1234 5698"],
}
CONVERSATION = [
    "hi, my email is ada.lovelace@example.com",
    "you can call me on +44 20 7946 0958",
    "my card 4111 1111 1111 1111 was declined",
    "please refund to GB82 WEST 1234 5698 7654 32",
    f"where is my order {ORDER}?",
    "what's the status of my order?",
]


def write_endpoints(folder: Path) -> Path:
    settings = {
        "tracker_store": {
            "type": STORE_TYPE,
            "inner": {"type": "SQL", "dialect": "sqlite", "db": str(folder / "trackers.db")},
            "slots": {"order_number": "keep", "email": "hash"},
            "phone_regions": ["US", "GB"],
        }
    }
    path = folder / "endpoints.yml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def say(url: Text, sender: Text, text: Text) -> List[Text]:
    response = requests.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, headers=REST_AUTH, timeout=120)
    assert response.status_code == 200, response.text
    return [message.get("text") or "" for message in response.json()]


def raw_values_in(text: Text) -> List[Text]:
    return [value for values in RAW.values() for value in values if value.lower() in text.lower()]


def test_no_personal_data_reaches_the_database_or_the_logs(
    demo_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    (tmp_path / "data").mkdir()
    shutil.copy(REPO / "data" / "faq.yml", tmp_path / "data" / "faq.yml")
    monkeypatch.setenv(DEFAULT_SECRET_ENV, "acceptance-secret-0123456789abcdef")
    debug_log = tmp_path / "debug.log"
    sender = uuid.uuid4().hex
    server = RasaServer(
        demo_model_path, write_endpoints(tmp_path), tmp_path, free_port(), ["--debug", "--log-file", str(debug_log)]
    )
    with server:
        replies = [say(server.url, sender, text) for text in CONVERSATION]

    # The bot used the order number in the turn it was given, and again from storage.
    assert any(ORDER in text for text in replies[-2]), replies[-2]
    assert any(ORDER in text for text in replies[-1]), replies[-1]

    with sqlite3.connect(tmp_path / "trackers.db") as connection:
        rows = [row[0] for row in connection.execute("SELECT data FROM events WHERE sender_id = ?", (f"rest:{sender}",))]
        dump = "\n".join(connection.iterdump())
    stored = "\n".join(rows)
    # The conversation is there, masked; the kept order number and the email's token too.
    assert "[CARD]" in stored and "[PHONE]" in stored and "[IBAN]" in stored and "[EMAIL" in stored
    assert ORDER in stored
    assert raw_values_in(dump) == []

    # Rasa logged the conversation at DEBUG, masked: stdout/stderr and --log-file alike.
    for log in (debug_log, server.log):
        text = log.read_text(encoding="utf-8", errors="replace")
        assert "[CARD]" in text, f"{log.name} does not show the masked conversation; was DEBUG logging on?"
        assert raw_values_in(text) == [], log.name


def test_rasa_run_refuses_to_start_when_hash_has_no_secret(
    demo_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.delenv(DEFAULT_SECRET_ENV, raising=False)
    rasa = Path(sys.executable).parent / "rasa"
    result = subprocess.run(
        [
            str(rasa),
            "run",
            "--endpoints",
            str(write_endpoints(tmp_path)),
            "--credentials",
            str(CREDENTIALS),
            "--port",
            str(free_port()),
            "--interface",
            "127.0.0.1",
            "--model",
            str(demo_model_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LEPTON_ADMIN_TOKEN": "test-admin-token-0123456789abcdef", "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode != 0
    assert f"{DEFAULT_SECRET_ENV} is not set" in result.stdout + result.stderr
