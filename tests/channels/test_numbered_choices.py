"""Buttons as numbered text, and the customer's "2" back to the second button's payload."""

from typing import Text

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.channels.numbered_choices import buttons_awaiting_reply, chosen_button, numbered_text

BUTTONS = [
    {"title": "Where is my order?", "payload": "/order_status"},
    {"title": "Return an item", "payload": "/return_item"},
    {"title": "Shipping options", "payload": "/shipping_info"},
    {"title": "Talk to a person", "payload": "/human_handoff"},
]


def test_buttons_become_a_numbered_list_under_the_text() -> None:
    assert numbered_text("What can I do for you?", BUTTONS) == (
        "What can I do for you?\n1. Where is my order?\n2. Return an item\n3. Shipping options\n"
        "4. Talk to a person\nReply with a number."
    )


@pytest.mark.parametrize("reply,payload", [
    ("2", "/return_item"), (" 4. ", "/human_handoff"), ("#1", "/order_status"), ("3)", "/shipping_info"),
    ("return an item", "/return_item"), ("Talk to a person ", "/human_handoff"),
])
def test_a_number_or_a_title_picks_that_button(reply: Text, payload: Text) -> None:
    assert chosen_button(reply, BUTTONS)["payload"] == payload


@pytest.mark.parametrize("reply", ["0", "5", "12", "2 please, and my order LP-123456", "return", ""])
def test_anything_else_is_left_as_the_customer_wrote_it(reply: Text) -> None:
    assert chosen_button(reply, BUTTONS) is None


def _tracker(*events) -> DialogueStateTracker:
    return DialogueStateTracker.from_events("customer", list(events))


def test_only_buttons_the_customer_has_not_answered_yet_count() -> None:
    offered = BotUttered("What can I do for you?", data={"buttons": BUTTONS})
    assert buttons_awaiting_reply(_tracker(UserUttered("hi"), offered, ActionExecuted("action_listen"))) == BUTTONS
    assert buttons_awaiting_reply(_tracker(offered, UserUttered("2"), BotUttered("Sure."))) == []
    assert buttons_awaiting_reply(_tracker(UserUttered("hi"), BotUttered("Hello!"))) == []
    assert buttons_awaiting_reply(None) == []
