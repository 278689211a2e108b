"""The demo bot end to end: real MiniLM, real pipeline, Rasa's own Agent."""

import asyncio
import uuid
from typing import Any, Dict, List, Text

import pytest

from tests.integration.conftest import REPO, approved_answer

pytestmark = pytest.mark.slow


def test_demo_intents_and_entities_are_recognised_on_held_out_examples() -> None:
    """Trains config.yml's NLU on 80% of every intent's examples and scores the other 20%:
    intent accuracy, and exact-span entity F1 on the held-out examples with entities
    (`python -m benchmarks.demo_nlu` prints the same figures with every miss named)."""
    from benchmarks.demo_nlu import held_out_split, train_and_score
    from benchmarks.pipelines import shipped_joint_entry
    from lepton_components.joint.joint_nlu_component import JointNluComponent

    _, held_out = held_out_split()
    assert len({example.get("intent") for example in held_out}) >= 20
    result = train_and_score(JointNluComponent, shipped_joint_entry(with_demo_data=True))
    print(result)
    assert result["intent_accuracy"] >= 0.85
    assert result["entities"] >= 20
    assert result["f1"] >= 0.8


def _reply_texts(responses: List[Dict[Text, Any]]) -> List[Text]:
    return [response.get("text", "") for response in responses]


def _talk(agent: Any, sender: Text, text: Text) -> List[Text]:
    return _reply_texts(asyncio.run(agent.handle_text(text, sender_id=sender)))


def _response_text(agent: Any, utterance: Text) -> Text:
    return agent.domain.responses[utterance][0]["text"]


def test_parse_uses_our_classifier(demo_agent: Any) -> None:
    result = asyncio.run(demo_agent.parse_message("I'd like to return the shoes I bought"))
    assert result["intent"]["name"] == "return_item"
    assert result["intent"]["confidence"] > 0.5
    assert len(result["intent_ranking"]) == 10


def test_greeting_gets_the_greeting_response(demo_agent: Any) -> None:
    replies = _talk(demo_agent, uuid.uuid4().hex, "hello there!")
    assert replies and replies[0] == _response_text(demo_agent, "utter_greet")


def test_order_status_form_asks_for_and_uses_the_order_number(demo_agent: Any) -> None:
    sender = uuid.uuid4().hex
    assert _response_text(demo_agent, "utter_ask_order_number") in _talk(demo_agent, sender, "where is my order?")
    replies = _talk(demo_agent, sender, "it's LP-482913")
    assert any("LP-482913" in reply for reply in replies)


def test_human_handoff(demo_agent: Any) -> None:
    replies = _talk(demo_agent, uuid.uuid4().hex, "I want to speak to a real person")
    assert _response_text(demo_agent, "utter_handoff") in replies


@pytest.mark.parametrize(
    "text", ["", "   ", "x" * 10_000, "where is my order " * 600], ids=["empty", "blank", "10k-chars", "10k-words"]
)
def test_odd_messages_get_a_normal_reply(demo_agent: Any, text: Text) -> None:
    replies = _talk(demo_agent, uuid.uuid4().hex, text)
    assert replies, "the bot must answer, not go silent"
    assert not any("Traceback" in reply or "Error" in reply for reply in replies)


@pytest.mark.parametrize(
    "question,answer_id",
    [
        # Phrasings that appear neither in data/faq.yml nor in data/nlu.yml.
        ("is there a discount for students?", "student_military_discount"),
        ("are there vacancies at your company?", "careers"),
        ("could you wrap my present nicely", "gift_wrapping"),
    ],
)
def test_unseen_question_gets_the_approved_answer(demo_agent: Any, question: Text, answer_id: Text) -> None:
    assert _talk(demo_agent, uuid.uuid4().hex, question) == [approved_answer(answer_id)]


def test_an_approved_answer_is_filled_with_the_order_number_from_an_earlier_turn(demo_agent: Any) -> None:
    """Also what clicking a suggested question does: the click sends the question's text."""
    sender = uuid.uuid4().hex
    _talk(demo_agent, sender, "got the wrong thing and it is broken, order LP-123456")
    assert _talk(demo_agent, sender, "My item arrived damaged") == [
        approved_answer("damaged_item", order_number="LP-123456")
    ]


def test_not_understood_twice_hands_over_to_a_human(demo_agent: Any) -> None:
    sender = uuid.uuid4().hex
    deflections = {_response_text(demo_agent, name) for name in ("utter_please_rephrase", "utter_out_of_scope")}
    first = _talk(demo_agent, sender, "blorp fnord zzkx")
    assert len(first) == 1 and first[0] in deflections
    assert _response_text(demo_agent, "utter_handoff") in _talk(demo_agent, sender, "qwpoe ruty xmcn")


def test_an_order_number_given_before_the_question_is_not_asked_for_again(demo_agent: Any) -> None:
    sender = uuid.uuid4().hex
    first = _talk(demo_agent, sender, "my order is LP-318204")
    assert _response_text(demo_agent, "utter_noted") in first
    replies = _talk(demo_agent, sender, "can you track it for me")
    assert _response_text(demo_agent, "utter_ask_order_number") not in replies
    assert any("LP-318204" in reply for reply in replies)


def test_a_knowledge_base_question_inside_the_form_is_answered_then_the_form_asks_again(demo_agent: Any) -> None:
    sender = uuid.uuid4().hex
    assert _response_text(demo_agent, "utter_ask_order_number") in _talk(demo_agent, sender, "where is my parcel?")
    replies = _talk(demo_agent, sender, "oh and is there a student discount?")
    assert replies[0] == approved_answer("student_military_discount")
    assert replies[-1] == _response_text(demo_agent, "utter_ask_order_number")
    assert any("LP-902211" in reply for reply in _talk(demo_agent, sender, "LP-902211"))


def test_never_mind_ends_the_form(demo_agent: Any) -> None:
    sender = uuid.uuid4().hex
    assert _response_text(demo_agent, "utter_ask_order_number") in _talk(demo_agent, sender, "has my order shipped")
    assert _talk(demo_agent, sender, "oh forget about that, sorry") == [_response_text(demo_agent, "utter_stopped")]
    tracker = asyncio.run(demo_agent.tracker_store.retrieve(sender))
    assert tracker.active_loop_name is None
    replies = _talk(demo_agent, sender, "what time do you open on sunday")
    assert _response_text(demo_agent, "utter_ask_order_number") not in replies


def test_the_test_stories_pass_with_rasa_test(demo_agent: Any, tmp_path) -> None:
    """`make rasa-test`'s conversations (bot/test_stories.yml), dialogue memory included."""
    from rasa.core.test import test

    result = asyncio.run(
        test(str(REPO / "bot" / "test_stories.yml"), demo_agent, out_directory=str(tmp_path), disable_plotting=True)
    )
    failed = (tmp_path / "failed_test_stories.yml").read_text() if (tmp_path / "failed_test_stories.yml").exists() else ""
    assert "story:" not in failed, failed
    assert result["report"]["conversation_accuracy"]["accuracy"] == 1.0
