"""AtomicRedisLockStore against the real local Redis (db 15, flushed around each test).

Contention comes from coroutines, threads and separate processes, as it would from
one replica's event loop and from several replicas. Without Redis these tests skip,
or fail when the CI environment variable is set. Outages (no Redis, a Redis that
never answers, no redis package) are in test_atomic_redis_lock_store_outages.py.
"""

import asyncio
import logging
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Sequence, Text, Tuple

import pytest
import redis
from rasa.core.lock_store import LockError, LockStore, RedisLockStore
from rasa.shared.exceptions import InvalidConfigException
from rasa.utils.endpoints import EndpointConfig, read_endpoint_config

from lepton_components.channels.conversation_ids import describe
from lepton_components.server.outages import log_outage
from lepton_components.stores.atomic_redis_lock_store import (
    COUNTER_RETENTION_SECONDS,
    AtomicRedisLockStore,
    LockConflict,
    LockQueueFull,
)
from tests.services import require_service

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
    # Room for the 800 tickets the contention tests queue on one conversation.
    settings = dict(
        host=REDIS_HOST,
        port=REDIS_PORT,
        db=TEST_DB,
        key_prefix=KEY_PREFIX,
        socket_timeout=5,
        max_tickets_per_conversation=1000,
    )
    return AtomicRedisLockStore(**{**settings, **overrides})


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        require_service(
            f"Redis is not running on {REDIS_HOST}:{REDIS_PORT} ({error}); start it with "
            "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''`"
        )
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


def _live_numbers(store: AtomicRedisLockStore) -> List[int]:
    lock = store.get_lock(CONVERSATION)
    return [ticket.number for ticket in lock.tickets] if lock else []


def _expiries_in_ms(client: redis.Redis) -> Dict[Text, int]:
    """Every key in the test db with its remaining lifetime (-1: never expires)."""
    return {key.decode(): client.pttl(key) for key in client.scan_iter("*")}


def test_sample_endpoint_file_creates_this_store_through_rasa() -> None:
    endpoint = read_endpoint_config(str(SAMPLE_ENDPOINTS), endpoint_type="lock_store")

    # Rasa calls `lock_store_class(endpoint_config=...)`; no connection is made yet.
    store = LockStore.create(endpoint)

    assert isinstance(store, AtomicRedisLockStore)
    # A RedisLockStore, so Rasa lets several Sanic workers share it.
    assert isinstance(store, RedisLockStore)
    assert store.key_prefix == "lepton:lock:"
    connection = store.red.connection_pool.connection_kwargs
    assert connection["db"] == 1
    # Rasa's RedisLockStore waits 10 s for a silent Redis, on the event loop.
    assert connection["socket_timeout"] == 1.0 and connection["socket_connect_timeout"] == 1.0
    assert store.address == "127.0.0.1:6379 db 1"
    assert store.wait_time_in_seconds == 0.05


def test_a_waiting_message_starts_soon_after_the_turn_before_it_ends(store: AtomicRedisLockStore) -> None:
    """Rasa's callers pass no wait time; the store's 0.05 s applies, not Rasa's 1 s."""

    async def scenario() -> float:
        ended = asyncio.get_running_loop().create_future()

        async def first_turn() -> None:
            async with store.lock(CONVERSATION):  # as agent.handle_message calls it
                await asyncio.sleep(0.3)  # the waiter checks at once, then every interval
            ended.set_result(time.monotonic())

        async def next_message() -> float:
            await asyncio.sleep(0.05)
            async with store.lock(CONVERSATION):
                return time.monotonic()

        _, started = await asyncio.gather(first_turn(), next_message())
        return started - await ended

    delay = asyncio.run(asyncio.wait_for(scenario(), WORKER_TIMEOUT))

    assert delay < 0.25  # with Rasa's 1 s interval: about 0.75 s
    assert store.get_lock(CONVERSATION) is None


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"port": "63a79"}, r"`lock_store.port` must be an integer from 1 to 65535, got '63a79'"),
        ({"port": 70000}, r"`lock_store.port` must be an integer from 1 to 65535, got 70000"),
        ({"db": None}, r"`lock_store.db` must be an integer, got None"),
        ({"db": True}, r"`lock_store.db` must be an integer, got True"),
        ({"key_prefix": "lep-ton"}, r"`lock_store.key_prefix` must be letters and digits only"),
        ({"wait_time_in_seconds": 0}, r"`lock_store.wait_time_in_seconds` must be a number of seconds > 0"),
        ({"socket_timeout": 0}, r"`lock_store.socket_timeout` must be a number of seconds > 0 and <= 10, got 0"),
        ({"socket_timeout": 30}, r"(?s)`lock_store.socket_timeout` must be .* <= 10, got 30.*socket_timeout: 1"),
        ({"socket_timeout": "fast"}, r"`lock_store.socket_timeout` must be a number of seconds > 0"),
        ({"socket_timeout": float("nan")}, r"`lock_store.socket_timeout` must be a number of seconds > 0"),
        ({"socket_timeout": True}, r"`lock_store.socket_timeout` must be a number of seconds > 0"),
        ({"socket_connect_timeout": -1}, r"`lock_store.socket_connect_timeout` must be a number of seconds > 0"),
        ({"use_ssl": "false"}, r"`lock_store.use_ssl` must be true or false, got 'false'"),
        ({"max_tickets_per_conversation": 0}, r"`lock_store.max_tickets_per_conversation` must be an integer from 1"),
        ({"max_tickets_per_conversation": 2.5}, r"`lock_store.max_tickets_per_conversation` must be an integer"),
    ],
)
def test_invalid_settings_name_the_key_and_the_value(settings: dict, message: Text) -> None:
    endpoint = EndpointConfig(url=REDIS_HOST, type="custom", **settings)

    with pytest.raises(InvalidConfigException, match=message):
        AtomicRedisLockStore(endpoint_config=endpoint)


def test_setting_errors_show_the_type_to_write_in_endpoints_yml() -> None:
    with pytest.raises(InvalidConfigException) as raised:
        AtomicRedisLockStore(host=REDIS_HOST, port="63a79")

    # The settings module names the class as text; it must be where endpoints.yml finds it.
    assert f"type: {AtomicRedisLockStore.__module__}.{AtomicRedisLockStore.__qualname__}\n" in str(raised.value)


def test_a_lifetime_that_would_expire_every_ticket_at_birth_is_refused(store: AtomicRedisLockStore) -> None:
    with pytest.raises(InvalidConfigException, match=r"lifetime must be a number of seconds > 0, got -5"):
        store.issue_ticket(CONVERSATION, lock_lifetime=-5)
    assert store.get_lock(CONVERSATION) is None


def test_settings_come_from_endpoints_yml_as_numbers_or_substituted_text() -> None:
    endpoint = EndpointConfig(
        url=REDIS_HOST, port="6380", socket_timeout=0.5, socket_connect_timeout="2", max_tickets_per_conversation="7"
    )

    store = AtomicRedisLockStore(endpoint_config=endpoint)

    connection = store.red.connection_pool.connection_kwargs
    assert (connection["port"], connection["socket_timeout"], connection["socket_connect_timeout"]) == (6380, 0.5, 2.0)
    assert store.max_tickets_per_conversation == 7


def test_unknown_settings_are_dropped_with_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"unknown `lock_store` keys \['lifetime'\]"):
        store = AtomicRedisLockStore(endpoint_config=EndpointConfig(url=REDIS_HOST, lifetime=5))

    assert store.address == f"{REDIS_HOST}:6379 db 1"


def test_tickets_from_concurrent_threads_are_unique_and_none_is_lost(store: AtomicRedisLockStore) -> None:
    issued = _run_in_threads(_issue_tickets, [(50,)] * 16)

    numbers = sorted(number for worker in issued for number in worker)
    assert len(set(numbers)) == 16 * 50
    # The queue holds every ticket, in the order they were issued.
    assert _live_numbers(store) == numbers


def test_tickets_from_separate_processes_are_unique_and_none_is_lost(store: AtomicRedisLockStore) -> None:
    issued = _run_in_processes(_issue_tickets, [(50,)] * 8)

    numbers = sorted(number for worker in issued for number in worker)
    assert len(set(numbers)) == 8 * 50
    assert _live_numbers(store) == numbers
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
    abandoned = store.issue_ticket(CONVERSATION, lock_lifetime=0.3)  # a worker that crashed

    async def take_turn() -> List[int]:
        async with store.lock(CONVERSATION, lock_lifetime=LONG_LIFETIME, wait_time_in_seconds=0.01) as lock:
            return [ticket.number for ticket in lock.tickets]

    held = asyncio.run(asyncio.wait_for(take_turn(), WORKER_TIMEOUT))

    assert time.time() - started >= 0.3
    assert len(held) == 1 and held[0] > abandoned
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
    assert _live_numbers(store) == [holder]


def test_expired_tickets_are_pruned_and_numbers_keep_rising(store: AtomicRedisLockStore) -> None:
    expired = [store.issue_ticket(CONVERSATION, lock_lifetime=0.2) for _ in range(3)]
    assert expired == sorted(set(expired))
    time.sleep(0.3)

    store.update_lock(CONVERSATION)

    assert store.get_lock(CONVERSATION) is None  # nothing live: nothing stored
    assert not store.is_someone_waiting(CONVERSATION)
    assert store.issue_ticket(CONVERSATION, LONG_LIFETIME) > expired[-1]


def test_a_late_finisher_cannot_remove_the_next_holders_ticket(store: AtomicRedisLockStore) -> None:
    overran = store.issue_ticket(CONVERSATION, lock_lifetime=0.2)
    time.sleep(0.3)
    current = store.issue_ticket(CONVERSATION, LONG_LIFETIME)

    store.cleanup(CONVERSATION, overran)  # the overrunning worker finally finishes

    assert current != overran
    assert _live_numbers(store) == [current]


def test_ticket_numbers_are_not_reused_after_the_lock_is_deleted(store: AtomicRedisLockStore) -> None:
    stalled = store.issue_ticket(CONVERSATION, lock_lifetime=0.2)  # e.g. a replica paused by GC
    time.sleep(0.3)
    other = store.issue_ticket(CONVERSATION, LONG_LIFETIME)
    store.cleanup(CONVERSATION, other)  # no one else waits: the lock is deleted
    assert store.get_lock(CONVERSATION) is None
    live = store.issue_ticket(CONVERSATION, LONG_LIFETIME)

    store.cleanup(CONVERSATION, stalled)  # the stalled replica finally finishes

    assert len({stalled, other, live}) == 3
    assert _live_numbers(store) == [live]


def test_numbers_keep_rising_even_when_the_counter_is_gone(
    store: AtomicRedisLockStore, redis_db: redis.Redis
) -> None:
    before = store.issue_ticket(CONVERSATION, LONG_LIFETIME)
    redis_db.flushdb()  # the counter expired, or Redis restarted without persistence

    after = store.issue_ticket(CONVERSATION, LONG_LIFETIME)

    assert after > before


def test_a_stalled_workers_cleanup_cannot_let_two_turns_run_at_once(store: AtomicRedisLockStore) -> None:
    stalled = store.issue_ticket(CONVERSATION, lock_lifetime=0.2)
    time.sleep(0.3)

    async def scenario() -> List[Text]:
        async with store.lock(CONVERSATION, LONG_LIFETIME):
            pass  # a turn that finds the stalled ticket expired; the lock is then deleted
        events: List[Text] = []

        async def turn(name: Text, seconds: float) -> None:
            async with store.lock(CONVERSATION, LONG_LIFETIME, wait_time_in_seconds=0.01):
                events.append(f"{name} starts")
                await asyncio.sleep(seconds)
                events.append(f"{name} ends")

        first = asyncio.create_task(turn("first", 0.5))
        await asyncio.sleep(0.1)
        store.cleanup(CONVERSATION, stalled)  # the stalled worker finishes during the first turn
        await asyncio.gather(first, turn("second", 0))
        return events

    events = asyncio.run(asyncio.wait_for(scenario(), WORKER_TIMEOUT))

    assert events == ["first starts", "first ends", "second starts", "second ends"]


def test_a_turn_longer_than_the_lock_lifetime_keeps_the_conversation_to_itself(
    store: AtomicRedisLockStore,
) -> None:
    async def scenario() -> List[Text]:
        events: List[Text] = []

        async def long_turn() -> None:
            async with store.lock(CONVERSATION, lock_lifetime=0.5, wait_time_in_seconds=0.01):
                events.append("long turn starts")
                await asyncio.sleep(1.6)  # three lifetimes, e.g. a slow action server
                events.append(f"long turn still holds {len(_live_numbers(store))} ticket(s)")
                events.append("long turn ends")

        async def next_message() -> None:
            await asyncio.sleep(0.1)
            async with store.lock(CONVERSATION, LONG_LIFETIME, wait_time_in_seconds=0.01):
                events.append("next message starts")

        await asyncio.gather(long_turn(), next_message())
        return events

    events = asyncio.run(asyncio.wait_for(scenario(), WORKER_TIMEOUT))

    assert events == [
        "long turn starts",
        "long turn still holds 2 ticket(s)",  # its own, and the waiting message's
        "long turn ends",
        "next message starts",
    ]
    assert store.get_lock(CONVERSATION) is None


def test_renewal_stops_when_the_turn_ends(store: AtomicRedisLockStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn whose final cleanup is lost (the replica lost Redis at that moment) must
    leave a ticket that expires, not one that is renewed for ever."""

    async def lost_cleanup(*args: Any) -> None:
        pass

    async def scenario() -> Tuple[List[int], float]:
        with monkeypatch.context() as patch:
            patch.setattr(store, "_remove_ticket", lost_cleanup)
            async with store.lock(CONVERSATION, lock_lifetime=0.5):
                await asyncio.sleep(0.8)  # renewed at least twice
        ended = time.monotonic()
        left_behind = _live_numbers(store)
        await asyncio.sleep(0.1)  # a renewal still running would fire in here
        async with store.lock(CONVERSATION, LONG_LIFETIME, wait_time_in_seconds=0.01):
            return left_behind, time.monotonic() - ended

    left_behind, waited = asyncio.run(asyncio.wait_for(scenario(), 5))

    assert len(left_behind) == 1  # the cleanup really was lost
    assert waited < 1.0  # the ticket expired within one lifetime of the last renewal


def test_a_cancelled_turn_removes_its_ticket(store: AtomicRedisLockStore) -> None:
    """Sanic cancels a request whose client disconnects, maybe more than once."""

    async def scenario() -> None:
        entered = asyncio.Event()

        async def turn() -> None:
            async with store.lock(CONVERSATION, LONG_LIFETIME):
                entered.set()
                await asyncio.sleep(WORKER_TIMEOUT)

        task = asyncio.create_task(turn())
        await entered.wait()
        while not task.done():
            task.cancel()
            await asyncio.sleep(0)
        deadline = time.monotonic() + 2
        while store.get_lock(CONVERSATION) is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(scenario(), WORKER_TIMEOUT))

    assert store.get_lock(CONVERSATION) is None


async def _slow_redis(reply_delay: float) -> asyncio.AbstractServer:
    """A proxy to the real Redis on this event loop that delays every reply."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        await asyncio.gather(pipe(client_reader, redis_writer, 0), pipe(redis_reader, client_writer, reply_delay))

    return await asyncio.start_server(handle, REDIS_HOST, 0)


def test_a_message_cancelled_while_its_ticket_is_issued_leaves_no_ticket_behind(
    store: AtomicRedisLockStore,
) -> None:
    async def scenario() -> List[int]:
        proxy = await _slow_redis(reply_delay=0.4)
        slow_store = _store(port=proxy.sockets[0].getsockname()[1])

        async def handle_message() -> None:
            async with slow_store.lock(CONVERSATION, LONG_LIFETIME):
                pass

        await handle_message()  # opens the connection, so the next request goes out at once
        message = asyncio.create_task(handle_message())
        await asyncio.sleep(0.2)  # Redis has issued the ticket; its number is on the way
        message.cancel()  # the client disconnected: Sanic cancels the request
        with pytest.raises(asyncio.CancelledError):
            await message
        issued_meanwhile = _live_numbers(store)
        deadline = time.monotonic() + 5
        while _live_numbers(store) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        proxy.close()
        return issued_meanwhile

    issued_meanwhile = asyncio.run(asyncio.wait_for(scenario(), WORKER_TIMEOUT))

    assert len(issued_meanwhile) == 1  # the cancel really came between issue and reply
    assert store.get_lock(CONVERSATION) is None  # the next message need not wait 60 s


def test_every_key_expires(store: AtomicRedisLockStore, redis_db: redis.Redis) -> None:
    lifetime_ms, counter_ms = 2_000, 2_000 + COUNTER_RETENTION_SECONDS * 1000
    lock_key, counter_key = f"{KEY_PREFIX}:lock:{CONVERSATION}", f"{KEY_PREFIX}:lock_counter:{CONVERSATION}"

    ticket = store.issue_ticket(CONVERSATION, lock_lifetime=2)
    issued = _expiries_in_ms(redis_db)
    store.cleanup(CONVERSATION, ticket)
    finished = _expiries_in_ms(redis_db)

    async def turn() -> Dict[Text, int]:
        async with store.lock("other", lock_lifetime=2):
            return _expiries_in_ms(redis_db)

    during_turn = asyncio.run(turn())
    saved = store.create_lock("saved")
    saved.issue_ticket(2)
    store.save_lock(saved)
    after_save = _expiries_in_ms(redis_db)

    assert set(issued) == {lock_key, counter_key}
    assert 0 < issued[lock_key] <= lifetime_ms + 1 and lifetime_ms < issued[counter_key] <= counter_ms + 1
    assert set(finished) == {counter_key}  # the counter outlives the lock, then goes too
    assert 0 < finished[counter_key] <= COUNTER_RETENTION_SECONDS * 1000 + 1
    assert len(during_turn) == 3 and all(0 < ttl <= counter_ms + 1 for ttl in during_turn.values())
    assert 0 < after_save[f"{KEY_PREFIX}:lock:saved"] <= lifetime_ms + 1
    assert all(0 < ttl <= counter_ms + 1 for ttl in after_save.values())


def test_a_flood_of_messages_for_one_conversation_is_refused_beyond_the_cap(redis_db: redis.Redis) -> None:
    store = _store(max_tickets_per_conversation=3)
    queued = [store.issue_ticket(CONVERSATION, LONG_LIFETIME) for _ in range(3)]

    with pytest.raises(LockQueueFull, match=r"already has 3 messages .*`lock_store.max_tickets_per_conversation`"):
        store.issue_ticket(CONVERSATION, LONG_LIFETIME)

    assert _live_numbers(store) == queued  # the refused message took no place
    store.issue_ticket("another-customer", LONG_LIFETIME)  # other conversations are unaffected
    store.cleanup(CONVERSATION, queued[0])
    assert store.issue_ticket(CONVERSATION, LONG_LIFETIME) > queued[-1]


def test_concurrent_messages_beyond_the_cap_are_refused_and_the_rest_take_turns(redis_db: redis.Redis) -> None:
    store = _store(max_tickets_per_conversation=3)

    async def message() -> None:
        async with store.lock(CONVERSATION, LONG_LIFETIME, wait_time_in_seconds=0.01):
            await asyncio.sleep(0.5)

    async def flood() -> List[Any]:
        return await asyncio.gather(*(message() for _ in range(8)), return_exceptions=True)

    outcomes = asyncio.run(asyncio.wait_for(flood(), WORKER_TIMEOUT))

    assert outcomes.count(None) == 3
    assert sum(isinstance(outcome, LockQueueFull) for outcome in outcomes) == 5
    assert store.get_lock(CONVERSATION) is None


def test_delete_keeps_a_lock_that_still_holds_a_live_ticket(store: AtomicRedisLockStore) -> None:
    ticket = store.issue_ticket(CONVERSATION, LONG_LIFETIME)

    store.delete_lock(CONVERSATION)
    assert _live_numbers(store) == [ticket]

    store.cleanup(CONVERSATION, ticket)
    assert store.get_lock(CONVERSATION) is None


def test_save_lock_refuses_to_overwrite_a_lock_changed_since_it_was_read(store: AtomicRedisLockStore) -> None:
    issued = store.issue_ticket(CONVERSATION, LONG_LIFETIME)
    first, second = store.get_lock(CONVERSATION), store.get_lock(CONVERSATION)
    added = first.issue_ticket(LONG_LIFETIME)
    second.issue_ticket(LONG_LIFETIME)

    store.save_lock(first)
    with pytest.raises(LockConflict, match="changed after it was read"):
        store.save_lock(second)
    with pytest.raises(LockConflict):
        store.save_lock(store.create_lock(CONVERSATION))

    assert _live_numbers(store) == [issued, added] and added > issued
    again = first.issue_ticket(LONG_LIFETIME)
    store.save_lock(first)  # a lock saved by this process can be saved again
    assert _live_numbers(store) == [issued, added, again]
    # The store goes on numbering after the saved tickets.
    assert store.issue_ticket(CONVERSATION, LONG_LIFETIME) > again


def test_locks_stay_readable_by_rasas_redis_lock_store(
    store: AtomicRedisLockStore, redis_db: redis.Redis
) -> None:
    rasa_store = RedisLockStore(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB, key_prefix=KEY_PREFIX)

    rasa_first = rasa_store.issue_ticket(CONVERSATION, LONG_LIFETIME)
    assert redis_db.pttl(f"{KEY_PREFIX}:lock:{CONVERSATION}") == -1  # Rasa's keys never expire
    ours = store.issue_ticket(CONVERSATION, LONG_LIFETIME)

    assert [ticket.number for ticket in rasa_store.get_lock(CONVERSATION).tickets] == [rasa_first, ours]
    assert ours > rasa_first
    assert redis_db.pttl(f"{KEY_PREFIX}:lock:{CONVERSATION}") > 0  # ours do


# A sender id as a channel makes it from a customer's phone number: personal data.
PHONE_CONVERSATION = "verified_telegram:+491701234567"


def _lock_errors_for(conversation_id: Text, redis_db: redis.Redis) -> List[LockError]:
    """The lock errors a busy or contested conversation gets: queue full, waited too
    long, saved over a change."""
    store = _store(max_tickets_per_conversation=1)
    holder = store.issue_ticket(conversation_id, LONG_LIFETIME)
    errors: List[LockError] = []
    with pytest.raises(LockQueueFull) as queue_full:
        store.issue_ticket(conversation_id, LONG_LIFETIME)
    errors.append(queue_full.value)

    async def wait_for_turn() -> None:
        async with _store().lock(conversation_id, lock_lifetime=0.2, wait_time_in_seconds=0.01):
            pytest.fail("entered while the holder's ticket is live")

    with pytest.raises(LockError, match="expired before its turn") as expired:
        asyncio.run(asyncio.wait_for(wait_for_turn(), WORKER_TIMEOUT))
    errors.append(expired.value)
    read = store.get_lock(conversation_id)
    store.cleanup(conversation_id, holder)
    with pytest.raises(LockConflict) as conflict:
        store.save_lock(read)
    errors.append(conflict.value)
    return errors


def test_lock_errors_name_the_conversation_without_its_id(
    redis_db: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Lepton logs the first line of a lock error that refuses a message (HTTP 503)."""
    errors = _lock_errors_for(PHONE_CONVERSATION, redis_db)
    with caplog.at_level(logging.ERROR, logger="lepton_components.server.outages"):
        for error in errors:
            log_outage(error, "a Telegram update")

    assert len(errors) == 3
    for error in errors:
        assert "491701234567" not in str(error), error
        assert describe(PHONE_CONVERSATION) in str(error)  # operators can still tell conversations apart
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert len(caplog.records) == 3 and "491701234567" not in logged


def test_the_stores_log_lines_name_the_conversation_without_its_id(
    store: AtomicRedisLockStore, redis_db: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    async def turn_whose_ticket_vanishes() -> None:
        async with store.lock(PHONE_CONVERSATION, lock_lifetime=0.3, wait_time_in_seconds=0.01):
            redis_db.flushdb()  # e.g. Redis restarted without persistence mid-turn
            await asyncio.sleep(0.25)  # the renewal after 0.1 s finds the ticket gone

    with caplog.at_level(logging.DEBUG):  # every logger: Rasa's `LockStore` logs deletions
        asyncio.run(asyncio.wait_for(turn_whose_ticket_vanishes(), WORKER_TIMEOUT))
        store.delete_lock(PHONE_CONVERSATION)

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Issued ticket" in logged and "Acquired" in logged and "Deleted" in logged
    assert "expired while its message was still being handled" in logged
    assert "491701234567" not in logged
    assert describe(PHONE_CONVERSATION) in logged
