"""Each Rasa event type in its stored form (`as_dict()`), under mask, hash and keep."""

import json
from typing import Callable, Dict, List

from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    EntitiesAdded,
    ReminderScheduled,
    SessionStarted,
    SlotSet,
    UserUttered,
)

from lepton_components.privacy.event_masker import EventMasker

EMAIL, PHONE, CARD = "ada@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
TEXT = f"I'm Ada Lovelace, {EMAIL}, {PHONE}, card {CARD}, iban {IBAN}, order LP-482913"
RAW = [EMAIL, PHONE, CARD, IBAN, "4111111111111111", "GB82WEST12345698765432", "Ada Lovelace"]


def entity(name: str, value: str) -> Dict:
    start = TEXT.index(value)
    return {
        "entity": name,
        "start": start,
        "end": start + len(value),
        "value": value,
        "extractor": "BertEntityExtractor",
    }


def user_event() -> Dict:
    parse_data = {
        "text": TEXT,
        "intent": {"name": "inform", "confidence": 0.9},
        "intent_ranking": [{"name": "inform", "confidence": 0.9}],
        "entities": [entity("name", "Ada Lovelace"), entity("email", EMAIL), entity("order_number", "LP-482913")],
    }
    return UserUttered(
        TEXT,
        parse_data=parse_data,
        input_channel="rest",
        message_id="a4111111111111111b",
        metadata={"from": {"phone": PHONE, "nested": [EMAIL]}, "model_id": "4111111111111111"},
    ).as_dict()


def leaks(events: List[Dict]) -> List[str]:
    """Raw values left anywhere but in the ids, which hold a Luhn-valid run on purpose."""
    dumped = json.dumps(events)
    for value in ('"a4111111111111111b"', '"4111111111111111"'):
        dumped = dumped.replace(value, '"id"')
    return [value for value in RAW if value in dumped]


def test_user_uttered_text_entities_and_metadata(make_masker: Callable[..., EventMasker]) -> None:
    masker = make_masker(entities={"name": "mask", "order_number": "keep"})
    (masked,) = masker.mask_events([user_event()])
    assert masked["text"] == "I'm [NAME], [EMAIL], [PHONE], card [CARD], iban [IBAN], order LP-482913"
    assert masked["parse_data"]["text"] == masked["text"]
    assert masked["parse_data"]["intent"] == {"name": "inform", "confidence": 0.9}
    assert masked["metadata"]["from"] == {"phone": "[PHONE]", "nested": ["[EMAIL]"]}
    # Ids are not personal data; a hex id with a Luhn-valid digit run stays intact.
    assert masked["message_id"] == "a4111111111111111b" and masked["metadata"]["model_id"] == "4111111111111111"
    values = {e["entity"]: e["value"] for e in masked["parse_data"]["entities"]}
    assert values == {"name": "[NAME]", "email": "[EMAIL]", "order_number": "LP-482913"}
    # Offsets point at the tokens in the masked text.
    assert [masked["text"][e["start"] : e["end"]] for e in masked["parse_data"]["entities"]] == [
        "[NAME]",
        "[EMAIL]",
        "LP-482913",
    ]
    assert leaks([masked]) == []


def test_unconfigured_ner_values_rely_on_detectors(make_masker: Callable[..., EventMasker]) -> None:
    (masked,) = make_masker().mask_events([user_event()])
    # Without `entities: {name: ...}` a name is not something a detector can see.
    assert "Ada Lovelace" in masked["text"]
    assert {e["entity"]: e["value"] for e in masked["parse_data"]["entities"]}["email"] == "[EMAIL]"


def test_slot_set_by_slot_policy_or_by_detection(make_masker: Callable[..., EventMasker]) -> None:
    masker = make_masker(slots={"email": "hash", "order_number": "keep", "name": "mask", "tags": "mask"})
    events = [
        SlotSet("email", "Ada@Example.com").as_dict(),
        SlotSet("order_number", "LP-482913").as_dict(),
        SlotSet("name", "Ada Lovelace").as_dict(),
        SlotSet("tags", ["vip", "ada@example.com"]).as_dict(),
        SlotSet("note", f"call {PHONE}").as_dict(),
        SlotSet("email", None).as_dict(),
    ]
    email, order, name, tags, note, reset = [e["value"] for e in masker.mask_events(events)]
    assert email.startswith("[EMAIL:") and email == masker.mask_text("text").replace("text", email)
    assert order == "LP-482913" and name == "[NAME]" and tags == ["[TAGS]", "[TAGS]"]
    assert note == "call [PHONE]" and reset is None


def test_keep_never_keeps_detected_personal_data(make_masker: Callable[..., EventMasker]) -> None:
    """The demo's NER tagged an IBAN as an order number: `keep` must not store it raw."""
    masker = make_masker(slots={"order_number": "keep"}, entities={"order_number": "keep"})
    misread = {"entity": "order_number", "start": TEXT.index(IBAN), "end": TEXT.index(IBAN) + len(IBAN), "value": IBAN}
    user = user_event()
    user["parse_data"]["entities"].append(misread)
    masked_user, slot, kept = masker.mask_events(
        [user, SlotSet("order_number", IBAN).as_dict(), SlotSet("order_number", "LP-482913").as_dict()]
    )
    assert slot["value"] == "[IBAN]" and kept["value"] == "LP-482913"
    assert masked_user["parse_data"]["entities"][-1]["value"] == "[IBAN]"
    assert [value for value in leaks([masked_user, slot]) if value != "Ada Lovelace"] == []


def test_hash_gives_one_token_for_the_slot_and_the_text(make_masker: Callable[..., EventMasker]) -> None:
    masker = make_masker(slots={"email": "hash"})
    masked = masker.mask_events([user_event(), SlotSet("email", EMAIL).as_dict()])
    token = masked[1]["value"]
    assert token.startswith("[EMAIL:") and token in masked[0]["text"]


def test_bot_echo_of_a_configured_slot_is_masked(make_masker: Callable[..., EventMasker]) -> None:
    masker = make_masker(slots={"name": "mask", "email": "hash"})
    bot = BotUttered(
        f"Thanks Ada Lovelace, we sent a code to {EMAIL}.",
        data={"buttons": [{"title": "Not Ada Lovelace?", "payload": f'/inform{{"email": "{EMAIL}"}}'}]},
        metadata={"utter_action": "utter_code_sent"},
    ).as_dict()
    events = [SlotSet("name", "Ada Lovelace").as_dict(), SlotSet("email", EMAIL).as_dict(), bot]
    masked = masker.mask_events(events)[2]
    token = masker.mask_events(events)[1]["value"]
    assert masked["text"] == f"Thanks [NAME], we sent a code to {token}."
    assert masked["data"]["buttons"][0] == {"title": "Not [NAME]?", "payload": f'/inform{{"email": "{token}"}}'}
    assert masked["metadata"] == {"utter_action": "utter_code_sent"}


def test_other_event_types(make_masker: Callable[..., EventMasker]) -> None:
    masker = make_masker(entities={"email": "mask"})
    events = [
        ActionExecuted("action_listen", policy="RulePolicy", confidence=1.0).as_dict(),
        ActionExecuted(action_text=f"Your card {CARD} is blocked").as_dict(),
        EntitiesAdded([{"entity": "email", "value": EMAIL}, {"entity": "product", "value": "lamp"}]).as_dict(),
        ReminderScheduled(
            "remind", __import__("datetime").datetime(2030, 1, 1), entities=[{"entity": "email", "value": EMAIL}]
        ).as_dict(),
        ActiveLoop("order_status_form").as_dict(),
        SessionStarted(metadata={"phone": PHONE}).as_dict(),
    ]
    listen, e2e, added, reminder, loop, session = masker.mask_events(events)
    assert listen == events[0] and loop == events[4]
    assert e2e["action_text"] == "Your card [CARD] is blocked"
    assert added["entities"] == [{"entity": "email", "value": "[EMAIL]"}, {"entity": "product", "value": "lamp"}]
    assert reminder["entities"] == [{"entity": "email", "value": "[EMAIL]"}]
    assert session["metadata"] == {"phone": "[PHONE]"}


def test_masking_is_idempotent_and_leaves_the_input_alone(make_masker: Callable[..., EventMasker]) -> None:
    masker = make_masker(slots={"email": "hash", "name": "mask"}, entities={"name": "hash"}, pii={"iban": "hash"})
    events = [user_event(), SlotSet("email", EMAIL).as_dict(), SlotSet("name", "Ada Lovelace").as_dict()]
    original = json.dumps(events)
    once = masker.mask_events(events)
    assert json.dumps(events) == original
    assert masker.mask_events(once) == once
    assert leaks(once) == []


def test_keep_everything_changes_nothing(make_masker: Callable[..., EventMasker]) -> None:
    masker = make_masker(pii={"email": "keep", "phone": "keep", "card": "keep", "iban": "keep"})
    events = [user_event(), SlotSet("email", EMAIL).as_dict()]
    assert masker.mask_events(events) == events
