"""MaskingTrackerStore over Rasa's SQL store on SQLite: what reaches the database and the
event broker is masked, the processor's own tracker is not, kept slots stay usable, and it
composes with LinkedTrackerStore."""

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any, Dict, List, Text

import pytest
import yaml
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import FailSafeTrackerStore, SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException
from rasa.utils.endpoints import EndpointConfig

from lepton_components.identity import linked_tracker_store
from lepton_components.identity.link_commands import LinkCommandHandler
from lepton_components.privacy.log_filter import PiiLogFilter
from lepton_components.privacy.masking_event_broker import MaskingEventBroker
from lepton_components.privacy.masking_tracker_store import STORE_TYPE, MaskingTrackerStore
from lepton_components.privacy.privacy_policy import DEFAULT_SECRET_ENV
from tests.identity.conftest import CODE_IN_REPLY
from tests.privacy.conftest import SECRET

REPO = Path(__file__).resolve().parents[2]
EMAIL, PHONE, CARD, IBAN = "ada@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32"
RAW = [EMAIL, PHONE, CARD, IBAN, "4111111111111111", "GB82WEST12345698765432", "+442079460958"]
SETTINGS = {"slots": {"order_number": "keep", "email": "hash"}, "phone_regions": ["US", "GB"]}


class RecordingBroker(EventBroker):
    def __init__(self) -> None:
        self.published: List[Dict[Text, Any]] = []
        self.closed = False

    def publish(self, event: Dict[Text, Any]) -> None:
        self.published.append(event)

    async def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(REPO / "bot" / "domain.yml"))


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEFAULT_SECRET_ENV, SECRET)
    # LinkedTrackerStore remembers the last one created, process-wide.
    monkeypatch.setattr(linked_tracker_store, "_active_store", None)


def sql_settings(tmp_path: Path, name: Text = "trackers.db") -> Dict[Text, Any]:
    return {"type": "SQL", "dialect": "sqlite", "db": str(tmp_path / name)}


def create(settings: Dict[Text, Any], domain: Domain, broker: Any = None) -> TrackerStore:
    """The way `rasa run` builds it from endpoints.yml: module path, `inner`, settings."""
    return TrackerStore.create(EndpointConfig.from_dict({"type": STORE_TYPE, **settings}), domain, broker)


def stored_rows(db: Path) -> List[Text]:
    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT data FROM events ORDER BY id")]


def everything_in(db: Path) -> Text:
    with sqlite3.connect(db) as connection:
        return "\n".join(connection.iterdump())


def turn_events() -> List[Any]:
    text = f"I'm {EMAIL}, phone {PHONE}, card {CARD}, iban {IBAN}, order LP-482913"
    start = text.index(EMAIL)
    parse_data = {
        "text": text,
        "intent": {"name": "inform", "confidence": 0.9},
        "entities": [
            {"entity": "email", "start": start, "end": start + len(EMAIL), "value": EMAIL},
            {"entity": "order_number", "start": text.index("LP-"), "end": text.index("LP-") + 9, "value": "LP-482913"},
        ],
    }
    return [
        UserUttered(text, parse_data=parse_data, input_channel="rest", metadata={"card": CARD}),
        SlotSet("email", EMAIL),
        SlotSet("order_number", "LP-482913"),
        BotUttered(f"We sent a code to {EMAIL}. Order LP-482913; questions: support@lepton.example"),
    ]


async def play_turn(store: TrackerStore, sender: Text) -> DialogueStateTracker:
    tracker = await store.get_or_create_tracker(sender)
    tracker.update_with_events(turn_events(), store.domain)
    await store.save(tracker)
    return tracker


def leaks(text: Text) -> List[Text]:
    return [value for value in RAW if value in text]


@pytest.mark.asyncio
async def test_database_holds_masked_events_and_the_live_tracker_keeps_raw_values(
    tmp_path: Path, domain: Domain
) -> None:
    store = create({"inner": sql_settings(tmp_path), **SETTINGS}, domain)
    assert isinstance(store, MaskingTrackerStore)
    live = await play_turn(store, "ada")

    assert leaks(everything_in(tmp_path / "trackers.db")) == []
    # The processor's tracker is untouched: forms and actions of this turn see raw values.
    assert live.get_slot("email") == EMAIL and CARD in live.latest_message.text

    # The next turn sees what was stored: kept slots raw, masked slots as tokens.
    stored = await store.retrieve("ada")
    assert stored.get_slot("order_number") == "LP-482913"
    email_token = stored.get_slot("email")
    assert email_token.startswith("[EMAIL:")
    assert stored.latest_message.text == (
        f"I'm {email_token}, phone [PHONE], card [CARD], iban [IBAN], order LP-482913"
    )
    # The bot's own support address (from the domain's responses) is not masked.
    assert (
        stored.latest_bot_utterance.text
        == f"We sent a code to {email_token}. Order LP-482913; questions: support@lepton.example"
    )


@pytest.mark.asyncio
async def test_repeated_saves_append_each_event_once(tmp_path: Path, domain: Domain) -> None:
    store = create({"inner": sql_settings(tmp_path), **SETTINGS}, domain)
    live = await play_turn(store, "ada")
    await store.save(live)  # the processor saves the same tracker more than once per turn
    live.update_with_events(turn_events(), domain)
    await store.save(live)
    rows = stored_rows(tmp_path / "trackers.db")
    assert len(rows) == len(live.events)
    assert [json.loads(row)["event"] for row in rows] == [event.type_name for event in live.events]


@pytest.mark.asyncio
async def test_event_broker_gets_the_masked_events(tmp_path: Path, domain: Domain) -> None:
    broker = RecordingBroker()
    store = create({"inner": sql_settings(tmp_path), **SETTINGS}, domain, broker)
    await play_turn(store, "ada")
    assert broker.published and leaks(json.dumps(broker.published)) == []
    assert {"sender_id": "ada", **stored_rows_as_dicts(tmp_path)[-1]} == broker.published[-1]
    # Rasa closes `tracker_store.event_broker` at shutdown: the proxy closes the real one.
    assert isinstance(store.event_broker, MaskingEventBroker)
    await store.event_broker.close()
    assert broker.closed


def stored_rows_as_dicts(tmp_path: Path) -> List[Dict[Text, Any]]:
    return [json.loads(row) for row in stored_rows(tmp_path / "trackers.db")]


@pytest.mark.asyncio
async def test_failsafe_fallback_publishes_masked_events_too(tmp_path: Path, domain: Domain) -> None:
    broker = RecordingBroker()
    store = create({"inner": sql_settings(tmp_path), **SETTINGS}, domain, broker)
    tracker = DialogueStateTracker.from_events("ada", turn_events(), domain.slots)

    async def broken_save(_: DialogueStateTracker) -> None:
        raise ConnectionError("database down")

    store.inner.save = broken_save
    # What Agent wraps every store in: on a failed save it saves the RAW tracker to an
    # in-memory store built with our `event_broker`.
    await FailSafeTrackerStore(store).save(tracker)
    assert len(broker.published) == len(tracker.events)
    assert leaks(json.dumps(broker.published)) == []


@pytest.mark.asyncio
async def test_composes_outside_the_linked_tracker_store(tmp_path: Path, domain: Domain) -> None:
    """Masking outside, linking inside: linked channels share the order number and the
    email's token, and neither the events nor the link tables hold raw data."""
    linked = {
        "type": "lepton_components.identity.linked_tracker_store.LinkedTrackerStore",
        "inner": sql_settings(tmp_path),
        "shared_slots": ["order_number", "email"],
    }
    store = create({"inner": linked, **SETTINGS}, domain)
    handler = LinkCommandHandler(store.inner)
    await play_turn(store, "web-ada")
    reply = await handler.handle("/link", "web-ada", "rest")
    answer = await handler.handle(f"/link {CODE_IN_REPLY.search(reply).group(1)}", "tg-ada", "verified_telegram")
    assert answer.startswith("Done"), answer

    other = await store.retrieve("tg-ada")
    assert other.get_slot("order_number") == "LP-482913"
    assert other.get_slot("email") == (await store.retrieve("web-ada")).get_slot("email") != EMAIL
    # Changes made after linking travel masked as well.
    later = await store.get_or_create_tracker("tg-ada")
    later.update_with_events(
        [UserUttered(f"new mail {EMAIL.replace('ada', 'lovelace')}"), SlotSet("email", "lovelace@example.com")], domain
    )
    await store.save(later)
    assert (await store.retrieve("web-ada")).get_slot("email").startswith("[EMAIL:")
    dump = everything_in(tmp_path / "trackers.db")
    assert "lepton" in dump.lower() and leaks(dump) == [] and "lovelace@example.com" not in dump


def test_hash_without_secret_refuses_to_start(tmp_path: Path, domain: Domain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEFAULT_SECRET_ENV)
    # Not Rasa's silent fallback to an in-memory store: the error reaches `rasa run`.
    with pytest.raises(InvalidConfigException, match=DEFAULT_SECRET_ENV):
        create({"inner": sql_settings(tmp_path), **SETTINGS}, domain)


def test_inner_settings_are_required(domain: Domain) -> None:
    with pytest.raises(InvalidConfigException, match="`tracker_store.inner` must hold"):
        create({"slots": {"order_number": "keep"}}, domain)
    with pytest.raises(InvalidConfigException, match="`tracker_store.inner` must hold"):
        create({"inner": {"type": STORE_TYPE}}, domain)


def test_creating_the_store_masks_existing_log_handlers(tmp_path: Path, domain: Domain) -> None:
    handler = logging.FileHandler(tmp_path / "bot.log")
    logging.getLogger("rasa.core.processor").addHandler(handler)
    try:
        create({"inner": sql_settings(tmp_path), **SETTINGS}, domain)
        assert any(isinstance(item, PiiLogFilter) for item in handler.filters)
        logging.getLogger("rasa.core.processor").warning("Received user message '%s'", f"card {CARD}")
    finally:
        logging.getLogger("rasa.core.processor").removeHandler(handler)
        handler.close()
    assert (tmp_path / "bot.log").read_text() == "Received user message 'card [CARD]'\n"


def test_sql_inner_store_can_be_passed_as_an_object(tmp_path: Path, domain: Domain) -> None:
    inner = SQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "t.db"))
    store = MaskingTrackerStore(domain, inner=inner, mask_logs=False)
    assert store.inner is inner and store.domain is inner.domain


def test_the_commented_example_in_bot_endpoints_works(tmp_path: Path, domain: Domain) -> None:
    text = (REPO / "bot" / "endpoints.yml").read_text(encoding="utf-8").split("# Personal data")[1]
    example = "\n".join(
        line[2:] for line in text.splitlines() if line.startswith("# tracker_store") or line.startswith("#   ")
    )
    settings = yaml.safe_load(example)["tracker_store"]
    settings["inner"]["db"] = str(tmp_path / "trackers.db")
    store = TrackerStore.create(EndpointConfig.from_dict(settings), domain)
    assert isinstance(store, MaskingTrackerStore)
    assert store.masker.policy.slots == {"order_number": "keep", "email": "hash"}


@pytest.mark.asyncio
async def test_events_read_back_from_storage_are_not_masked_again(tmp_path: Path, domain: Domain) -> None:
    store = create({"inner": sql_settings(tmp_path), **SETTINGS}, domain)
    await play_turn(store, "ada")
    tracker = await store.retrieve("ada")
    stored_count = len(tracker.events)
    masked_batches: List[int] = []
    mask_events = store.masker.mask_events
    store.masker.mask_events = lambda events: masked_batches.append(len(events)) or mask_events(events)
    tracker.update(UserUttered(f"and card {CARD}"))

    copy = store.masked(tracker)
    assert masked_batches == [1]  # only the new message is scanned
    assert all(copy.events[index] is tracker.events[index] for index in range(stored_count))
    assert copy.latest_message.text == "and card [CARD]"
