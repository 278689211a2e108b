"""Accounts and login sessions on SQLite (`make run`) and PostgreSQL (several replicas), with a fake clock."""

import uuid
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from lepton_components.operators.access.accounts import AccountStore, Operator
from lepton_components.operators.access.login_sessions import SessionStore, csrf_token_of, token_hash
from lepton_components.operators.access.tables import sessions
from lepton_components.operators.database import create_tables
from tests.operators.access_harness import AGENT_PASSWORD, FAST_PASSWORDS
from tests.services import require_service

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres?connect_timeout=3"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.engine.Engine]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'console.db'}")
        create_tables(engine)
        yield engine
        return
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        admin.connect().close()
    except sa.exc.OperationalError as error:
        require_service(f"PostgreSQL is not running on 127.0.0.1:5432 ({error.orig}); .ci/run starts it")
    name = f"lepton_access_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(PG_ADMIN_URL.replace("/postgres?", f"/{name}?"), poolclass=sa.pool.NullPool)
    try:
        create_tables(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}"'))
        admin.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def alice(engine: sa.engine.Engine, clock: Clock) -> AccountStore:
    store = AccountStore(engine, FAST_PASSWORDS, clock=clock)
    store.create("alice", AGENT_PASSWORD, "agent", ["support", "billing"])
    return store


def test_a_session_stands_for_its_account_with_its_own_csrf_token(engine, clock, alice) -> None:
    store = SessionStore(engine, session_hours=8, clock=clock)
    token, other = store.start("alice"), store.start("alice")
    found = store.find(token)
    assert found.operator == Operator("alice", "agent", ("support", "billing"))
    assert found.csrf_token == csrf_token_of(token) != store.find(other).csrf_token
    with engine.connect() as connection:
        stored = {row.token_hash for row in connection.execute(sa.select(sessions.c.token_hash))}
    assert stored == {token_hash(token), token_hash(other)} and token not in str(stored)
    assert store.find("not-a-token") is None and store.find("x" * 500) is None and store.find("") is None


def test_a_session_ends_after_session_hours_however_busy(engine, clock, alice) -> None:
    store = SessionStore(engine, session_hours=2, clock=clock)
    token = store.start("alice")
    for _ in range(7):
        clock.now += 15 * 60
        assert store.find(token) is not None
    clock.now += 15 * 60 + 1
    assert store.find(token) is None


def test_a_session_ends_after_an_idle_hour_and_use_is_noted_once_a_minute(engine, clock, alice) -> None:
    store = SessionStore(engine, session_hours=12, clock=clock)
    token = store.start("alice")

    def seen() -> float:
        with engine.connect() as connection:
            return connection.execute(sa.select(sessions.c.last_seen_at)).scalar_one()

    started = clock.now
    clock.now += 30
    assert store.find(token) is not None and seen() == started
    clock.now += 31
    assert store.find(token) is not None and seen() == clock.now
    clock.now += 3600
    assert store.find(token) is None
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(sessions)).scalar() == 0


def test_logout_disabling_and_a_new_password_end_sessions(engine, clock, alice) -> None:
    store = SessionStore(engine, session_hours=12, clock=clock)
    token = store.start("alice")
    store.end(token)
    assert store.find(token) is None
    token = store.start("alice")
    alice.set_disabled("alice", True)
    assert store.find(token) is None
    alice.set_disabled("alice", False)
    token = store.start("alice")
    alice.set_password("alice", "a brand new password")
    assert store.find(token) is None
    assert alice.authenticate("alice", "a brand new password") is not None


def test_ended_sessions_are_cleaned_up_at_the_next_login(engine, clock, alice) -> None:
    store = SessionStore(engine, session_hours=1, clock=clock)
    for _ in range(3):
        store.start("alice")
    clock.now += 2 * 3600
    store.start("alice")
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(sessions)).scalar() == 1


def test_only_enabled_admins_count_as_admins(engine, clock, alice) -> None:
    assert not alice.has_enabled_admin()
    alice.create("root", AGENT_PASSWORD, "admin")
    assert alice.has_enabled_admin()
    alice.set_disabled("root", True)
    assert not alice.has_enabled_admin()
    assert [(a.username, a.role, a.disabled) for a in alice.list()] == [("alice", "agent", False), ("root", "admin", True)]
