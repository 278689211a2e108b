"""Count conversation outcomes from the events Rasa's message processor saves.

Why here: `MessageProcessor.handle_message` is the one path every channel's message
takes (`Agent.handle_message`, under the conversation lock), and it ends with
`save_tracker(tracker)` once the turn is complete. Wrapping those two methods on the
processor *instance* (not the class, so other agents in the process are untouched)
gives the exact events of the turn without a second database read: the events from
the tracker's `latest_message` (this turn's `UserUttered`) to the end.
`turns.summarise_turn` reads intent, fallbacks, FAQ outcome and handoff off them.

Counted: each message that reaches the processor (`lepton_messages_total`, before it is
processed, so failures count too), then each turn whose tracker was saved (so the
figures match the conversation records). Not counted: `trigger_intent`, reminders and
HTTP API calls that execute actions, which are not customer messages.

`PUT /model` builds a new processor; `instrument_processor` is idempotent and cheap,
so the app middleware calls it for the current agent on every request.
"""

import logging
import os
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.monitoring.graph_timing import graph_nodes, time_graph_nodes
from lepton_components.monitoring.metrics import LeptonMetrics
from lepton_components.monitoring.turns import TurnVocabulary, summarise_turn

logger = logging.getLogger(__name__)

HANDOFF_INTENTS_ENV = "LEPTON_METRICS_HANDOFF_INTENTS"
HANDOFF_ACTIONS_ENV = "LEPTON_METRICS_HANDOFF_ACTIONS"
OTHER_CHANNEL = "other"
_STATE = "_lepton_monitoring"


@dataclass
class _Instrumentation:
    metrics: LeptonMetrics
    vocabulary: TurnVocabulary
    channels: FrozenSet[Text]


@dataclass
class _Turn:
    counted: bool = False


# Set for the duration of one `handle_message`, so only that call's save is counted.
_current_turn: ContextVar[Optional[_Turn]] = ContextVar("lepton_monitoring_turn", default=None)


def _names_from_env(variable: Text) -> FrozenSet[Text]:
    return frozenset(name.strip() for name in os.environ.get(variable, "").split(",") if name.strip())


def _faq_policy_config(graph_runner: Any) -> Optional[Dict[Text, Any]]:
    """The loaded FaqAnswerPolicy's config (defaults merged by Rasa), if the model has one."""
    from lepton_components.policies.faq_answer_policy import FaqAnswerPolicy

    for node in graph_nodes(graph_runner).values():
        if isinstance(node._component_class, type) and issubclass(node._component_class, FaqAnswerPolicy):
            return {"policy": node._component_class.__name__, **node._component_config}
    return None


def vocabulary_for(processor: Any) -> TurnVocabulary:
    """Intents from the model's domain, FAQ and handoff actions from its FaqAnswerPolicy and env."""
    domain = getattr(processor, "domain", None)
    intents = frozenset(domain.intents) if domain is not None else frozenset()
    faq = _faq_policy_config(getattr(processor, "graph_runner", None))
    defaults = TurnVocabulary(intents)
    handoff_actions = _names_from_env(HANDOFF_ACTIONS_ENV) or (
        frozenset({faq["handoff_action"]}) if faq else defaults.handoff_actions
    )
    handoff_intents = _names_from_env(HANDOFF_INTENTS_ENV) or defaults.handoff_intents
    if faq is None:
        return TurnVocabulary(intents, handoff_intents, handoff_actions)
    return TurnVocabulary(
        intents,
        handoff_intents,
        handoff_actions,
        faq_policy=faq["policy"],
        faq_answer_actions=frozenset({faq["answer_action"]}),
        faq_suggest_actions=frozenset(faq["suggest_actions"].values()),
        faq_miss_actions=frozenset({faq["rephrase_action"], faq["handoff_action"]}),
    )


def turn_events(tracker: DialogueStateTracker) -> List[Event]:
    """The events from this turn's `UserUttered` (the tracker's `latest_message`) on."""
    latest = tracker.latest_message
    collected: List[Event] = []
    for event in reversed(tracker.events):
        collected.append(event)
        if event is latest:
            return collected[::-1]
    return []


def _wrap_handle_message(processor: Any, original: Callable) -> Callable:
    async def handle_message(message: UserMessage) -> Any:
        state: _Instrumentation = getattr(processor, _STATE)
        channel = message.input_channel if message.input_channel in state.channels else OTHER_CHANNEL
        state.metrics.messages.labels(channel).inc()
        token = _current_turn.set(_Turn())
        try:
            return await original(message)
        finally:
            _current_turn.reset(token)

    return handle_message


def _wrap_save_tracker(processor: Any, original: Callable) -> Callable:
    async def save_tracker(tracker: DialogueStateTracker) -> None:
        await original(tracker)
        turn = _current_turn.get()
        if turn is None or turn.counted:
            return
        turn.counted = True
        state: _Instrumentation = getattr(processor, _STATE)
        try:
            summary = summarise_turn(turn_events(tracker), state.vocabulary)
            if summary is not None:
                state.metrics.observe_turn(summary)
        except Exception:  # a metric must never fail a customer's message
            logger.exception("Could not count the outcome of a conversation turn.")

    return save_tracker


def instrument_processor(processor: Any, metrics: LeptonMetrics, channels: FrozenSet[Text]) -> bool:
    """Count `processor`'s turns and time its graph in `metrics`; False when already done."""
    state: Optional[_Instrumentation] = getattr(processor, _STATE, None)
    if state is not None and state.metrics is metrics and state.channels == channels:
        return False
    time_graph_nodes(getattr(processor, "graph_runner", None), metrics)
    vocabulary = state.vocabulary if state is not None else vocabulary_for(processor)
    setattr(processor, _STATE, _Instrumentation(metrics, vocabulary, channels))
    if state is None:
        processor.handle_message = _wrap_handle_message(processor, processor.handle_message)
        processor.save_tracker = _wrap_save_tracker(processor, processor.save_tracker)
    return True
