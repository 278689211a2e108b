"""The turn log: one row per customer message, flagged from the events Rasa stored."""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Text, Tuple

import pytest
import sqlalchemy as sa
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SlotSet, UserUttered

from lepton_components.monitoring.turns import TurnVocabulary
from lepton_components.operators.analytics.turn_log import TurnLog, TurnNames, names_for, turn_row, turns, utc_day
from lepton_components.operators.database import create_tables
from lepton_components.operators.hooks import install_turn_hooks
from lepton_components.privacy.masking_tracker_store import MaskingTrackerStore
from tests.operators.review_harness import ReviewBot

NAMES = TurnNames(
    TurnVocabulary(
        intents=frozenset({"greet", "human_handoff", "nlu_fallback"}),
        faq_policy="FaqAnswerPolicy",
        faq_answer_actions=frozenset({"utter_faq_answer"}),
        faq_suggest_actions=frozenset({"utter_faq_suggest_2", "utter_faq_suggest_3"}),
        faq_miss_actions=frozenset({"utter_please_rephrase", "utter_handoff"}),
    ),
    rephrase_actions=frozenset({"utter_please_rephrase"}),
)
FAQ = "policy_0_FaqAnswerPolicy"
RULES = "policy_2_RulePolicy"
FLAGS = ("fallback", "rephrase", "low_confidence", "choices", "handoff", "faq_answered", "kb_missed", "human")


def turn(intent: Optional[Text], confidence: float, *actions: Tuple[Text, Text], candidates: Any = ()) -> List[Event]:
    parse = {"intent": {"name": intent, "confidence": confidence}, "answer_candidates": list(candidates)}
    events: List[Event] = [UserUttered("the message", parse["intent"], [], parse, input_channel="web_chat", message_id="m-1")]
    for action, policy in actions:
        events += [ActionExecuted(action, policy=policy, confidence=0.8), BotUttered("reply")]
    if actions:
        events.append(ActionExecuted("action_listen", policy=actions[0][1]))
    return events


def flags(row: Dict[Text, Any]) -> List[Text]:
    return [name for name in FLAGS if row[name]]


def test_a_knowledge_base_answer_is_no_failure() -> None:
    answered = turn("nlu_fallback", 0.3, ("utter_faq_answer", FAQ), candidates=[{"id": "gift_cards", "score": 0.93}])
    answered.insert(1, SlotSet("faq_answer", "Yes, gift cards."))
    row = turn_row("web_chat:1", answered, NAMES, 0.6)
    assert flags(row) == ["low_confidence", "faq_answered"]
    assert (row["intent"], row["confidence"], row["kb_answer"], row["kb_score"]) == ("nlu_fallback", 0.3, "gift_cards", 0.93)
    assert (json.loads(row["actions"]), row["policy"]) == (["utter_faq_answer"], FAQ)
    assert (row["channel"], row["message_id"], row["text"]) == ("web_chat", "m-1", "the message")


def test_asking_to_rephrase_is_a_fallback_and_a_knowledge_base_miss() -> None:
    row = turn_row("c", turn("nlu_fallback", 0.3, ("utter_please_rephrase", FAQ)), NAMES, 0.6)
    assert flags(row) == ["fallback", "rephrase", "low_confidence", "kb_missed"]


def test_suggestions_handoffs_and_core_fallbacks() -> None:
    suggested = turn("nlu_fallback", 0.55, ("utter_faq_suggest_3", FAQ))
    assert flags(turn_row("c", suggested, NAMES, 0.5)) == ["fallback", "choices"]
    asked = turn("human_handoff", 0.99, ("utter_handoff", RULES))
    assert flags(turn_row("c", asked, NAMES, 0.6)) == ["handoff"]
    # After a failed rephrase FaqAnswerPolicy gives up: a miss and a handoff.
    gave_up = turn("nlu_fallback", 0.2, ("utter_handoff", FAQ))
    assert flags(turn_row("c", gave_up, NAMES, 0.6)) == ["fallback", "low_confidence", "handoff", "kb_missed"]
    core = turn("greet", 0.9, ("action_default_fallback", RULES))
    assert flags(turn_row("c", core, NAMES, 0.6)) == ["fallback"]


def test_the_low_confidence_threshold_is_the_configured_one() -> None:
    greeting = turn("greet", 0.7, ("utter_greet", RULES))
    assert flags(turn_row("c", greeting, NAMES, 0.6)) == []
    assert flags(turn_row("c", greeting, NAMES, 0.75)) == ["low_confidence"]


def test_a_message_only_logged_while_a_person_has_the_conversation_is_a_human_turn() -> None:
    logged = turn("nlu_fallback", 0.1)  # `processor.log_message`: a user event, no bot action
    assert flags(turn_row("c", logged, NAMES, 0.6)) == ["human"]
    assert turn_row("c", [ActionExecuted("action_session_start")], NAMES, 0.6) is None


def test_the_rephrase_action_is_read_from_the_loaded_faq_policy(tmp_path: Path) -> None:
    bot = ReviewBot(SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "t.db")), None)
    names = names_for(bot)
    assert names.rephrase_actions == {"utter_please_rephrase"}
    assert names.vocabulary.faq_policy == "FaqAnswerPolicy" and "greet" in names.vocabulary.intents


def rows(store_path: Path) -> List[Any]:
    engine = sa.create_engine(f"sqlite:///{store_path}")
    with engine.connect() as connection:
        return connection.execute(sa.select(turns).order_by(turns.c.id)).all()


async def play(store: TrackerStore, text: Text, sender: Text = "rest:ada") -> None:
    bot = ReviewBot(store, None)
    install_turn_hooks(bot, [TurnLog(0.6)])
    await bot.handle_message(UserMessage(text, CollectingOutputChannel(), sender, input_channel="rest"))


@pytest.mark.asyncio
async def test_the_hook_logs_each_stored_turn(tmp_path: Path) -> None:
    db = tmp_path / "trackers.db"
    store = SQLTrackerStore(dialect="sqlite", db=str(db))
    create_tables(store.engine)
    await play(store, "hello there")
    await play(store, "is there a bitcoin discount?")
    logged = rows(db)
    assert [(row.text, row.intent, row.rephrase, row.conversation_id) for row in logged] == [
        ("hello there", "greet", False, "rest:ada"),
        ("is there a bitcoin discount?", "nlu_fallback", True, "rest:ada"),
    ]
    assert logged[0].day == utc_day(logged[0].at) and logged[1].at >= logged[0].at


@pytest.mark.asyncio
async def test_behind_the_masking_store_the_log_holds_the_masked_text(tmp_path: Path) -> None:
    db = tmp_path / "trackers.db"
    store = MaskingTrackerStore(inner={"type": "SQL", "dialect": "sqlite", "db": str(db)}, mask_logs=False)
    create_tables(store.inner.engine)
    await play(store, "hello, I am ada@example.com and my card is 4111 1111 1111 1111")
    (row,) = rows(db)
    assert "ada@example.com" not in row.text and "4111" not in row.text
    stored = await store.retrieve("rest:ada")
    # Exactly what the conversation record holds, no more.
    assert row.text == stored.latest_message.text and "[EMAIL]" in row.text


@pytest.mark.asyncio
async def test_a_failing_log_never_fails_the_customers_turn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "trackers.db"))  # no create_tables
    await play(store, "hello")
    assert (await store.retrieve("rest:ada")).latest_message.text == "hello"
    assert "TurnLog.after_save failed" in caplog.text
