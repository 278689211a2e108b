"""A real Rasa graph and a message processor stand-in, for monitoring tests without a model.

`keyword_graph_runner` builds a `DaskGraphRunner` (Rasa's own runner, nodes and hooks)
over two tiny components; `TurnProcessor` keeps conversations in a real tracker store and
appends the events Rasa's `MessageProcessor` would for scripted turns, then calls its own
`save_tracker` exactly once per message, as `MessageProcessor.handle_message` does.
"""

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa.core.channels.channel import UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.engine.graph import ExecutionContext, GraphComponent, GraphSchema, SchemaNode
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.policies.faq_answer_policy import FaqAnswerPolicy

CLASSIFIER_NODE = "run_KeywordClassifier0"
PAUSE_NODE = "run_Pause1"
FAQ_POLICY = "policy_0_FaqAnswerPolicy"
INTENTS = ["greet", "human_handoff", "out_of_scope", "order_status"]


class _Configured(GraphComponent):
    """A component built from its config alone."""

    @classmethod
    def create(
        cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        return cls(config)  # type: ignore[call-arg]


class KeywordClassifier(_Configured):
    """Intent = the first configured keyword found in the text, else `nlu_fallback`."""

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.keywords: Dict[Text, Text] = config.get("keywords", {})

    def classify(self, text: Text) -> Text:
        return next((intent for word, intent in self.keywords.items() if word in text.lower()), "nlu_fallback")


class Pause(_Configured):
    """Takes `seconds` per run, so its timing can be checked against a known floor."""

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.seconds = float(config.get("seconds", 0.0))

    def wait(self, intent: Text) -> Text:
        time.sleep(self.seconds)
        return intent


def keyword_graph_runner(storage: Path, keywords: Dict[Text, Text], pause_s: float = 0.02) -> DaskGraphRunner:
    """Classifier -> pause, plus a (never run) FaqAnswerPolicy node as a trained model has."""
    schema = GraphSchema(
        {
            "text": SchemaNode({}, KeywordClassifier, "create", "classify", {}, is_input=True),
            CLASSIFIER_NODE: SchemaNode({"text": "text"}, KeywordClassifier, "create", "classify", {"keywords": keywords}),
            PAUSE_NODE: SchemaNode({"intent": CLASSIFIER_NODE}, Pause, "create", "wait", {"seconds": pause_s}),
            FAQ_POLICY: SchemaNode({}, FaqAnswerPolicy, "create", "predict_action_probabilities", {}),
        }
    )
    return DaskGraphRunner(schema, LocalModelStorage(storage), ExecutionContext(schema))


def parse(graph_runner: DaskGraphRunner, text: Text) -> Text:
    return graph_runner.run(inputs={"text": text}, targets=[PAUSE_NODE])[PAUSE_NODE]


# What the dialogue "predicts" per intent: (action, policy) pairs, then `action_listen`.
ACTIONS: Dict[Text, List[Tuple[Text, Text]]] = {
    "greet": [("utter_greet", "policy_2_RulePolicy")],
    "human_handoff": [("utter_handoff", "policy_2_RulePolicy")],
    "nlu_fallback": [("utter_faq_answer", FAQ_POLICY)],
    "out_of_scope": [("action_default_fallback", "policy_2_RulePolicy")],
}


class TurnProcessor:
    """`MessageProcessor`'s message path in miniature: parse with the graph, act, save once."""

    def __init__(self, graph_runner: DaskGraphRunner) -> None:
        self.graph_runner = graph_runner
        self.domain = Domain.from_dict({"intents": INTENTS})
        self.tracker_store = InMemoryTrackerStore(self.domain)
        self.saved: List[DialogueStateTracker] = []

    async def handle_message(self, message: UserMessage) -> Optional[List[Dict[Text, Any]]]:
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        intent = parse(self.graph_runner, message.text)
        tracker.update(UserUttered(message.text, {"name": intent, "confidence": 0.9}, input_channel=message.input_channel))
        for action, policy in ACTIONS.get(intent, []):
            tracker.update(ActionExecuted(action, policy=policy, confidence=1.0))
            tracker.update(BotUttered(f"[{action}]"))
            await message.output_channel.send_text_message(message.sender_id, f"[{action}]")
        tracker.update(ActionExecuted(ACTION_LISTEN_NAME))
        await self.save_tracker(tracker)
        return None

    async def save_tracker(self, tracker: DialogueStateTracker) -> None:
        self.saved.append(tracker)
        await self.tracker_store.save(tracker)


class TurnAgent:
    """Enough of `Agent` for the channel and the monitoring middleware."""

    def __init__(self, processor: TurnProcessor) -> None:
        self.processor = processor
        self.tracker_store = processor.tracker_store

    def is_ready(self) -> bool:
        return True

    async def handle_message(self, message: UserMessage) -> Any:
        return await self.processor.handle_message(message)
