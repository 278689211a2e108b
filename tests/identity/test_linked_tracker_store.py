"""LinkedTrackerStore over Rasa's in-memory and SQL stores: shared slots and the active form
reach linked conversations as events, each conversation keeps its own history, and
nothing crosses without a valid link or after it ended."""

import re
from pathlib import Path
from typing import List, Text

import pytest
import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore, TrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME, REQUESTED_SLOT
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, Restarted, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException
from rasa.utils.endpoints import read_endpoint_config

from lepton_components.identity.link_commands import LinkCommandHandler
from lepton_components.identity.link_registry import LinkLimits, LinkRegistry
from lepton_components.identity.linked_tracker_store import LinkedTrackerStore, active_linked_store
from lepton_components.identity.shared_state import is_delivered
from tests.identity.conftest import REPO, FakeClock, LinkFunction, code_from, inner_store, turn

TG, FB, WEB = "verified_telegram", "verified_facebook", "rest"
FORM = "order_status_form"


def delivered(tracker: DialogueStateTracker) -> List[SlotSet]:
    return [e for e in tracker.events if is_delivered(e)]


def texts(tracker: DialogueStateTracker) -> List[Text]:
    return [e.text for e in tracker.events if isinstance(e, UserUttered)]


@pytest.mark.asyncio
async def test_order_number_given_before_linking_reaches_the_other_channel(
    store: LinkedTrackerStore, link: LinkFunction
) -> None:
    await turn(store, "tg-ada", TG, "my order is LP-123456", [SlotSet("order_number", "LP-123456")])
    await turn(store, "fb-ada", FB, "hi")
    await link("tg-ada", TG, "fb-ada", FB)

    ada_fb = await store.retrieve("fb-ada")
    assert ada_fb.get_slot("order_number") == "LP-123456"
    (event,) = delivered(ada_fb)
    assert event.metadata["lepton_identity"]["from_channel"] == TG
    # Per-channel histories stay apart: Messenger holds none of what was said on Telegram.
    assert texts(ada_fb) == ["hi"]
    assert texts(await store.retrieve("tg-ada")) == ["my order is LP-123456"]


@pytest.mark.asyncio
async def test_changes_after_linking_travel_both_ways_without_echo(
    store: LinkedTrackerStore, link: LinkFunction
) -> None:
    await turn(store, "tg-ada", TG, "hello")
    await turn(store, "fb-ada", FB, "hi")
    await link("tg-ada", TG, "fb-ada", FB)

    await turn(store, "fb-ada", FB, "ada@example.com", [SlotSet("email", "ada@example.com")])
    ada_tg = await turn(store, "tg-ada", TG, "LP-123456", [SlotSet("order_number", "LP-123456")])
    assert ada_tg.get_slot("email") == "ada@example.com"
    ada_fb = await turn(store, "fb-ada", FB, "ok")
    assert (ada_fb.get_slot("order_number"), ada_fb.get_slot("email")) == ("LP-123456", "ada@example.com")

    # A value is delivered once; it is not sent back to where it came from.
    await turn(store, "tg-ada", TG, "thanks")
    ada_tg = await store.retrieve("tg-ada")
    ada_fb = await store.retrieve("fb-ada")
    assert [(e.key, e.value) for e in delivered(ada_tg)] == [("email", "ada@example.com")]
    assert [(e.key, e.value) for e in delivered(ada_fb)] == [("order_number", "LP-123456")]


@pytest.mark.asyncio
async def test_an_active_form_goes_on_in_the_other_channel_and_its_end_comes_back(
    store: LinkedTrackerStore, link: LinkFunction
) -> None:
    await turn(store, "tg-ada", TG, "where is my order?", [ActiveLoop(FORM), SlotSet(REQUESTED_SLOT, "order_number")])
    await link("tg-ada", TG, "fb-ada", FB)

    ada_fb = await store.retrieve("fb-ada")
    assert (ada_fb.active_loop_name, ada_fb.get_slot(REQUESTED_SLOT)) == (FORM, "order_number")

    await turn(
        store, "fb-ada", FB, "LP-654321",
        [SlotSet("order_number", "LP-654321"), ActiveLoop(None), SlotSet(REQUESTED_SLOT, None)],
    )
    ada_tg = await store.retrieve("tg-ada")
    assert ada_tg.active_loop_name is None
    assert (ada_tg.get_slot("order_number"), ada_tg.get_slot(REQUESTED_SLOT)) == ("LP-654321", None)


@pytest.mark.asyncio
async def test_a_conversation_linked_before_it_spoke_starts_with_the_shared_values(
    store: LinkedTrackerStore, link: LinkFunction
) -> None:
    await turn(store, "tg-ada", TG, "LP-123456", [SlotSet("order_number", "LP-123456")])
    await link("tg-ada", TG, "web-ada", WEB)
    assert await store.inner.retrieve("web-ada") is None

    ada_web = await store.get_or_create_tracker("web-ada", append_action_listen=False)
    assert ada_web.get_slot("order_number") == "LP-123456"
    # What `action_session_start` would have written, so the processor starts no second session.
    assert [type(e) for e in ada_web.events] == [ActionExecuted, SessionStarted, SlotSet, ActionExecuted]
    assert (ada_web.events[0].action_name, ada_web.events[-1].action_name) == (
        ACTION_SESSION_START_NAME, ACTION_LISTEN_NAME
    )
    await store.save(ada_web)
    stored = await store.inner.retrieve("web-ada")
    assert stored.get_slot("order_number") == "LP-123456"
    # Delivered and stored: the next turn appends nothing more.
    assert len(delivered(await store.retrieve("web-ada"))) == 1


@pytest.mark.asyncio
async def test_unlinking_stops_sharing_in_both_directions(store: LinkedTrackerStore, link: LinkFunction) -> None:
    await turn(store, "tg-ada", TG, "LP-123456", [SlotSet("order_number", "LP-123456")])
    await link("tg-ada", TG, "fb-ada", FB)
    await turn(store, "fb-ada", FB, "hi")

    reply = await LinkCommandHandler(store).handle("/unlink", "fb-ada", FB)
    assert reply.startswith("This chat is no longer linked")
    await turn(store, "tg-ada", TG, "LP-999999", [SlotSet("order_number", "LP-999999")])
    await turn(store, "fb-ada", FB, "ada@example.com", [SlotSet("email", "ada@example.com")])

    assert (await store.retrieve("fb-ada")).get_slot("order_number") == "LP-123456"
    assert (await store.retrieve("tg-ada")).get_slot("email") is None
    assert await LinkCommandHandler(store).handle("/unlink", "tg-ada", TG) == (
        "This chat isn't linked with any other conversation."
    )


@pytest.mark.asyncio
async def test_an_expired_link_stops_sharing(
    domain: Domain, tmp_path: Path, clock: FakeClock
) -> None:
    registry = LinkRegistry.from_url(f"sqlite:///{tmp_path / 'ids.db'}", LinkLimits(link_ttl_s=3600), clock=clock)
    store = LinkedTrackerStore(domain, inner=InMemoryTrackerStore(domain), registry=registry)
    handler = LinkCommandHandler(store)
    await handler.handle(f"/link {code_from(await handler.handle('/link', 'tg-ada', TG))}", "fb-ada", FB)
    await turn(store, "tg-ada", TG, "LP-123456", [SlotSet("order_number", "LP-123456")])
    clock.advance(3601)
    await turn(store, "tg-ada", TG, "LP-999999", [SlotSet("order_number", "LP-999999")])
    assert await store.retrieve("fb-ada") is None


@pytest.mark.asyncio
@pytest.mark.parametrize("case", ["wrong", "expired", "reused", "own", "locked-out"])
async def test_a_bad_code_links_nothing_and_leaks_nothing(
    store: LinkedTrackerStore, clock: FakeClock, case: Text
) -> None:
    handler = LinkCommandHandler(store)
    await turn(store, "tg-ada", TG, "LP-123456", [SlotSet("order_number", "LP-123456")])
    await turn(store, "web-eve", WEB, "hi")
    code = code_from(await handler.handle("/link", "tg-ada", TG))
    if case == "wrong":
        code = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    elif case == "expired":
        clock.advance(5 * 60 + 1)
    elif case == "reused":
        assert (await handler.handle(f"/link {code}", "fb-ada", FB)).startswith("Done")
    elif case == "locked-out":
        for _ in range(5):
            await handler.handle("/link 0000-0000", "web-eve", WEB)
    sender = "tg-ada" if case == "own" else "web-eve"

    reply = await handler.handle(f"/link {code}", sender, WEB)
    assert not reply.startswith("Done") and "LP-123456" not in reply
    assert store.registry.group_of("web-eve") is None
    await turn(store, "tg-ada", TG, "ada@example.com", [SlotSet("email", "ada@example.com")])
    eve = await store.retrieve("web-eve")
    assert (eve.get_slot("order_number"), eve.get_slot("email"), delivered(eve)) == (None, None, [])
    assert texts(eve) == ["hi"]


@pytest.mark.asyncio
async def test_two_linked_customers_never_see_each_others_values(
    store: LinkedTrackerStore, link: LinkFunction
) -> None:
    await turn(store, "tg-ada", TG, "LP-111111", [SlotSet("order_number", "LP-111111")])
    await turn(store, "tg-bob", TG, "LP-222222", [SlotSet("order_number", "LP-222222")])
    await link("tg-ada", TG, "fb-ada", FB)
    await link("tg-bob", TG, "fb-bob", FB)
    await turn(store, "fb-bob", FB, "bob@example.com", [SlotSet("email", "bob@example.com")])

    ada_fb, ada_tg = await store.retrieve("fb-ada"), await store.retrieve("tg-ada")
    bob_fb = await store.retrieve("fb-bob")
    assert (ada_fb.get_slot("order_number"), ada_fb.get_slot("email")) == ("LP-111111", None)
    assert ada_tg.get_slot("email") is None
    assert bob_fb.get_slot("order_number") == "LP-222222"


@pytest.mark.asyncio
async def test_a_restart_or_unshared_slot_stays_in_its_own_conversation(
    store: LinkedTrackerStore, link: LinkFunction
) -> None:
    await turn(store, "tg-ada", TG, "LP-123456", [SlotSet("order_number", "LP-123456"), SlotSet("product", "lamp")])
    await link("tg-ada", TG, "fb-ada", FB)
    await turn(store, "fb-ada", FB, "/restart", [Restarted()])
    await turn(store, "fb-ada", FB, "a desk", [SlotSet("product", "desk")])

    ada_tg = await store.retrieve("tg-ada")
    assert (ada_tg.get_slot("order_number"), ada_tg.get_slot("product")) == ("LP-123456", "lamp")
    assert (await store.retrieve("fb-ada")).get_slot("product") == "desk"


@pytest.mark.asyncio
async def test_replicas_with_their_own_store_objects_share_through_the_databases(
    domain: Domain, tmp_path: Path, clock: FakeClock
) -> None:
    def replica() -> LinkedTrackerStore:
        registry = LinkRegistry.from_url(f"sqlite:///{tmp_path / 'ids.db'}", LinkLimits(), clock=clock)
        return LinkedTrackerStore(domain, inner=inner_store("sql", domain, tmp_path), registry=registry)

    first, second = replica(), replica()
    await turn(first, "tg-ada", TG, "LP-123456", [SlotSet("order_number", "LP-123456")])
    code = code_from(await LinkCommandHandler(first).handle("/link", "tg-ada", TG))
    assert (await LinkCommandHandler(second).handle(f"/link {code}", "fb-ada", FB)).startswith("Done")
    assert (await second.get_or_create_tracker("fb-ada")).get_slot("order_number") == "LP-123456"


@pytest.mark.asyncio
async def test_rasa_loads_it_from_endpoints_yml_with_the_registry_in_the_tracker_database(
    domain: Domain, tmp_path: Path
) -> None:
    database = tmp_path / "trackers.db"
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        "tracker_store:\n"
        "  type: lepton_components.identity.linked_tracker_store.LinkedTrackerStore\n"
        f"  inner:\n    type: SQL\n    dialect: sqlite\n    db: {database}\n"
        "  shared_slots: [order_number]\n"
        "  code_ttl_minutes: 3\n"
    )
    store = TrackerStore.create(read_endpoint_config(str(endpoints), "tracker_store"), domain)
    assert isinstance(store, LinkedTrackerStore) and active_linked_store() is store
    assert store.registry.limits.code_ttl_s == 180
    assert store.keys_shared.slots == frozenset({"order_number"})
    tables = sa.inspect(sa.create_engine(f"sqlite:///{database}")).get_table_names()
    assert {"events", "lepton_identity_codes", "lepton_identity_members", "lepton_identity_state"} <= set(tables)

    # The Agent wraps every store in FailSafeTrackerStore; the domain must reach the inner one.
    fail_safe = FailSafeTrackerStore(store)
    fail_safe.domain = domain
    assert store.inner.domain is domain
    await turn(fail_safe, "tg-ada", TG, "hi", [SlotSet("order_number", "LP-123456")])
    assert (await store.inner.retrieve("tg-ada")).get_slot("order_number") == "LP-123456"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"shared_slots": "order_number"}, "`tracker_store.shared_slots` must be a list of slot names"),
        ({"code_ttl_minutes": 0}, "`tracker_store.code_ttl_minutes` must be a number > 0, got 0"),
        ({"max_failed_codes_per_conversation": 2.5}, "`tracker_store.max_failed_codes_per_conversation` must be a whole number"),
        ({"share_active_loop": "yes"}, "`tracker_store.share_active_loop` must be true or false"),
        ({"inner": {"dialect": "sqlite"}}, "`tracker_store.inner` must hold the settings"),
    ],
)
def test_bad_settings_are_named_with_the_yaml_to_write(domain: Domain, tmp_path: Path, settings: dict, message: Text) -> None:
    settings.setdefault("registry_url", f"sqlite:///{tmp_path / 'ids.db'}")
    with pytest.raises(InvalidConfigException, match=re.escape(message)):
        LinkedTrackerStore(domain, inner=settings.pop("inner", InMemoryTrackerStore(domain)), **settings)


def test_a_store_without_a_database_needs_a_registry_url(domain: Domain) -> None:
    with pytest.raises(InvalidConfigException, match="set `tracker_store.registry_url`"):
        LinkedTrackerStore(domain, inner=InMemoryTrackerStore(domain))


@pytest.mark.asyncio
async def test_a_value_delivered_during_a_turn_does_not_overwrite_a_newer_one(
    store: LinkedTrackerStore, link: LinkFunction
) -> None:
    await link("tg-ada", TG, "fb-ada", FB)
    await turn(store, "tg-ada", TG, "LP-111111", [SlotSet("order_number", "LP-111111")])
    # Messenger's turn starts (LP-111111 delivered) while Telegram changes the number again.
    ada_fb = await store.get_or_create_tracker("fb-ada", append_action_listen=False)
    await turn(store, "tg-ada", TG, "sorry, LP-222222", [SlotSet("order_number", "LP-222222")])
    ada_fb.update(UserUttered("hi", input_channel=FB), store.domain)
    await store.save(ada_fb)

    assert store.registry.shared_values("tg-ada") == {"order_number": "LP-222222"}
    assert (await store.retrieve("tg-ada")).get_slot("order_number") == "LP-222222"
    assert (await store.retrieve("fb-ada")).get_slot("order_number") == "LP-222222"


def test_the_commented_example_in_bot_endpoints_yml_loads(domain: Domain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = (REPO / "bot" / "endpoints.yml").read_text().splitlines()
    start = lines.index("# tracker_store:")
    # The block runs until the first line that is not a commented YAML line.
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    example = "\n".join(block)
    (tmp_path / "endpoints.yml").write_text(example)
    monkeypatch.chdir(tmp_path)  # its SQLite file is relative, like `make run`'s
    store = TrackerStore.create(read_endpoint_config("endpoints.yml", "tracker_store"), domain)
    assert isinstance(store, LinkedTrackerStore) and store.keys_shared.share_active_loop
    assert (tmp_path / "lepton-trackers.db").exists()


class RecordingBroker(EventBroker):
    def __init__(self) -> None:
        self.published: List[dict] = []

    def publish(self, event: dict) -> None:
        self.published.append(event)


@pytest.mark.asyncio
async def test_events_reach_the_event_broker_once_and_rasa_can_close_it(domain: Domain, registry: LinkRegistry) -> None:
    broker = RecordingBroker()
    store = LinkedTrackerStore(domain, inner=InMemoryTrackerStore(domain, event_broker=broker), registry=registry)
    assert FailSafeTrackerStore(store).event_broker is broker
    await turn(store, "tg-ada", TG, "LP-123456", [SlotSet("order_number", "LP-123456")])
    assert [event["event"] for event in broker.published] == ["user", "slot"]
