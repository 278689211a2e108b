"""A stored conversation as the review page shows it: what the bot saw and why it acted.

Built from the tracker store's events as stored (masked where masking is on), never
from the live processor: review shows the record. Each customer message comes with its
parse (intent ranking, entities, knowledge-base candidates with their scores), each bot
action with the policy and confidence that chose it; agent replies (a `bot` event whose
metadata names a console operator), operator actions and customer ratings are marked.
Turns are numbered by their position in the event list, which only grows, so a form
can name a turn and the server reads its text back from the store.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, SlotSet, UserUttered

from lepton_components import open_set
from lepton_components.channels.intent_commands import is_intent_command
from lepton_components.operators.analytics.turn_log import ANSWER_CANDIDATES

OPERATOR_KEY = "lepton_operator"
AUDIT_SLOT = "operator_audit"
FEEDBACK_SLOT = "customer_feedback"
# Events shown at most; older ones are summarised by a count.
MAX_EVENTS = 2000
RANKING_SHOWN = 5


@dataclass(frozen=True)
class Item:
    """One line of the review transcript; `kind` picks how the page shows it."""

    kind: Text  # user | action | bot | agent | audit | feedback | session
    index: int
    at: float
    text: Text = ""
    detail: Dict[Text, Any] = field(default_factory=dict)


def operator_of(event: Event) -> Optional[Dict[Text, Any]]:
    """The console operator's record in an event's metadata, if an operator made it."""
    metadata = getattr(event, "metadata", None)
    record = metadata.get(OPERATOR_KEY) if isinstance(metadata, dict) else None
    return record if isinstance(record, dict) else None


def _score(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _ranking(entries: Any) -> List[Tuple[Text, Optional[float]]]:
    """The first `RANKING_SHOWN` (intent, confidence) pairs of a stored ranking."""
    entries = entries if isinstance(entries, list) else []
    return [
        (str(entry.get("name")), _score(entry.get("confidence")))
        for entry in entries[:RANKING_SHOWN]
        if isinstance(entry, dict)
    ]


def _user_item(index: int, event: UserUttered) -> Item:
    parse = event.parse_data or {}
    intent = parse.get("intent") or {}
    entities = [
        (str(entity.get("entity")), str(entity.get("value")))
        for entity in (parse.get("entities") or [])
        if isinstance(entity, dict)
    ]
    candidates = [
        (str(candidate.get("id")), _score(candidate.get("score")), str(candidate.get("question", "")))
        for candidate in (parse.get(ANSWER_CANDIDATES) or [])
        if isinstance(candidate, dict)
    ]
    text = event.text or ""
    return Item(
        "user",
        index,
        event.timestamp,
        text,
        {
            "intent": intent.get("name"),
            "confidence": _score(intent.get("confidence")),
            "ranking": _ranking(parse.get("intent_ranking")),
            # Rejected as unlike everything trained ("none of these"): what the classifier
            # would have said, so the reviewer sees whether it was in scope after all.
            "open_set_score": _score(parse.get(open_set.OPEN_SET_SCORE)),
            "rejected_ranking": _ranking(parse.get(open_set.OPEN_SET_REJECTED_RANKING)),
            "entities": entities,
            "candidates": candidates,
            "channel": event.input_channel,
            # A button's payload (`/order_status`) is no example of how customers ask.
            "annotatable": bool(text.strip()) and not is_intent_command(text),
        },
    )


def _item(index: int, event: Event) -> Optional[Item]:
    if isinstance(event, UserUttered):
        return _user_item(index, event)
    if isinstance(event, ActionExecuted) and event.action_name != ACTION_LISTEN_NAME:
        detail = {"policy": event.policy, "confidence": _score(event.confidence)}
        return Item("action", index, event.timestamp, event.action_name or "", detail)
    if isinstance(event, BotUttered):
        operator = operator_of(event)
        if operator is not None:
            return Item("agent", index, event.timestamp, event.text or "", {"username": operator.get("username")})
        return Item("bot", index, event.timestamp, event.text or "", {"buttons": len((event.data or {}).get("buttons") or [])})
    if isinstance(event, SlotSet) and event.key == FEEDBACK_SLOT and isinstance(event.value, dict):
        return Item("feedback", index, event.timestamp, str(event.value.get("rating", "")))
    if isinstance(event, SlotSet) and event.key == AUDIT_SLOT:
        operator = operator_of(event) or {}
        value = event.value if isinstance(event.value, dict) else {}
        detail = {"username": operator.get("username"), "action": operator.get("action"), "value": value}
        return Item("audit", index, event.timestamp, str(operator.get("action", "")), detail)
    if isinstance(event, SessionStarted):
        return Item("session", index, event.timestamp)
    return None


def review_items(events: Sequence[Event], limit: int = MAX_EVENTS) -> Tuple[List[Item], int]:
    """The shown items of the last `limit` events, and how many earlier events were left out."""
    skipped = max(0, len(events) - limit)
    items = [_item(index, events[index]) for index in range(skipped, len(events))]
    return [item for item in items if item is not None], skipped


def user_text_at(events: Sequence[Event], index: int) -> Optional[Text]:
    """The text of the customer message at `index`, if that event is an annotatable one."""
    if not 0 <= index < len(events) or not isinstance(events[index], UserUttered):
        return None
    item = _user_item(index, events[index])
    return item.text if item.detail["annotatable"] else None
