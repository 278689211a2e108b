"""Text shaped like a placeholder is scanned like any other text.

Masking recognises its own tokens so that it leaves them alone on the next save. Only the
exact tokens this policy writes count (`[CARD]`, `[EMAIL:<16 hex>]` where email is
hashed) and only when no detector finds personal data in them: a customer who types
`[4111111111111111]` must not get a card number stored raw, not even in a `keep` slot.
Each case goes through the masking store over SQLite, built by Rasa's factory as
`rasa run` builds it, and reads back what the database holds.
"""

import sqlite3
from pathlib import Path
from typing import Text

import pytest
from rasa.core.tracker_store import TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
from rasa.utils.endpoints import EndpointConfig

from lepton_components.privacy.masking_tracker_store import STORE_TYPE
from lepton_components.privacy.privacy_policy import DEFAULT_SECRET_ENV
from tests.privacy.conftest import SECRET

CARD, IBAN, EMAIL = "4111111111111111", "GB82WEST12345698765432", "ada@example.com"
DOMAIN = Domain.from_dict(
    {"slots": {name: {"type": "text", "mappings": [{"type": "custom"}]} for name in ("order_number", "email", "name")}}
)
SETTINGS = {"slots": {"order_number": "keep", "email": "hash", "name": "mask"}}

LOOKALIKES = {
    "card in brackets": (f"[{CARD}]", CARD),
    "spaced card in brackets": ("[4111 1111 1111 1111]", CARD),
    "iban in brackets": (f"[{IBAN}]", IBAN),
    "card as a mask token's payload": (f"[CARD:{CARD}]", CARD),
    "card as a hash token's payload": (f"[EMAIL:{CARD}]", CARD),
    "email as a token's payload": (f"[ORDER_NUMBER:{EMAIL}]", EMAIL),
}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrackerStore:
    monkeypatch.setenv(DEFAULT_SECRET_ENV, SECRET)
    inner = {"type": "SQL", "dialect": "sqlite", "db": str(tmp_path / "trackers.db")}
    return TrackerStore.create(EndpointConfig(type=STORE_TYPE, inner=inner, mask_logs=False, **SETTINGS), DOMAIN)


def database(tmp_path: Path) -> Text:
    with sqlite3.connect(tmp_path / "trackers.db") as connection:
        return "\n".join(connection.iterdump())


async def save(store: TrackerStore, *events: object) -> None:
    tracker = await store.get_or_create_tracker("customer")
    tracker.update_with_events(list(events), DOMAIN)
    await store.save(tracker)


@pytest.mark.asyncio
@pytest.mark.parametrize("typed, raw", LOOKALIKES.values(), ids=list(LOOKALIKES))
async def test_a_lookalike_in_a_keep_slot_and_the_text_is_masked(
    store: TrackerStore, tmp_path: Path, typed: Text, raw: Text
) -> None:
    await save(
        store,
        UserUttered(f"my order number is {typed}"),
        SlotSet("order_number", typed),
        BotUttered(f"Looking up {typed} for you."),
    )
    assert raw not in database(tmp_path)
    tracker = await store.retrieve("customer")
    # The bracket stays, what was inside it is a token now.
    assert tracker.get_slot("order_number") != typed and tracker.get_slot("order_number").startswith("[")
    assert typed not in tracker.latest_message.text


@pytest.mark.asyncio
async def test_a_hash_slot_hashes_a_token_shaped_value_that_holds_a_card(store: TrackerStore, tmp_path: Path) -> None:
    await save(store, SlotSet("email", f"[EMAIL:{CARD}]"))
    hashed = (await store.retrieve("customer")).get_slot("email")
    assert hashed.startswith("[EMAIL:") and CARD not in hashed and CARD not in database(tmp_path)


@pytest.mark.asyncio
async def test_a_bracketed_name_in_a_mask_slot_is_masked(store: TrackerStore, tmp_path: Path) -> None:
    """`[ADA]` has a token's shape, but this policy writes no `ADA` token."""
    await save(store, SlotSet("name", "[ADA]"), BotUttered("Thanks, [ADA]!"))
    tracker = await store.retrieve("customer")
    assert tracker.get_slot("name") == "[NAME]" and tracker.latest_bot_utterance.text == "Thanks, [NAME]!"
    assert "ADA" not in database(tmp_path)


@pytest.mark.asyncio
async def test_the_stores_own_tokens_are_still_left_alone(store: TrackerStore) -> None:
    await save(store, UserUttered(f"I'm {EMAIL}, card {CARD}"), SlotSet("email", EMAIL))
    first = await store.retrieve("customer")
    token = first.get_slot("email")
    # The next turn copies the stored tokens into new events: they are saved unchanged.
    await save(store, SlotSet("email", token), BotUttered(f"Mail {token}, card [CARD]; typed [EMAIL] and [CARD]."))
    again = await store.retrieve("customer")
    assert again.get_slot("email") == token
    assert again.latest_bot_utterance.text == f"Mail {token}, card [CARD]; typed [EMAIL] and [CARD]."
