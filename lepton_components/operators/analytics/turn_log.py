"""The turn log: one SQL row per customer message, what review and analytics read.

Written by the `after_save` turn hook (`TurnLog`), so a row describes the turn as it was
stored, from the same events Lepton's metrics count (`monitoring/turns.py`): intent and
confidence, the best knowledge-base candidate, the bot's actions and the policy that
chose the first, and flags for what went wrong. Reading the trackers themselves for a
30-day chart would mean loading every conversation; these rows are small and indexed.

Privacy: `text` is exactly what the tracker store kept. Behind Lepton's
`MaskingTrackerStore` that is the masked text, computed by the store's own masker on
the same tracker (`MaskingTrackerStore.masked`), so the log never holds more than the
conversation record does. Nothing else of the message (entities, metadata) is copied.

Flags (a person-held turn has none of the bot's failure flags: the bot did not answer):

* `fallback`: intent `nlu_fallback` or `action_default_fallback` ran, and the knowledge
  base did not answer after all (an FAQ answer to an `nlu_fallback` message is a success);
* `rephrase`: FaqAnswerPolicy's rephrase action ran (the bot asked to rephrase);
* `low_confidence`: intent confidence below `review.low_confidence`;
* `choices`: the bot offered knowledge-base suggestions instead of answering;
* `handoff`: the handoff action ran;
* `faq_answered`: answered from the knowledge base; `kb_missed`: FaqAnswerPolicy found
  no good enough answer (it asked to rephrase or handed off);
* `human`: the message was only logged, no bot action ran (a person has the
  conversation: the handoff part logs such messages with `processor.log_message`, and
  Rasa does the same for a paused conversation);
* `feedback`: the customer's thumbs (`up`/`down`) on the answer, set later by the web
  chat (`record_feedback`); `negative_feedback` in review means `feedback = 'down'`.
"""

import asyncio
import datetime
import json
import logging
import weakref
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Text

import sqlalchemy as sa
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.monitoring.processor_hooks import _faq_policy_config, vocabulary_for
from lepton_components.monitoring.turns import ANSWERED, MISSED, SUGGESTED, TurnVocabulary, summarise_turn
from lepton_components.operators.database import _INNER_ATTRIBUTES, metadata, sql_engine_of

logger = logging.getLogger(__name__)

ANSWER_CANDIDATES = "answer_candidates"  # FaqRetriever's key in the parse data
UP, DOWN = "up", "down"
RATINGS = (UP, DOWN)
NAME_LENGTH = 255

turns = sa.Table(
    "lepton_turns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(NAME_LENGTH), nullable=False),
    # The channel's id of the customer message (the web chat's UUID), for feedback.
    sa.Column("message_id", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("channel", sa.String(64), nullable=True),
    # Unix time of the customer message, and its UTC date (the analytics' day).
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("intent", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("kb_answer", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("kb_score", sa.Float, nullable=True),
    # JSON list of the bot's action names in order (action_listen left out).
    sa.Column("actions", sa.Text, nullable=False, default="[]"),
    sa.Column("policy", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("fallback", sa.Boolean, nullable=False, default=False),
    sa.Column("rephrase", sa.Boolean, nullable=False, default=False),
    sa.Column("low_confidence", sa.Boolean, nullable=False, default=False),
    sa.Column("choices", sa.Boolean, nullable=False, default=False),
    sa.Column("handoff", sa.Boolean, nullable=False, default=False),
    sa.Column("faq_answered", sa.Boolean, nullable=False, default=False),
    sa.Column("kb_missed", sa.Boolean, nullable=False, default=False),
    sa.Column("human", sa.Boolean, nullable=False, default=False),
    sa.Column("feedback", sa.String(8), nullable=True),
    sa.Column("feedback_at", sa.Float, nullable=True),
    sa.Index("ix_lepton_turns_day", "day"),
    sa.Index("ix_lepton_turns_conversation_id", "conversation_id"),
    sa.Index("ix_lepton_turns_at", "at"),
)


@dataclass(frozen=True)
class TurnNames:
    """What gives a turn's action names their meaning in the loaded model."""

    vocabulary: TurnVocabulary
    rephrase_actions: FrozenSet[Text] = frozenset()


def names_for(processor: Any) -> TurnNames:
    """The metrics' vocabulary, plus FaqAnswerPolicy's rephrase action if the model has one."""
    faq = _faq_policy_config(getattr(processor, "graph_runner", None))
    rephrase = frozenset({faq["rephrase_action"]}) if faq else frozenset()
    return TurnNames(vocabulary_for(processor), rephrase)


def utc_day(at: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(at, tz=datetime.timezone.utc).date()


def _name(value: Any) -> Optional[Text]:
    return str(value)[:NAME_LENGTH] if value is not None else None


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def turn_row(
    conversation_id: Text,
    events: Sequence[Event],
    names: TurnNames,
    low_confidence: float,
    text: Optional[Text] = None,
) -> Optional[Dict[Text, Any]]:
    """The `lepton_turns` row of a turn (its events from the `UserUttered` on), or None.

    `text` is the message text as stored, when it differs from the event's (masking).
    """
    user = next((event for event in events if isinstance(event, UserUttered)), None)
    if user is None:
        return None
    summary = summarise_turn(events, names.vocabulary)
    executed = [event for event in events if isinstance(event, ActionExecuted)]
    actions = [event for event in executed if event.action_name != ACTION_LISTEN_NAME]
    parse_data = user.parse_data or {}
    intent = parse_data.get("intent") or {}
    confidence = _number(intent.get("confidence"))
    candidates = parse_data.get(ANSWER_CANDIDATES) or []
    top = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    human = not executed
    bot = not human
    message_id = user.message_id if user.message_id and len(user.message_id) <= NAME_LENGTH else None
    return {
        "conversation_id": conversation_id,
        "message_id": message_id,
        "channel": _name(user.input_channel),
        "at": float(user.timestamp),
        "day": utc_day(user.timestamp),
        "text": user.text if text is None else text,
        "intent": _name(intent.get("name")),
        "confidence": confidence,
        "kb_answer": _name(top.get("id")),
        "kb_score": _number(top.get("score")),
        "actions": json.dumps([event.action_name for event in actions]),
        "policy": _name(actions[0].policy) if actions else None,
        "fallback": bot and bool(summary.fallbacks) and summary.faq_outcome != ANSWERED,
        "rephrase": bot and any(event.action_name in names.rephrase_actions for event in actions),
        "low_confidence": bot and confidence is not None and confidence < low_confidence,
        "choices": bot and summary.faq_outcome == SUGGESTED,
        "handoff": bot and summary.handoff is not None,
        "faq_answered": bot and summary.faq_outcome == ANSWERED,
        "kb_missed": bot and summary.faq_outcome == MISSED,
        "human": human,
    }


def _masking_store(tracker_store: Any) -> Optional[Any]:
    """Lepton's MaskingTrackerStore, if it is `tracker_store` or inside it."""
    try:
        from lepton_components.privacy.masking_tracker_store import MaskingTrackerStore
    except ImportError:  # its optional package is missing, so no such store can exist
        return None
    store, seen = tracker_store, set()
    while store is not None and id(store) not in seen:
        if isinstance(store, MaskingTrackerStore):
            return store
        seen.add(id(store))
        store = next((getattr(store, name) for name in _INNER_ATTRIBUTES if getattr(store, name, None) is not None), None)
    return None


def stored_text(tracker_store: Any, tracker: DialogueStateTracker) -> Optional[Text]:
    """The latest message's text as `tracker_store` stores it (masked behind a masking store)."""
    masking = _masking_store(tracker_store)
    if masking is None:
        return None
    latest = masking.masked(tracker).latest_message
    return latest.text if latest is not None else None


def count_of(condition: Any) -> Any:
    """SQL: how many rows of a group meet `condition` (portable: no FILTER clause)."""
    return sa.func.sum(sa.case((condition, 1), else_=0))


def insert_turn(engine: sa.engine.Engine, row: Dict[Text, Any]) -> None:
    with engine.begin() as connection:
        connection.execute(turns.insert().values(**row))


def mark_feedback(engine: sa.engine.Engine, conversation_id: Text, message_id: Text, rating: Text, at: float) -> int:
    """Records the customer's rating on the turn of `message_id`; the number of rows marked."""
    if rating not in RATINGS:
        raise ValueError(f"rating must be one of {RATINGS}, got {rating!r}")
    query = (
        turns.update()
        .where(turns.c.conversation_id == conversation_id, turns.c.message_id == message_id)
        .values(feedback=rating, feedback_at=at)
    )
    with engine.begin() as connection:
        return connection.execute(query).rowcount


class TurnLog:
    """Turn hooks that write one `lepton_turns` row per customer message once it is stored."""

    def __init__(self, low_confidence: float) -> None:
        self.low_confidence = low_confidence
        # Per processor (a new one per loaded model): reading the graph once is enough.
        self._names: "weakref.WeakKeyDictionary[Any, TurnNames]" = weakref.WeakKeyDictionary()

    def _names_of(self, processor: Any) -> TurnNames:
        names = self._names.get(processor)
        if names is None:
            names = self._names[processor] = names_for(processor)
        return names

    async def before_turn(self, processor: Any, message: UserMessage) -> bool:
        return False

    async def before_save(
        self, processor: Any, message: UserMessage, tracker: DialogueStateTracker, events: List[Event]
    ) -> None:
        return None

    async def after_save(
        self, processor: Any, message: UserMessage, tracker: DialogueStateTracker, events: List[Event]
    ) -> None:
        """Logs the stored turn; a failure is logged by the hook runner, never the customer's."""
        text = stored_text(processor.tracker_store, tracker)
        row = turn_row(tracker.sender_id, events, self._names_of(processor), self.low_confidence, text)
        if row is None:
            return
        await asyncio.to_thread(insert_turn, sql_engine_of(processor.tracker_store), row)
