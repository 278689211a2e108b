"""Operator accounts in SQL: argon2id hashes, the rules names and passwords follow, the first admin."""

import logging
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from lepton_components.operators.access.accounts import AccountProblem, AccountStore, Operator
from lepton_components.operators.access.part import AccessPart
from lepton_components.operators.access.passwords import PasswordRejected, Passwords
from lepton_components.operators.access.tables import accounts
from lepton_components.operators.console import OperatorConsole
from lepton_components.operators.part import OperatorState
from tests.operators.access_harness import ADMIN_PASSWORD, AGENT_PASSWORD, account_store, engine_of, settings


def stored_hash(tmp_path: Path, username: str) -> str:
    with engine_of(tmp_path).connect() as connection:
        return connection.execute(sa.select(accounts.c.password_hash).where(accounts.c.username == username)).scalar()


def test_passwords_are_stored_as_argon2id_hashes_only(tmp_path: Path) -> None:
    store = AccountStore(engine_of(tmp_path))
    store.create("alice", AGENT_PASSWORD)
    stored = stored_hash(tmp_path, "alice")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and AGENT_PASSWORD not in stored
    assert PasswordHasher().verify(stored, AGENT_PASSWORD)
    # Two accounts with one password get different hashes (salted).
    store.create("bob", AGENT_PASSWORD)
    assert stored_hash(tmp_path, "bob") != stored


def test_an_unknown_username_costs_as_much_as_a_wrong_password(tmp_path: Path) -> None:
    store = AccountStore(engine_of(tmp_path))
    store.create("alice", AGENT_PASSWORD)

    def cpu_seconds(username: str) -> float:
        # CPU time of the whole process (argon2 hashes in threads): the same whatever else runs.
        start = time.process_time()
        for _ in range(2):
            assert store.authenticate(username, "a wrong password") is None
        return time.process_time() - start

    ratio = cpu_seconds("nobody") / cpu_seconds("alice")
    assert 0.6 < ratio < 1.6, ratio


def test_authenticate_gives_the_operator_for_the_right_password_only(tmp_path: Path) -> None:
    store = account_store(tmp_path)
    store.create("alice", AGENT_PASSWORD, "agent", ["billing", "support", "billing"])
    assert store.authenticate("alice", AGENT_PASSWORD) == Operator("alice", "agent", ("billing", "support"))
    assert store.authenticate(" Alice ", AGENT_PASSWORD) is not None  # as typed into the login form
    assert store.authenticate("alice", AGENT_PASSWORD + "x") is None
    assert store.authenticate("nobody", AGENT_PASSWORD) is None
    assert store.get("alice").last_login_at is not None
    store.set_disabled("alice", True)
    assert store.authenticate("alice", AGENT_PASSWORD) is None


def test_a_hash_made_with_old_parameters_is_replaced_at_login(tmp_path: Path) -> None:
    weak = Passwords(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    AccountStore(engine_of(tmp_path), weak).create("alice", AGENT_PASSWORD)
    assert "m=8192,t=1,p=1" in stored_hash(tmp_path, "alice")
    assert AccountStore(engine_of(tmp_path)).authenticate("alice", AGENT_PASSWORD) is not None
    upgraded = stored_hash(tmp_path, "alice")
    assert "m=65536,t=3,p=4" in upgraded and PasswordHasher().verify(upgraded, AGENT_PASSWORD)


def test_agents_act_on_their_queues_and_admins_on_all() -> None:
    agent = Operator("alice", "agent", ("billing",))
    assert agent.may_act_on("billing") and not agent.may_act_on("support")
    assert Operator("root", "admin", ("support",)).may_act_on("anything")


@pytest.mark.parametrize(
    "username, password, role, queues, problem",
    [
        ("a", AGENT_PASSWORD, "agent", ["support"], "2-40 characters"),
        ("Alice", AGENT_PASSWORD, "agent", ["support"], "lower case"),
        ("alice smith", AGENT_PASSWORD, "agent", ["support"], "2-40 characters"),
        ("a" * 41, AGENT_PASSWORD, "agent", ["support"], "2-40 characters"),
        ("alice", "too short", "agent", ["support"], "at least 12 characters"),
        ("alice", AGENT_PASSWORD, "owner", ["support"], "`agent` or `admin`"),
        ("alice", AGENT_PASSWORD, "agent", [" ", ""], "at least one queue"),
        ("alice", AGENT_PASSWORD, "agent", ["Billing Team"], "Queue names"),
    ],
)
def test_bad_account_values_are_refused_with_the_rule(
    tmp_path: Path, username: str, password: str, role: str, queues: list, problem: str
) -> None:
    with pytest.raises((AccountProblem, PasswordRejected), match=problem):
        account_store(tmp_path).create(username, password, role, queues)
    assert account_store(tmp_path).list() == []


def test_a_taken_username_is_refused(tmp_path: Path) -> None:
    store = account_store(tmp_path)
    store.create("alice", AGENT_PASSWORD)
    with pytest.raises(AccountProblem, match="already is an account named 'alice'"):
        store.create("alice", "another password 123", "admin")
    assert store.authenticate("alice", AGENT_PASSWORD) is not None


async def first_start(tmp_path: Path, **values) -> None:
    part = AccessPart(OperatorConsole(settings(**values)))
    await part.on_ready(OperatorState(agent=None, engine=engine_of(tmp_path)))


@pytest.mark.asyncio
async def test_the_first_start_creates_admin_from_admin_password(tmp_path: Path) -> None:
    await first_start(tmp_path)
    assert stored_hash(tmp_path, "admin").startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    store = account_store(tmp_path)
    assert store.authenticate("admin", ADMIN_PASSWORD) == Operator("admin", "admin", ("support",))


@pytest.mark.asyncio
async def test_an_existing_admin_is_never_overwritten(tmp_path: Path) -> None:
    await first_start(tmp_path)
    await first_start(tmp_path, admin_password="a changed admin password")
    store = account_store(tmp_path)
    assert store.authenticate("admin", ADMIN_PASSWORD) is not None
    assert store.authenticate("admin", "a changed admin password") is None
    # Nor one named `admin` that is not an enabled admin: it says how to fix it instead.
    store.set_disabled("admin", True)
    await first_start(tmp_path, admin_password="a changed admin password")
    assert store.get("admin").disabled and len(store.list()) == 1


@pytest.mark.asyncio
async def test_without_admin_or_password_a_warning_says_how_to_make_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lepton_components.operators.access.part"):
        await first_start(tmp_path, admin_password=None)
    assert account_store(tmp_path).list() == []
    assert "LEPTON_OPERATOR_PASSWORD" in caplog.text
    assert "python -m lepton_components.operators.access.accounts add <username> --role admin" in caplog.text
    caplog.clear()
    account_store(tmp_path).create("root", ADMIN_PASSWORD, "admin")
    with caplog.at_level(logging.WARNING, logger="lepton_components.operators.access.part"):
        await first_start(tmp_path, admin_password=None)
    assert caplog.text == ""
