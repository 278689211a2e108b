"""The real PostgreSQL, Redis and `rasa run` processes behind the scaled-deployment tests.

Services are the machine's own (127.0.0.1, trust auth); each test gets its own
database and Redis db/key prefix. `stopped(...)` causes a real outage and always
starts the service again, even when the test fails.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Text

import redis
import requests
import sqlalchemy as sa
import yaml

from tests.integration.conftest import REPO

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
SCALED_ENDPOINTS = REPO / "bot" / "endpoints.scaled.yml"
CREDENTIALS = REPO / "bot" / "credentials.yml"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
SERVICE_TIMEOUT_S = 30.0

# The command the machine's services were started with (.ci/run uses it too).
REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", str(REDIS_PORT),
    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(condition: Callable[[], bool], what: Text, timeout: float = SERVICE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def postgres_up() -> bool:
    return subprocess.run(["pg_isready", "-h", PG_HOST, "-p", str(PG_PORT), "-q"]).returncode == 0


def redis_up() -> bool:
    try:
        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=1).ping())
    except redis.exceptions.ConnectionError:
        return False


def _pg_ctlcluster(action: Text) -> None:
    (version,) = os.listdir("/etc/postgresql")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True)


def stop_postgres() -> None:
    _pg_ctlcluster("stop")
    _wait_until(lambda: not postgres_up(), "PostgreSQL stopping")


def start_postgres() -> None:
    if not postgres_up():
        _pg_ctlcluster("start")
        _wait_until(postgres_up, "PostgreSQL starting")


def stop_redis() -> None:
    subprocess.run(["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "shutdown", "nosave"], check=False)
    _wait_until(lambda: not redis_up(), "Redis stopping")


def start_redis() -> None:
    if not redis_up():
        subprocess.run(REDIS_START, check=True)
        _wait_until(redis_up, "Redis starting")


@contextmanager
def stopped(stop: Callable[[], None], start: Callable[[], None]) -> Iterator[None]:
    """A real outage of one service, ended even if the test fails."""
    try:
        stop()
        yield
    finally:
        start()


def _admin_engine() -> sa.engine.Engine:
    return sa.create_engine(
        f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres?connect_timeout=3",
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )


@contextmanager
def dedicated_database(prefix: Text) -> Iterator[Text]:
    """A new, empty database, dropped afterwards (with whatever still connects to it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine()
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        start_postgres()
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def database_url(database: Text) -> Text:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def delete_redis_keys(db: int, key_prefix: Text) -> None:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{key_prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def scaled_endpoints(folder: Path, database: Text, redis_db: int, key_prefix: Text) -> Path:
    """bot/endpoints.scaled.yml as shipped, pointed at this test's database and Redis keys."""
    settings: Dict[Text, Any] = yaml.safe_load(SCALED_ENDPOINTS.read_text(encoding="utf-8"))
    settings["tracker_store"]["db"] = database
    settings["lock_store"].update(db=redis_db, key_prefix=key_prefix)
    path = folder / "endpoints.yml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


class RasaServer:
    """`rasa run` in a subprocess, logging to a file; started by `with`."""

    def __init__(self, model: Path, endpoints: Path, folder: Path, port: int, extra: Optional[List[Text]] = None):
        self.log = folder / f"rasa-{port}.log"
        self.url = f"http://127.0.0.1:{port}"
        rasa = Path(sys.executable).parent / "rasa"
        self.command = [
            str(rasa), "run", "--model", str(model), "--endpoints", str(endpoints),
            "--credentials", str(CREDENTIALS), "--port", str(port), "--interface", "127.0.0.1", *(extra or []),
        ]
        self.folder = folder
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "RasaServer":
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.folder,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, "HF_HUB_OFFLINE": "1", "LEPTON_ADMIN_TOKEN": ADMIN_TOKEN},
            )
        return self

    def wait_until_up(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError("rasa run exited:\n" + self.log_text()[-3000:])
            try:
                # Answers only once the model is loaded and the channels are up.
                if requests.get(f"{self.url}/webhooks/rest/", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(1)
        raise RuntimeError("rasa run did not come up:\n" + self.log_text()[-3000:])

    def log_text(self) -> Text:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def __enter__(self) -> "RasaServer":
        self.start()
        try:
            self.wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
