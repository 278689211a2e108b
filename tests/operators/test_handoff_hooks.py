"""The handoff as the customer lives it: the bot hands over and goes quiet, a person answers,
the bot takes over again where it was; outside opening hours and after a long wait the bot
says so and stays."""

from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered

from lepton_components.operators.handoff.hours import DEFAULT_OPENING_HOURS
from lepton_components.operators.handoff.queue import BOT_GAVE_UP, CUSTOMER_ASKED, HELD, WAITING
from tests.operators.handoff_bot import (
    SUNDAY_NOON_NEW_YORK,
    Clock,
    RecordingInput,
    RecordingOutput,
    demo_domain,
    handoff_part,
    operator,
    say,
    stored,
    texts,
)

pytestmark = pytest.mark.asyncio
ADA = "recording:ada"
RESPONSES = demo_domain().responses


def response_text(name: str, **variables: str) -> str:
    return RESPONSES[name][0]["text"].format(**variables)


def recorded_texts(output: RecordingOutput) -> List[str]:
    return [message["text"] for _, message in output.sent]


def status_events(tracker: Any) -> List[SlotSet]:
    return [event for event in tracker.events if isinstance(event, SlotSet) and event.key == "handoff_status"]


def bot_events(tracker: Any) -> List[BotUttered]:
    return [event for event in tracker.events if isinstance(event, BotUttered)]


def served(tmp_path: Path, **settings: Any) -> Tuple[Any, Any, RecordingOutput, Clock]:
    output = RecordingOutput()
    clock = Clock()
    part, agent = handoff_part(tmp_path, clock, channels=[RecordingInput("recording", output)], **settings)
    return part, agent, output, clock


async def test_asking_for_a_person_queues_the_conversation_and_says_so(tmp_path: Path) -> None:
    part, agent, _, clock = served(tmp_path)
    replies = await say(agent, ADA, "can I talk to a human please", channel="recording")
    assert texts(replies) == [response_text("utter_handoff"), response_text("utter_handoff_queued")]
    service = await part.service()
    handoff = await service.queue.status_of(ADA)
    assert (handoff.status, handoff.queue, handoff.channel, handoff.reason) == (WAITING, "support", "recording", CUSTOMER_ASKED)
    tracker = await stored(agent, ADA)
    (queued,) = status_events(tracker)
    assert queued.value == WAITING
    assert queued.metadata["lepton_handoff"] == {"action": "queued", "at": clock.now, "queue": "support",
                                                 "reason": CUSTOMER_ASKED}
    # The follow-up is recorded as the bot's message, as the customer saw it.
    assert bot_events(tracker)[-1].text == response_text("utter_handoff_queued")
    assert tracker.get_slot("handoff_status") == WAITING


async def test_a_handoff_after_the_bot_gave_up_is_marked_so(tmp_path: Path) -> None:
    part, agent, _, _ = served(tmp_path)
    await say(agent, ADA, "nonsense words", channel="recording")
    assert (await (await part.service()).queue.status_of(ADA)).reason == BOT_GAVE_UP


async def test_the_bot_stays_silent_while_the_customer_waits_and_the_agent_sees_it(tmp_path: Path) -> None:
    part, agent, _, _ = served(tmp_path)
    await say(agent, ADA, "a human please", channel="recording")
    handled = list(agent.processor.handled)
    assert await say(agent, ADA, "hello? is anyone there", channel="recording") == []
    assert agent.processor.handled == handled  # the bot never ran
    tracker = await stored(agent, ADA)
    last = tracker.events[-1]
    # Logged and parsed (for review), not answered.
    assert isinstance(last, UserUttered) and last.text == "hello? is anyone there" and last.intent_name == "greet"
    handoff = await (await part.service()).queue.status_of(ADA)
    assert handoff.unread == 1 and handoff.last_customer_at is not None


async def test_outside_opening_hours_the_customer_gets_the_email_route_and_no_queue(tmp_path: Path) -> None:
    part, agent, _, clock = served(tmp_path, opening_hours=DEFAULT_OPENING_HOURS)
    clock.now = SUNDAY_NOON_NEW_YORK
    replies = await say(agent, ADA, "human please", channel="recording")
    assert texts(replies) == [response_text("utter_handoff"), response_text("utter_handoff_closed")]
    assert "support@lepton.example" in texts(replies)[1]
    assert await (await part.service()).queue.status_of(ADA) is None
    assert status_events(await stored(agent, ADA)) == []
    # The bot goes on answering.
    assert texts(await say(agent, ADA, "hello", channel="recording")) == [response_text("utter_greet")]


async def test_an_agent_takes_over_answers_and_hands_back_to_the_bot(tmp_path: Path) -> None:
    part, agent, output, clock = served(tmp_path)
    await say(agent, ADA, "I want to order... no, a human please", channel="recording")
    service = await part.service()
    dana = operator("dana")

    claimed = await service.claim(dana, ADA)
    assert claimed.handoff.status == HELD and claimed.delivery.pushed and claimed.failure is None
    assert recorded_texts(output) == [response_text("utter_agent_joined", agent="dana")]
    assert output.sent[0][0] == "ada"  # the platform's own id

    clock.now += 5
    assert await say(agent, ADA, "my parcel is late", channel="recording") == []
    replied = await service.reply(dana, ADA, "Sorry to hear that! Let me check.")
    assert replied.failure is None
    assert recorded_texts(output)[-1] == "Sorry to hear that! Let me check."

    clock.now += 5
    released = await service.release(dana, ADA)
    assert released.handoff is None and released.failure is None
    assert recorded_texts(output)[-1] == response_text("utter_agent_left", agent="dana")
    assert await service.queue.status_of(ADA) is None

    # The bot answers again.
    assert texts(await say(agent, ADA, "hello", channel="recording")) == [response_text("utter_greet")]

    tracker = await stored(agent, ADA)
    assert [event.value for event in status_events(tracker)] == [WAITING, HELD, None]
    audits = [
        event.metadata["lepton_operator"]
        for event in tracker.events
        if isinstance(event, (SlotSet, BotUttered)) and "lepton_operator" in (event.metadata or {})
    ]
    assert [(audit["username"], audit["action"]) for audit in audits] == [
        ("dana", "claim"), ("dana", "claim"), ("dana", "reply"), ("dana", "release"), ("dana", "release"),
    ]
    assert all(isinstance(audit["at"], float) for audit in audits)
    reply_event = next(event for event in bot_events(tracker) if event.text == "Sorry to hear that! Let me check.")
    assert reply_event.metadata["lepton_operator"]["at"] == clock.now - 5


async def test_the_bot_goes_on_with_the_same_form_and_slots_after_the_handoff(tmp_path: Path) -> None:
    part, agent, _, _ = served(tmp_path)
    assert texts(await say(agent, ADA, "where is my order", channel="recording")) == [
        response_text("utter_ask_order_number")
    ]
    await say(agent, ADA, "actually get me a human", channel="recording")
    service = await part.service()
    await service.claim(operator("dana"), ADA)
    await service.reply(operator("dana"), ADA, "Please give the bot your order number, it will look it up.")
    await service.release(operator("dana"), ADA)
    assert (await stored(agent, ADA)).active_loop_name == "order_status_form"
    replies = await say(agent, ADA, "LP-123456", channel="recording")
    assert texts(replies) == [response_text("utter_order_status", order_number="LP-123456")]


async def test_a_wait_nobody_takes_goes_back_to_the_bot_with_a_message(tmp_path: Path) -> None:
    part, agent, output, clock = served(tmp_path, wait_timeout_minutes=30)
    await say(agent, ADA, "human please", channel="recording")
    clock.now += 29 * 60
    assert await say(agent, ADA, "still there?", channel="recording") == []
    clock.now += 2 * 60
    # The customer's next message ends the wait: the notice, then the bot's answer.
    replies = await say(agent, ADA, "hello", channel="recording")
    assert texts(replies) == [response_text("utter_handoff_timeout"), response_text("utter_greet")]
    assert await (await part.service()).queue.status_of(ADA) is None
    tracker = await stored(agent, ADA)
    assert status_events(tracker)[-1].value is None
    assert status_events(tracker)[-1].metadata["lepton_handoff"]["action"] == "timed_out"

    # A customer who never writes again is told on their channel by the sweep.
    bo = "recording:bo"
    await say(agent, bo, "human please", channel="recording")
    clock.now += 31 * 60
    assert await part.sweep() == 1
    assert recorded_texts(output) == [response_text("utter_handoff_timeout")]
    assert output.sent[0][0] == "bo"
    assert await (await part.service()).queue.status_of(bo) is None
    assert await part.sweep() == 0


async def test_a_claimed_conversation_never_times_out(tmp_path: Path) -> None:
    part, agent, _, clock = served(tmp_path, wait_timeout_minutes=1)
    await say(agent, ADA, "human please", channel="recording")
    await (await part.service()).claim(operator("dana"), ADA)
    clock.now += 3600
    assert await part.sweep() == 0
    assert await say(agent, ADA, "hello", channel="recording") == []


async def test_a_custom_handoff_action_and_queue(tmp_path: Path) -> None:
    part, agent, _, _ = served(tmp_path, handoff_actions=["utter_greet"], queue="vip")
    replies = await say(agent, ADA, "hello", channel="recording")
    assert texts(replies)[-1] == response_text("utter_handoff_queued")
    assert (await (await part.service()).queue.status_of(ADA)).queue == "vip"


async def test_a_bot_without_the_handoff_responses_queues_nothing_and_logs_the_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    part, agent, _, _ = served(tmp_path)
    responses: Dict[str, Any] = dict(agent.processor.nlg.responses)
    del responses["utter_handoff_queued"]
    agent.processor.nlg.responses = responses
    replies = await say(agent, ADA, "human please", channel="recording")
    assert texts(replies) == [response_text("utter_handoff")]
    assert await (await part.service()).queue.status_of(ADA) is None
    assert "utter_handoff_queued" in caplog.text and "domain.yml" in caplog.text
