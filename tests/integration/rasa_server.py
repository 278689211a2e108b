"""`rasa run` with the trained demo model in a folder of its own, as `make serve` starts it."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional, Text

import pytest
import requests

from tests.integration.conftest import REPO

START_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def rasa_run(
    model: Path, folder: Path, credentials: Path, environment: Dict[Text, Text], host: Text = "127.0.0.1",
    log_name: Text = "rasa.log",
) -> Iterator[Text]:
    """The server's URL once the model is loaded and the channels are up; stopped afterwards.

    bot/endpoints.yml keeps the conversations in SQLite inside `folder` (the server's
    working directory, which also holds its own copy of data/faq.yml to edit live).
    """
    port = free_port()
    log = folder / log_name
    rasa = Path(sys.executable).parent / "rasa"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(rasa), "run", "--model", str(model), "--credentials", str(credentials),
             "--endpoints", str(REPO / "bot" / "endpoints.yml"), "--port", str(port), "--interface", "127.0.0.1"],
            cwd=folder, stdout=output, stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **environment},
        )
        url = f"http://{host}:{port}"
        try:
            deadline = time.time() + START_TIMEOUT_S
            while time.time() < deadline:
                assert process.poll() is None, log.read_text()[-3000:]
                try:
                    # /webhooks/rest/ready answers 200 only once the model is loaded.
                    if requests.get(f"{url}/webhooks/rest/ready", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    pass
                time.sleep(1)
            else:
                pytest.fail("rasa run did not come up:\n" + log.read_text()[-3000:])
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def server_folder(tmp_path_factory: pytest.TempPathFactory, name: Text, extra: Optional[Dict[Text, Text]] = None) -> Path:
    """A working directory with its own copy of data/faq.yml."""
    folder = tmp_path_factory.mktemp(name)
    (folder / "data").mkdir()
    (folder / "data" / "faq.yml").write_text((REPO / "data" / "faq.yml").read_text(encoding="utf-8"), encoding="utf-8")
    return folder
