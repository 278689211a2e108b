"""`rasa shell` and `rasa shell nlu` with the demo model, typed at through a pseudo-terminal.

These are the developers' way in: the shell must hold a conversation (buttons shown as a
choice list, forms, knowledge-base answers) and `rasa shell nlu` must show what our
components found (intent ranking, entities, knowledge-base candidates).
"""

import os
import re
import socket
import sys
from pathlib import Path
from typing import Iterator, Text

import pytest

from tests.integration.conftest import REPO

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.slow

# Model loading and each reply of the real model on 2 CPU cores.
START_TIMEOUT_S = 240
REPLY_TIMEOUT_S = 60
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(arguments: list, tmp_path: Path) -> "pexpect.spawn":
    rasa = str(Path(sys.executable).parent / "rasa")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RASA_TELEMETRY_ENABLED": "false",
           "TERM": "xterm", "COLUMNS": "200", "LINES": "50"}
    return pexpect.spawn(rasa, arguments, cwd=str(tmp_path), env=env, encoding="utf-8", dimensions=(50, 200),
                         timeout=REPLY_TIMEOUT_S)


def _plain(text: Text) -> Text:
    return ANSI.sub("", text)


@pytest.fixture
def shell(demo_model_path: Path, tmp_path: Path) -> Iterator["pexpect.spawn"]:
    process = _spawn(["shell", "--model", str(demo_model_path), "--endpoints", str(REPO / "bot" / "endpoints.yml"),
                      "--port", str(_free_port())], tmp_path)
    try:
        process.expect("Bot loaded. Type a message and press enter", timeout=START_TIMEOUT_S)
        yield process
    finally:
        process.terminate(force=True)


def test_rasa_shell_holds_a_conversation(shell: "pexpect.spawn") -> None:
    shell.expect("Your input ->")
    shell.sendline("hi")
    # The greeting's buttons become a choice list; Enter picks the first, "Where is my order?".
    shell.expect("What can I do for you")
    shell.expect("Type out your own message")
    shell.send("\r")
    shell.expect("order number")
    shell.expect("Your input ->")
    shell.sendline("LP-482913")
    shell.expect("LP-482913")
    shell.expect("Your input ->")
    # A question no intent covers, answered from the knowledge base.
    shell.sendline("are there vacancies at your company?")
    shell.expect("lepton.example/careers")
    shell.expect("Your input ->")
    shell.sendline("/stop")
    shell.expect(pexpect.EOF)


def test_rasa_shell_nlu_shows_ranking_entities_and_candidates(demo_model_path: Path, tmp_path: Path) -> None:
    process = _spawn(["shell", "nlu", "--model", str(demo_model_path)], tmp_path)
    try:
        process.expect("NLU model loaded. Type a message and press enter to parse it.", timeout=START_TIMEOUT_S)
        process.expect("Next message:")
        process.sendline("my order LP-482913 never arrived, can I pay with paypal?")
        process.expect("Next message:")
        parsed = _plain(process.before)
    finally:
        process.terminate(force=True)
    assert '"intent_ranking"' in parsed
    assert re.search(r'"entity": "order_number".*?"value": "LP-482913"', parsed, re.S)
    assert '"answer_candidates"' in parsed and '"score"' in parsed
