"""LinkRegistry on SQLite and PostgreSQL: single-use expiring codes, lock-outs, link expiry and unlinking,
shared values and delivery versions; two registries on one database act as replicas."""

import re
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from lepton_components.identity.link_codes import display_code
from lepton_components.identity.link_registry import ClaimStatus, LinkLimits, LinkRegistry, state_table
from tests.identity.conftest import FakeClock
from tests.services import require_service

LIMITS = LinkLimits()
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres?connect_timeout=3"


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[LinkRegistry]:
    """The registry on SQLite (`make run`) and on PostgreSQL (scaled), in a throwaway database."""
    if request.param == "sqlite":
        yield LinkRegistry.from_url(f"sqlite:///{tmp_path / 'identity.db'}", LIMITS, clock=clock)
        return
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        admin.connect().close()
    except sa.exc.OperationalError as error:
        require_service(f"PostgreSQL is not running on 127.0.0.1:5432 ({error.orig}); .ci/run starts it")
    name = f"lepton_identity_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    registry = LinkRegistry.from_url(PG_ADMIN_URL.replace("/postgres?", f"/{name}?"), LIMITS, clock=clock)
    try:
        yield registry
    finally:
        registry.engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}"'))
        admin.dispose()


def linked(registry: LinkRegistry, issuer: str = "tg-ada", redeemer: str = "fb-ada") -> str:
    code = registry.issue_code(issuer, "verified_telegram")
    claim = registry.claim_code(code, redeemer)
    assert claim.status is ClaimStatus.CLAIMED
    return registry.link(issuer, "verified_telegram", redeemer, "verified_facebook", {}, {})


def test_a_code_links_once_and_then_never_again(registry: LinkRegistry) -> None:
    code = registry.issue_code("tg-ada", "verified_telegram")
    claim = registry.claim_code(display_code(code).lower(), "fb-ada")
    assert (claim.status, claim.issuer, claim.issuer_channel) == (ClaimStatus.CLAIMED, "tg-ada", "verified_telegram")
    assert registry.claim_code(code, "fb-ada").status is ClaimStatus.INVALID
    assert registry.claim_code(code, "web-mallory").status is ClaimStatus.INVALID


def test_an_expired_code_is_refused(registry: LinkRegistry, clock: FakeClock) -> None:
    code = registry.issue_code("tg-ada", "verified_telegram")
    clock.advance(LIMITS.code_ttl_s + 1)
    assert registry.claim_code(code, "fb-ada").status is ClaimStatus.INVALID


def test_a_new_code_replaces_the_previous_one(registry: LinkRegistry) -> None:
    first = registry.issue_code("tg-ada", "verified_telegram")
    second = registry.issue_code("tg-ada", "verified_telegram")
    assert registry.claim_code(first, "fb-ada").status is ClaimStatus.INVALID
    assert registry.claim_code(second, "fb-ada").status is ClaimStatus.CLAIMED


def test_own_code_is_refused_without_using_it_up(registry: LinkRegistry) -> None:
    code = registry.issue_code("tg-ada", "verified_telegram")
    assert registry.claim_code(code, "tg-ada").status is ClaimStatus.OWN_CODE
    assert registry.claim_code(code, "fb-ada").status is ClaimStatus.CLAIMED


def test_wrong_codes_lock_the_guesser_out_even_for_the_right_code(registry: LinkRegistry, clock: FakeClock) -> None:
    code = registry.issue_code("tg-ada", "verified_telegram")
    for guess in range(LIMITS.max_failures_per_sender):
        assert registry.claim_code(f"{guess:012d}", "web-mallory").status is ClaimStatus.INVALID
    assert registry.claim_code(code, "web-mallory").status is ClaimStatus.LOCKED_OUT
    # The lock-out checked nothing, so the code is still there for its owner's other chat.
    assert registry.claim_code(code, "fb-ada").status is ClaimStatus.CLAIMED
    clock.advance(LIMITS.failure_window_s + 1)
    assert registry.claim_code("000000000000", "web-mallory").status is ClaimStatus.INVALID


def test_wrong_codes_from_many_conversations_never_lock_out_the_customer(tmp_path: Path, clock: FakeClock) -> None:
    """A guesser with many conversations cannot lock everyone out: limits are per conversation."""
    limits = LinkLimits(max_failures_per_sender=3)
    registry = LinkRegistry.from_url(f"sqlite:///{tmp_path / 'ids.db'}", limits, clock=clock)
    code = registry.issue_code("tg-ada", "verified_telegram")
    for guesser in range(200):
        assert registry.claim_code("ZZZZZZZZZZZZ", f"web-bot-{guesser}").status is ClaimStatus.INVALID
    assert registry.claim_code(code, "web-fresh-sender").status is ClaimStatus.CLAIMED


def test_codes_carry_sixty_bits_and_are_shown_in_groups_of_four(registry: LinkRegistry) -> None:
    codes = {registry.issue_code(f"tg-{n}", "verified_telegram") for n in range(50)}
    assert len(codes) == 50 and all(len(code) == 12 for code in codes)
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", display_code(next(iter(codes))))


def test_a_conversation_in_another_group_must_unlink_first(registry: LinkRegistry) -> None:
    linked(registry, "tg-ada", "fb-ada")
    code = registry.issue_code("tg-bob", "verified_telegram")
    assert registry.claim_code(code, "fb-ada").status is ClaimStatus.ALREADY_LINKED
    registry.unlink("fb-ada")
    assert registry.claim_code(code, "fb-ada").status is ClaimStatus.CLAIMED


def test_links_expire_and_unlink_dissolves_a_pair(registry: LinkRegistry, clock: FakeClock) -> None:
    group = linked(registry)
    assert registry.group_of("tg-ada") == registry.group_of("fb-ada") == group
    assert [m.sender_id for m in registry.members("tg-ada")] == ["fb-ada"]
    clock.advance(LIMITS.link_ttl_s + 1)
    assert registry.group_of("tg-ada") is None and registry.shared_values("fb-ada") is None

    linked(registry)
    registry.record_changes("tg-ada", "verified_telegram", {"order_number": "LP-123456"})
    assert registry.unlink("fb-ada") is True
    assert registry.group_of("tg-ada") is None and registry.pending_changes("fb-ada") == []
    assert registry.unlink("fb-ada") is False
    with registry.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(state_table)).scalar_one() == 0


def test_a_third_conversation_keeps_the_group_when_one_leaves(registry: LinkRegistry) -> None:
    group = linked(registry, "tg-ada", "fb-ada")
    code = registry.issue_code("fb-ada", "verified_facebook")
    assert registry.claim_code(code, "web-ada").status is ClaimStatus.CLAIMED
    assert registry.link("fb-ada", "verified_facebook", "web-ada", "rest", {}, {}) == group
    registry.unlink("fb-ada")
    assert registry.group_of("tg-ada") == registry.group_of("web-ada") == group


def test_shared_values_carry_increasing_versions_and_delivery_moves_past_them(registry: LinkRegistry) -> None:
    linked(registry)
    registry.record_changes("tg-ada", "verified_telegram", {"order_number": "LP-111111"})
    registry.record_changes("fb-ada", "verified_facebook", {"email": "ada@example.com"})
    registry.record_changes("tg-ada", "verified_telegram", {"order_number": "LP-222222"})
    pending = registry.pending_changes("fb-ada")
    assert [(c.key, c.value, c.origin) for c in pending] == [
        ("email", "ada@example.com", "fb-ada"),
        ("order_number", "LP-222222", "tg-ada"),
    ]
    assert pending[0].version < pending[1].version
    registry.mark_delivered("fb-ada", pending[-1].version)
    assert registry.pending_changes("fb-ada") == []
    # Delivery only moves forward.
    registry.mark_delivered("fb-ada", 1)
    assert registry.pending_changes("fb-ada") == []
    assert registry.shared_values("tg-ada") == {"order_number": "LP-222222", "email": "ada@example.com"}


def test_a_new_link_starts_from_the_issuers_values(registry: LinkRegistry) -> None:
    code = registry.issue_code("tg-ada", "verified_telegram")
    registry.claim_code(code, "fb-ada")
    registry.link(
        "tg-ada", "verified_telegram", "fb-ada", "verified_facebook",
        {"order_number": "LP-123456"}, {"order_number": "LP-999999", "email": "ada@example.com"},
    )
    assert registry.shared_values("fb-ada") == {"order_number": "LP-123456", "email": "ada@example.com"}
    assert {(c.key, c.origin) for c in registry.pending_changes("fb-ada")} == {
        ("order_number", "tg-ada"), ("email", "fb-ada")
    }


def test_two_replicas_on_one_database_see_the_same_codes(tmp_path: Path, clock: FakeClock) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = (LinkRegistry.from_url(url, LIMITS, clock=clock) for _ in range(2))
    code = first.issue_code("tg-ada", "verified_telegram")
    assert second.claim_code(code, "fb-ada").status is ClaimStatus.CLAIMED
    assert first.claim_code(code, "web-ada").status is ClaimStatus.INVALID


def test_the_database_never_holds_the_code(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "codes.db"
    registry = LinkRegistry.from_url(f"sqlite:///{path}", LIMITS, clock=clock)
    code = registry.issue_code("tg-ada", "verified_telegram")
    registry.engine.dispose()
    content = path.read_bytes()
    assert code.encode() not in content and display_code(code).encode() not in content
    assert b"tg-ada" in content  # the file is readable: the check above can fail


def test_replacing_the_newest_value_still_gets_a_new_version(registry: LinkRegistry) -> None:
    linked(registry)
    registry.record_changes("tg-ada", "verified_telegram", {"order_number": "LP-111111"})
    (first,) = registry.pending_changes("fb-ada")
    registry.mark_delivered("fb-ada", first.version)
    registry.record_changes("tg-ada", "verified_telegram", {"order_number": "LP-222222"})
    (second,) = registry.pending_changes("fb-ada")
    assert second.version > first.version and second.value == "LP-222222"


def test_linking_again_renews_both_links(registry: LinkRegistry, clock: FakeClock) -> None:
    linked(registry, "tg-ada", "fb-ada")
    clock.advance(LIMITS.link_ttl_s - 60)
    linked(registry, "tg-ada", "fb-ada")
    clock.advance(120)
    assert registry.group_of("tg-ada") is not None and registry.group_of("fb-ada") is not None
