"""Turn counting on a processor: once per customer message, from the saved events."""

from pathlib import Path

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from lepton_components.monitoring.metrics import LeptonMetrics
from lepton_components.monitoring.processor_hooks import instrument_processor, turn_events, vocabulary_for
from tests.monitoring.graph_bot import TurnProcessor, keyword_graph_runner
from tests.monitoring.scrape import sample

KEYWORDS = {"hello": "greet", "human": "human_handoff"}
CHANNELS = frozenset({"rest"})


def _message(text: str) -> UserMessage:
    return UserMessage(text, CollectingOutputChannel(), "customer-1", input_channel="rest")


@pytest.fixture
def processor(tmp_path: Path) -> TurnProcessor:
    return TurnProcessor(keyword_graph_runner(tmp_path, KEYWORDS, pause_s=0.0))


@pytest.mark.asyncio
async def test_only_saves_that_end_a_message_are_counted(processor: TurnProcessor) -> None:
    metrics = LeptonMetrics()
    assert instrument_processor(processor, metrics, CHANNELS) is True
    assert instrument_processor(processor, metrics, CHANNELS) is False
    await processor.handle_message(_message("hello"))
    await processor.handle_message(_message("a human please"))
    # What a reminder or `POST /conversations/<id>/execute` does: a save outside a message.
    await processor.save_tracker(processor.saved[-1])
    text = metrics.render().decode()
    assert sample(text, "lepton_messages_total", channel="rest") == 2
    assert sample(text, "lepton_intents_total", intent="greet") == 1
    assert sample(text, "lepton_intents_total", intent="human_handoff") == 1
    assert sample(text, "lepton_handoffs_total", trigger="intent") == 1


class SavingTwiceProcessor(TurnProcessor):
    """Saves the conversation again after the turn, as a custom processor might."""

    async def handle_message(self, message: UserMessage) -> None:
        await super().handle_message(message)
        await self.save_tracker(self.saved[-1])


@pytest.mark.asyncio
async def test_a_turn_saved_twice_is_counted_once(tmp_path: Path) -> None:
    processor = SavingTwiceProcessor(keyword_graph_runner(tmp_path, KEYWORDS, pause_s=0.0))
    metrics = LeptonMetrics()
    instrument_processor(processor, metrics, CHANNELS)
    await processor.handle_message(_message("hello"))
    assert len(processor.saved) == 2
    assert sample(metrics.render().decode(), "lepton_intents_total", intent="greet") == 1


@pytest.mark.asyncio
async def test_a_processor_taken_over_by_another_app_reports_there(processor: TurnProcessor) -> None:
    first, second = LeptonMetrics(), LeptonMetrics()
    instrument_processor(processor, first, CHANNELS)
    assert instrument_processor(processor, second, CHANNELS) is True
    await processor.handle_message(_message("hello"))
    assert sample(first.render().decode(), "lepton_intents_total", intent="greet") == 0
    assert sample(second.render().decode(), "lepton_intents_total", intent="greet") == 1


@pytest.mark.asyncio
async def test_turn_events_are_this_turns_events_in_order(processor: TurnProcessor) -> None:
    await processor.handle_message(_message("hello"))
    await processor.handle_message(_message("a human please"))
    events = turn_events(processor.saved[-1])
    assert [type(event).__name__ for event in events] == ["UserUttered", "ActionExecuted", "BotUttered", "ActionExecuted"]
    assert events[0].text == "a human please" and events[1].action_name == "utter_handoff"


def test_vocabulary_comes_from_the_domain_and_the_loaded_faq_policy(
    processor: TurnProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEPTON_METRICS_HANDOFF_ACTIONS", raising=False)
    vocabulary = vocabulary_for(processor)
    assert {"greet", "human_handoff", "nlu_fallback"} <= vocabulary.intents
    assert vocabulary.faq_policy == "FaqAnswerPolicy"
    assert vocabulary.faq_answer_actions == {"utter_faq_answer"}
    assert vocabulary.faq_suggest_actions == {"utter_faq_suggest_2", "utter_faq_suggest_3"}
    assert vocabulary.faq_miss_actions == {"utter_please_rephrase", "utter_handoff"}
    assert vocabulary.handoff_actions == {"utter_handoff"}
    monkeypatch.setenv("LEPTON_METRICS_HANDOFF_ACTIONS", "action_transfer_to_agent, utter_handoff")
    assert vocabulary_for(processor).handoff_actions == {"action_transfer_to_agent", "utter_handoff"}
