"""A bot for the review and analytics tests: real Rasa events, a real FaqRetriever, no model.

`WordEncoder` stands in for the sentence encoder: deterministic bag-of-words vectors,
so texts that share words are close and others are not. `faq_retriever` builds Lepton's
FaqRetriever on a knowledge-base file with that encoder, so its index, search and live
reload are the production code. `ReviewBot` is `MessageProcessor`'s message path in
miniature: it parses (a keyword intent plus the retriever's candidates), lets a
FaqAnswerPolicy-like rule answer from the knowledge base or ask to rephrase, records
the events Rasa records and saves once. `serve_review_console` serves the operator
console on it, with the conversations in a SQLite file.
"""

import re
import zlib
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Text

import numpy as np
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.training_data import TrainingData

from lepton_components.operators.console import OperatorConsoleInput
from lepton_components.policies.faq_answer_policy import FaqAnswerPolicy
from lepton_components.retrieval.faq_retriever import FaqRetriever
from tests.channels.webhook_harness import serve_channel
from tests.operators.access_harness import (
    ADMIN_PASSWORD,
    PREFIX,
    ConsoleBrowser,
    csrf_token_in,
    database_file,
    ignore,
    settings,
)

INTENTS = ["greet", "order_status", "human_handoff", "out_of_scope"]
FAQ_POLICY = "policy_0_FaqAnswerPolicy"
RULES = "policy_2_RulePolicy"
KB = """\
version: "1"
answers:
  # Payments
  - id: gift_cards
    questions:
      - Do you sell gift cards?
    answer: "Yes, digital gift cards from $10 to $500."
    tags: [payments]

  - id: store_pickup
    questions: [Can I collect my order in a store?]
    answer: "Yes, choose click and collect at checkout."
"""


class WordEncoder:
    """Unit vectors of hashed lower-case words: the encode API of `SentenceEncoder`, in microseconds."""

    dimension = 512

    def encode(self, texts: Sequence[Text]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dimension] += 1.0
            norm = np.linalg.norm(vectors[row])
            if norm:
                vectors[row] /= norm
        return vectors


def faq_retriever(create_component: Any, kb_path: Path) -> FaqRetriever:
    """Lepton's FaqRetriever over `kb_path`, indexed with the `WordEncoder`."""
    if not kb_path.exists():
        kb_path.write_text(KB, encoding="utf-8")
    retriever = create_component(FaqRetriever, {"knowledge_base": str(kb_path)})
    retriever._encoder = WordEncoder()
    retriever.train(TrainingData())
    return retriever


def graph_runner(retriever: Optional[FaqRetriever]) -> SimpleNamespace:
    """What the console and the metrics read of Rasa's DaskGraphRunner: its instantiated nodes
    (component, class, config and hooks, as on `rasa.engine.graph.GraphNode`)."""
    nodes = {
        FAQ_POLICY: SimpleNamespace(
            _component=None, _component_class=FaqAnswerPolicy, _component_config=FaqAnswerPolicy.get_default_config(),
            _hooks=[],
        )
    }
    if retriever is not None:
        nodes["run_FaqRetriever"] = SimpleNamespace(
            _component=retriever, _component_class=FaqRetriever, _component_config=retriever.component_config,
            _hooks=[],
        )
    return SimpleNamespace(_instantiated_nodes=nodes)


class ReviewBot:
    """The processor: greets, answers a close knowledge-base match, else asks to rephrase."""

    def __init__(self, tracker_store: TrackerStore, retriever: Optional[FaqRetriever]) -> None:
        self.tracker_store = tracker_store
        self.retriever = retriever
        self.domain = Domain.from_dict({"intents": INTENTS})
        self.graph_runner = graph_runner(retriever)

    def parse(self, text: Text) -> Dict[Text, Any]:
        intent = {"name": "greet", "confidence": 0.97} if "hello" in text.lower() else {"name": "nlu_fallback", "confidence": 0.3}
        candidates = self.retriever.search([text])[0] if self.retriever is not None else []
        ranking = [intent, {"name": "order_status", "confidence": 0.2}]
        if "weather" in text.lower():
            # As JointNluComponent writes a message unlike everything trained.
            rejected = {"name": "out_of_scope", "confidence": 1.0}
            return {
                "text": text,
                "intent": rejected,
                "intent_ranking": [rejected],
                "open_set_score": 0.31,
                "open_set_rejected_ranking": [{"name": "shipping_info", "confidence": 0.91}, *ranking],
                "entities": [],
                "answer_candidates": [],
            }
        return {"text": text, "intent": intent, "intent_ranking": ranking, "entities": [], "answer_candidates": candidates}

    async def handle_message(self, message: UserMessage) -> None:
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        parse = self.parse(message.text)
        tracker.update(
            UserUttered(message.text, parse["intent"], [], parse, input_channel=message.input_channel,
                        message_id=message.message_id)
        )
        candidates = parse["answer_candidates"]
        if parse["intent"]["name"] == "greet":
            action, policy, reply = "utter_greet", RULES, "Hi! How can I help?"
        elif candidates and candidates[0]["score"] >= 0.9:
            action, policy, reply = "utter_faq_answer", FAQ_POLICY, candidates[0]["answer"]
        else:
            action, policy, reply = "utter_please_rephrase", FAQ_POLICY, "Sorry, could you rephrase that?"
        tracker.update(ActionExecuted(action, policy=policy, confidence=1.0))
        tracker.update(BotUttered(reply))
        await message.output_channel.send_text_message(message.sender_id, reply)
        tracker.update(ActionExecuted(ACTION_LISTEN_NAME, policy=policy, confidence=1.0))
        await self.save_tracker(tracker)

    async def save_tracker(self, tracker: DialogueStateTracker) -> None:
        await self.tracker_store.save(tracker)


class ReviewAgent:
    """What the console uses of Rasa's Agent."""

    def __init__(self, tracker_store: TrackerStore, retriever: Optional[FaqRetriever]) -> None:
        self.tracker_store = tracker_store
        self.lock_store = InMemoryLockStore()
        self.processor = ReviewBot(tracker_store, retriever)

    @property
    def domain(self) -> Domain:
        return self.processor.domain

    def is_ready(self) -> bool:
        return True

    async def say(self, sender_id: Text, text: Text, channel: Text = "rest") -> List[Text]:
        """A customer message, as `Agent.handle_message` runs it; the bot's reply texts."""
        output = CollectingOutputChannel()
        async with self.lock_store.lock(sender_id):
            await self.processor.handle_message(UserMessage(text, output, sender_id, input_channel=channel))
        return [message["text"] for message in output.messages]


class ReviewConsole:
    def __init__(self, server: Text, agent: ReviewAgent, channel: OperatorConsoleInput) -> None:
        self.server, self.agent, self.channel = server, agent, channel

    async def admin(self) -> "Operator":
        """A browser logged in as the first admin, with the CSRF token of its session."""
        browser = ConsoleBrowser(self.server)
        reply = await browser.login("admin", ADMIN_PASSWORD)
        assert reply.status == 303, reply.text
        return Operator(browser)


class Operator:
    """A logged-in browser plus the session's CSRF token, read from a console page."""

    def __init__(self, browser: ConsoleBrowser) -> None:
        self.browser = browser
        self.csrf: Optional[Text] = None

    async def get(self, path: Text, html: bool = True) -> Any:
        reply = await self.browser.get(path, html=html)
        if html and reply.status == 200 and self.csrf is None:
            self.csrf = csrf_token_in(reply.text)
        return reply

    async def post(self, path: Text, form: Dict[Text, Text]) -> Any:
        if self.csrf is None:
            await self.get("/review")
        return await self.browser.post(path, {"csrf_token": self.csrf or "", **form})


@asynccontextmanager
async def serve_review_console(
    tmp_path: Path, retriever: Optional[FaqRetriever] = None, **review: Any
) -> AsyncIterator[ReviewConsole]:
    """The console on a ReviewBot whose conversations are in `tmp_path`; hooks installed."""
    store = SQLTrackerStore(dialect="sqlite", db=str(database_file(tmp_path)))
    agent = ReviewAgent(store, retriever)
    review.setdefault("nlu_file", str(tmp_path / "data" / "reviewed" / "nlu.yml"))
    channel = OperatorConsoleInput(settings(review=review))
    async with serve_channel(channel, ignore, agent=agent) as url:
        await channel.console.state()  # tables made, turn hooks on the processor
        yield ReviewConsole(url.split(PREFIX)[0], agent, channel)
