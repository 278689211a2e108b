"""AtomicRedisLockStore when Redis is down, silent, or its Python package is missing.

No real Redis needed: "down" is a port nothing listens on, "silent" a local TCP server
that accepts connections and never answers (a hung or overloaded Redis, or a
firewall that swallows packets after the handshake).
"""

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, List, Text, Tuple

import pytest
from rasa.core.lock_store import LockError
from rasa.shared.exceptions import ConnectionException
from rasa.utils.endpoints import EndpointConfig

from lepton_components.stores.atomic_redis_lock_store import AtomicRedisLockStore, LockStoreUnavailable

HOST = "127.0.0.1"
TEST_DB = 15
CONVERSATION = "conversation-1"
REPOSITORY = Path(__file__).resolve().parents[2]
# Longest the event loop may stall while a message waits on Redis.
MAX_LOOP_LAG = 0.1


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_redis_port() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers."""
    server = socket.socket()
    server.bind((HOST, 0))
    server.listen(128)
    server.settimeout(0.05)
    accepted: List[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except socket.timeout:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        server.close()


async def _with_loop_lag(work: Awaitable[Any]) -> Tuple[Any, float, float]:
    """(result or raised error, seconds `work` took, longest stall of the event loop)."""
    lags: List[float] = []

    async def ticker() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.monotonic()
    try:
        outcome: Any = await work
    except Exception as error:
        outcome = error
    elapsed = time.monotonic() - started
    ticking.cancel()
    return outcome, elapsed, max(lags)


async def _handle_message(store: AtomicRedisLockStore, conversation_id: Text = CONVERSATION) -> None:
    async with store.lock(conversation_id):  # as agent.handle_message calls it
        pytest.fail("entered the critical section without a working Redis")


def test_a_silent_redis_fails_the_message_within_2_s_without_blocking_the_event_loop(
    silent_redis_port: int,
) -> None:
    # Production settings: Rasa's own store would wait 10 s here, on the event loop.
    store = AtomicRedisLockStore(host=HOST, port=silent_redis_port, db=TEST_DB)

    outcome, elapsed, lag = asyncio.run(asyncio.wait_for(_with_loop_lag(_handle_message(store)), 60))

    assert isinstance(outcome, LockStoreUnavailable), outcome
    assert f"Cannot reach the Redis lock store at {HOST}:{silent_redis_port} db {TEST_DB}" in str(outcome)
    assert elapsed < 2.0
    assert lag < MAX_LOOP_LAG  # every other conversation of the replica kept being served


def test_many_messages_to_a_silent_redis_fail_together_not_one_after_another(silent_redis_port: int) -> None:
    store = AtomicRedisLockStore(host=HOST, port=silent_redis_port, db=TEST_DB)

    async def twenty_messages() -> List[Any]:
        messages = [_handle_message(store, f"customer-{index}") for index in range(20)]
        return await asyncio.gather(*messages, return_exceptions=True)

    outcome, elapsed, lag = asyncio.run(asyncio.wait_for(_with_loop_lag(twenty_messages()), 60))

    assert all(isinstance(error, LockStoreUnavailable) for error in outcome), outcome
    assert elapsed < 2.0 and lag < MAX_LOOP_LAG


def test_the_socket_timeout_setting_bounds_the_wait(silent_redis_port: int) -> None:
    endpoint = EndpointConfig(url=HOST, port=silent_redis_port, db=TEST_DB, socket_timeout=0.3)
    store = AtomicRedisLockStore(endpoint_config=endpoint)

    outcome, elapsed, _ = asyncio.run(asyncio.wait_for(_with_loop_lag(_handle_message(store)), 60))

    assert isinstance(outcome, LockStoreUnavailable)
    assert 0.25 < elapsed < 1.0


@pytest.mark.parametrize(
    "operation",
    [
        lambda store: store.issue_ticket(CONVERSATION),
        lambda store: store.get_lock(CONVERSATION),
        lambda store: store.cleanup(CONVERSATION, 0),
    ],
    ids=["issue_ticket", "get_lock", "cleanup"],
)
def test_the_synchronous_methods_give_up_on_a_silent_redis_within_2_s(
    silent_redis_port: int, operation: Callable[[AtomicRedisLockStore], Any]
) -> None:
    store = AtomicRedisLockStore(host=HOST, port=silent_redis_port, db=TEST_DB)
    started = time.monotonic()

    with pytest.raises(LockStoreUnavailable, match="Timeout"):
        operation(store)

    assert time.monotonic() - started < 2.0


def test_unreachable_redis_raises_an_error_naming_server_and_fix() -> None:
    port = _unused_port()
    store = AtomicRedisLockStore(host=HOST, port=port, db=TEST_DB)
    expected = rf"Cannot reach the Redis lock store at {HOST}:{port} db {TEST_DB}.*endpoints.yml"

    for operation in (
        lambda: store.issue_ticket(CONVERSATION),
        lambda: store.get_lock(CONVERSATION),
        lambda: store.save_lock(store.create_lock(CONVERSATION)),
        lambda: store.delete_lock(CONVERSATION),
        lambda: store.cleanup(CONVERSATION, 0),
    ):
        with pytest.raises(LockStoreUnavailable, match=expected) as raised:
            operation()
        assert isinstance(raised.value, LockError) and isinstance(raised.value, ConnectionException)
        assert CONVERSATION not in str(raised.value)  # Lepton logs this text; the id may be personal

    with pytest.raises(LockStoreUnavailable, match=expected):
        asyncio.run(asyncio.wait_for(_handle_message(store), 60))


def test_a_missing_redis_package_stops_start_up_naming_it() -> None:
    program = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None  # as if the package were not installed
        from rasa.core.lock_store import LockStore
        from rasa.utils.endpoints import EndpointConfig
        store_type = "lepton_components.stores.atomic_redis_lock_store.AtomicRedisLockStore"
        LockStore.create(EndpointConfig(url="127.0.0.1", type=store_type))  # as load_agent does
        """
    )

    result = subprocess.run(
        [sys.executable, "-c", program], cwd=REPOSITORY, capture_output=True, text=True, timeout=120
    )

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "AtomicRedisLockStore needs the `redis` Python package" in last_line
    assert "pip install 'redis>=4.2'" in last_line
