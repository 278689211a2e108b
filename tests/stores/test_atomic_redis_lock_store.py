"""AtomicRedisLockStore against the real local Redis (db 15, flushed around each test).

Contention comes from coroutines, threads and separate processes, as it would from
one replica's event loop and from several replicas.
"""

import asyncio
import multiprocessing
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Sequence, Text, Tuple

import pytest
import redis
from rasa.core.lock_store import LockError, LockStore, RedisLockStore
from rasa.shared.exceptions import ConnectionException, InvalidConfigException
from rasa.utils.endpoints import EndpointConfig, read_endpoint_config

from lepton_components.stores.atomic_redis_lock_store import (
    AtomicRedisLockStore,
    LockConflict,
    LockStoreUnavailable,
)

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
TEST_DB = 15
KEY_PREFIX = "leptontest"
CONVERSATION = "conversation-1"
MARKERS = "leptontest:markers"
LONG_LIFETIME = 60.0
# Upper bound for any wait on threads or processes; real runs take a few seconds.
WORKER_TIMEOUT = 60.0
SAMPLE_ENDPOINTS = Path(__file__).resolve().parents[2] / "bot" / "endpoints.scaled.yml"


def _store(**overrides: Any) -> AtomicRedisLockStore:
    settings = dict(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB, key_prefix=KEY_PREFIX, socket_timeout=5)
    return AtomicRedisLockStore(**{**settings, **overrides})


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind((REDIS_HOST, 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        pytest.skip(f"Redis is not running on {REDIS_HOST}:{REDIS_PORT} ({error}).")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def store(redis_db: redis.Redis) -> AtomicRedisLockStore:
    return _store()


# Workers. Module level, so child processes can import them; each process builds
# its own store, as each replica does.


def _issue_tickets(count: int) -> List[int]:
    store = _store()
    return [store.issue_ticket(CONVERSATION, LONG_LIFETIME) for _ in range(count)]


async def _critical_sections(store: AtomicRedisLockStore, worker: Text, count: int) -> None:
    """Mark entry and exit of each section; a second holder would land in between."""
    for index in range(count):
        async with store.lock(CONVERSATION, lock_lifetime=LONG_LIFETIME, wait_time_in_seconds=0.005):
            store.red.rpush(MARKERS, f"start {worker}.{index}")
            await asyncio.sleep(0.002)
            store.red.rpush(MARKERS, f"end {worker}.{index}")


def _critical_sections_in_new_loop(worker: Text, count: int) -> None:
    asyncio.run(_critical_sections(_store(), worker, count))


def _process_entry(
    target: Callable[..., Any], args: Tuple[Any, ...], ready: Any, start: Any, results: Any
) -> None:
    ready.put(None)
    if not start.wait(WORKER_TIMEOUT):
        results.put(("error", "never started"))
        return
    try:
        results.put(("ok", target(*args)))
    except Exception as error:  # reported to the test, which fails with it
        results.put(("error", repr(error)))


def _run_in_processes(target: Callable[..., Any], jobs: Sequence[Tuple[Any, ...]]) -> List[Any]:
    """Run `target(*job)` in one fresh process per job, all released at once.

    `forkserver` children fork from a clean server process (not from pytest and its
    threads); preloading this module there spares each child the imports.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    ready, results, start = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(target=_process_entry, args=(target, job, ready, start, results), daemon=True)
        for job in jobs
    ]
    try:
        for process in processes:
            process.start()
        for _ in processes:
            ready.get(timeout=WORKER_TIMEOUT)
        start.set()
        outcomes = [results.get(timeout=WORKER_TIMEOUT) for _ in processes]
        for process in processes:
            process.join(WORKER_TIMEOUT)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
    errors = [detail for status, detail in outcomes if status != "ok"]
    assert not errors, errors
    return [detail for _, detail in outcomes]


def _run_in_threads(target: Callable[..., Any], jobs: Sequence[Tuple[Any, ...]]) -> List[Any]:
    """Run `target(*job)` in one thread per job, all released at once."""
    barrier = threading.Barrier(len(jobs), timeout=WORKER_TIMEOUT)
    outcomes: List[Any] = [None] * len(jobs)

    def run(slot: int, job: Tuple[Any, ...]) -> None:
        barrier.wait()
        try:
            outcomes[slot] = ("ok", target(*job))
        except Exception as error:
            outcomes[slot] = ("error", repr(error))

    threads = [threading.Thread(target=run, args=(slot, job), daemon=True) for slot, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WORKER_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    errors = [detail for status, detail in outcomes if status != "ok"]
    assert not errors, errors
    return [detail for _, detail in outcomes]


def _run_as_coroutines(jobs: Sequence[Tuple[Text, int]]) -> None:
    """All workers on one event loop, as in a single `rasa run` process."""
    store = _store()

    async def run_all() -> None:
        workers = [_critical_sections(store, worker, count) for worker, count in jobs]
        await asyncio.wait_for(asyncio.gather(*workers), WORKER_TIMEOUT)

    asyncio.run(run_all())


def _assert_never_interleaved(markers: List[bytes], expected_sections: int) -> None:
    names = [marker.decode() for marker in markers]
    assert len(names) == 2 * expected_sections
    for start, end in zip(names[0::2], names[1::2]):
        assert start.startswith("start ") and end == "end " + start[len("start ") :], (start, end)
    assert len({name for name in names if name.startswith("start ")}) == expected_sections


def test_sample_endpoint_file_creates_this_store_through_rasa() -> None:
    endpoint = read_endpoint_config(str(SAMPLE_ENDPOINTS), endpoint_type="lock_store")

    # Rasa calls `lock_store_class(endpoint_config=...)`; no connection is made yet.
    store = LockStore.create(endpoint)

    assert isinstance(store, AtomicRedisLockStore)
    assert store.key_prefix == "lepton:lock:"
    assert store.red.connection_pool.connection_kwargs["db"] == 1
    assert store.address == "127.0.0.1:6379 db 1"
    assert store.wait_time_in_seconds == 0.05


def test_lock_checks_at_the_stores_interval_when_rasa_passes_none(
    store: AtomicRedisLockStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    intervals: List[float] = []

    async def record_interval(conversation_id: Text, ticket: int, wait_time_in_seconds: float) -> Any:
        intervals.append(wait_time_in_seconds)
        return store.get_lock(conversation_id)

    monkeypatch.setattr(store, "_acquire_lock", record_interval)

    async def handle_message() -> None:
        async with store.lock(CONVERSATION):  # as agent.handle_message calls it
            pass

    asyncio.run(handle_message())

    assert intervals == [0.05]
    assert store.get_lock(CONVERSATION) is None


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"port": "63a79"}, r"`lock_store.port` must be an integer, got '63a79'"),
        ({"db": None}, r"`lock_store.db` must be an integer, got None"),
        ({"key_prefix": "lep-ton"}, r"`lock_store.key_prefix` must be letters and digits only"),
        ({"wait_time_in_seconds": 0}, r"`lock_store.wait_time_in_seconds` must be a number of seconds > 0"),
    ],
)
def test_invalid_settings_name_the_key_and_the_value(settings: dict, message: Text) -> None:
    endpoint = EndpointConfig(url=REDIS_HOST, type="custom", **settings)

    with pytest.raises(InvalidConfigException, match=message):
        AtomicRedisLockStore(endpoint_config=endpoint)


def test_unknown_settings_are_dropped_with_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"unknown `lock_store` keys \['lifetime'\]"):
        store = AtomicRedisLockStore(endpoint_config=EndpointConfig(url=REDIS_HOST, lifetime=5))

    assert store.address == f"{REDIS_HOST}:6379 db 1"


def test_tickets_from_concurrent_threads_are_unique_and_none_is_lost(store: AtomicRedisLockStore) -> None:
    issued = _run_in_threads(_issue_tickets, [(50,)] * 16)

    numbers = sorted(number for worker in issued for number in worker)
    assert numbers == list(range(16 * 50))
    assert [ticket.number for ticket in store.get_lock(CONVERSATION).tickets] == numbers


def test_tickets_from_separate_processes_are_unique_and_none_is_lost(store: AtomicRedisLockStore) -> None:
    issued = _run_in_processes(_issue_tickets, [(50,)] * 8)

    numbers = sorted(number for worker in issued for number in worker)
    assert numbers == list(range(8 * 50))
    assert [ticket.number for ticket in store.get_lock(CONVERSATION).tickets] == numbers
    # Each process got its tickets in rising order: numbers follow issue order.
    assert all(worker == sorted(worker) for worker in issued)


@pytest.mark.parametrize("concurrency", ["coroutines", "threads", "processes"])
def test_lock_lets_one_holder_at_a_time_into_the_critical_section(
    concurrency: Text, redis_db: redis.Redis
) -> None:
    jobs = [(f"w{worker}", 10) for worker in range(8)]

    if concurrency == "coroutines":
        _run_as_coroutines(jobs)
    elif concurrency == "threads":
        _run_in_threads(_critical_sections_in_new_loop, jobs)
    else:
        _run_in_processes(_critical_sections_in_new_loop, jobs)

    _assert_never_interleaved(redis_db.lrange(MARKERS, 0, -1), expected_sections=8 * 10)
    # The last holder found no one waiting and deleted the lock.
    assert redis_db.keys(f"{KEY_PREFIX}:lock:*") == []


def test_an_abandoned_ticket_blocks_only_until_it_expires(store: AtomicRedisLockStore) -> None:
    started = time.time()
    store.issue_ticket(CONVERSATION, lock_lifetime=0.3)  # a worker that crashed

    async def take_turn() -> List[int]:
        async with store.lock(CONVERSATION, lock_lifetime=LONG_LIFETIME, wait_time_in_seconds=0.01) as lock:
            return [ticket.number for ticket in lock.tickets]

    held = asyncio.run(asyncio.wait_for(take_turn(), WORKER_TIMEOUT))

    assert time.time() - started >= 0.3
    assert held == [1]
    assert store.get_lock(CONVERSATION) is None


def test_a_waiter_whose_ticket_expires_gives_up_instead_of_waiting_for_ever(
    store: AtomicRedisLockStore,
) -> None:
    holder = store.issue_ticket(CONVERSATION, LONG_LIFETIME)  # e.g. a slow action server call

    async def wait_for_turn() -> None:
        async with store.lock(CONVERSATION, lock_lifetime=0.2, wait_time_in_seconds=0.01):
            pytest.fail("entered while the holder's ticket is live")

    with pytest.raises(LockError, match="expired before its turn"):
        asyncio.run(asyncio.wait_for(wait_for_turn(), WORKER_TIMEOUT))
    assert [ticket.number for ticket in store.get_lock(CONVERSATION).tickets] == [holder]


def test_expired_tickets_are_pruned_and_numbers_keep_rising(store: AtomicRedisLockStore) -> None:
    assert [store.issue_ticket(CONVERSATION, lock_lifetime=0.2) for _ in range(3)] == [0, 1, 2]
    time.sleep(0.3)

    store.update_lock(CONVERSATION)

    stored = store.get_lock(CONVERSATION)
    assert list(stored.tickets) == [] and stored.last_issued == 2
    assert not store.is_someone_waiting(CONVERSATION)
    assert store.issue_ticket(CONVERSATION, LONG_LIFETIME) == 3


def test_a_late_finisher_cannot_remove_the_next_holders_ticket(store: AtomicRedisLockStore) -> None:
    overran = store.issue_ticket(CONVERSATION, lock_lifetime=0.2)
    time.sleep(0.3)
    current = store.issue_ticket(CONVERSATION, LONG_LIFETIME)

    store.cleanup(CONVERSATION, overran)  # the overrunning worker finally finishes

    assert current != overran
    assert [ticket.number for ticket in store.get_lock(CONVERSATION).tickets] == [current]


def test_delete_keeps_a_lock_that_still_holds_a_live_ticket(store: AtomicRedisLockStore) -> None:
    ticket = store.issue_ticket(CONVERSATION, LONG_LIFETIME)

    store.delete_lock(CONVERSATION)
    assert [t.number for t in store.get_lock(CONVERSATION).tickets] == [ticket]

    store.cleanup(CONVERSATION, ticket)
    assert store.get_lock(CONVERSATION) is None


def test_save_lock_refuses_to_overwrite_a_lock_changed_since_it_was_read(store: AtomicRedisLockStore) -> None:
    store.issue_ticket(CONVERSATION, LONG_LIFETIME)
    first, second = store.get_lock(CONVERSATION), store.get_lock(CONVERSATION)
    first.issue_ticket(LONG_LIFETIME)
    second.issue_ticket(LONG_LIFETIME)

    store.save_lock(first)
    with pytest.raises(LockConflict, match="changed after it was read"):
        store.save_lock(second)
    with pytest.raises(LockConflict):
        store.save_lock(store.create_lock(CONVERSATION))

    assert [ticket.number for ticket in store.get_lock(CONVERSATION).tickets] == [0, 1]
    first.issue_ticket(LONG_LIFETIME)
    store.save_lock(first)  # a lock saved by this process can be saved again
    assert [ticket.number for ticket in store.get_lock(CONVERSATION).tickets] == [0, 1, 2]


def test_locks_stay_readable_by_rasas_redis_lock_store(store: AtomicRedisLockStore) -> None:
    rasa_store = RedisLockStore(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB, key_prefix=KEY_PREFIX)

    rasa_store.issue_ticket(CONVERSATION, LONG_LIFETIME)
    store.issue_ticket(CONVERSATION, LONG_LIFETIME)

    assert [ticket.number for ticket in rasa_store.get_lock(CONVERSATION).tickets] == [0, 1]


def test_unreachable_redis_raises_an_error_naming_server_and_fix() -> None:
    port = _unused_port()
    store = _store(port=port, socket_timeout=2)
    expected = rf"Cannot reach the Redis lock store at {REDIS_HOST}:{port} db {TEST_DB}.*endpoints.yml"

    for operation in (
        lambda: store.issue_ticket(CONVERSATION, LONG_LIFETIME),
        lambda: store.get_lock(CONVERSATION),
        lambda: store.save_lock(store.create_lock(CONVERSATION)),
        lambda: store.delete_lock(CONVERSATION),
        lambda: store.cleanup(CONVERSATION, 0),
    ):
        with pytest.raises(LockStoreUnavailable, match=expected) as raised:
            operation()
        assert isinstance(raised.value, LockError) and isinstance(raised.value, ConnectionException)

    async def handle_message() -> None:
        async with store.lock(CONVERSATION):
            pytest.fail("entered the critical section without Redis")

    with pytest.raises(LockStoreUnavailable, match=expected):
        asyncio.run(asyncio.wait_for(handle_message(), WORKER_TIMEOUT))
