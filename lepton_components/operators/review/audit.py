"""The audit trail of review: each annotation is recorded in the conversation it came from.

As for every console action (docs/operators.md), the record is an `operator_audit` slot
event whose metadata holds `{"lepton_operator": {"username", "action", "at"}}`, written
under the conversation's lock and saved through the tracker store, so it travels with
the conversation (exports, the event broker) and is masked like everything else there.
"""

import time
from typing import Any, Dict, Optional, Text

from rasa.shared.core.events import SlotSet

from lepton_components.operators.review.conversation import AUDIT_SLOT, OPERATOR_KEY


def audit_event(username: Text, action: Text, details: Dict[Text, Any], now: Optional[float] = None) -> SlotSet:
    at = now or time.time()
    return SlotSet(
        AUDIT_SLOT,
        {"action": action, **details},
        metadata={OPERATOR_KEY: {"username": username, "action": action, "at": at}},
    )


async def record_action(agent: Any, conversation_id: Text, username: Text, action: Text, details: Dict[Text, Any]) -> None:
    """Appends the audit record to the conversation, under its lock."""
    async with agent.lock_store.lock(conversation_id):
        tracker = await agent.tracker_store.retrieve(conversation_id)
        if tracker is None:
            raise LookupError(f"The conversation {conversation_id!r} is no longer in the tracker store.")
        tracker.update(audit_event(username, action, details))
        await agent.tracker_store.save(tracker)
