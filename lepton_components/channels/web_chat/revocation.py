"""Ending a web chat session at once, on every replica: a record in the conversation itself.

Tokens are checked without storage (`sessions.py`), so ending a session before its
tokens expire needs a record that every replica reads. It is kept in the tracker: a
`pause` event (`ConversationPaused`) whose metadata holds `lepton_web_chat_revoked`.

Why the tracker rather than a table or Redis key of its own: it is the one store every
replica already shares whatever `tracker_store` is configured (SQL, Redis, MongoDB,
DynamoDB, Lepton's wrappers), its writes are serialised by the conversation lock, and
the record survives restarts and goes wherever the conversation goes (exports, the
event broker), which is the audit trail. A pause is the stock Rasa event with the right
meaning, so every Rasa tool can read it: the bot stops acting in that conversation.
A pause without this metadata (a human hand-off tool's) revokes nothing. Checking
costs one read of the tracker, which the message and history routes make anyway.

Revoked conversations stay revoked: a new session is a new conversation.
"""

import time
from typing import Any, Iterable, Optional, Text

from rasa.shared.core.events import ConversationPaused, Event

from lepton_components.channels.web_chat.sessions import SessionRefused

REVOKED_KEY = "lepton_web_chat_revoked"
REVOKED = "session_revoked"
REVOKED_MESSAGE = "This chat session was ended: POST /sessions to start a new conversation."


def is_revoked(events: Iterable[Event]) -> bool:
    """Whether the conversation holds a revocation record (one linear pass)."""
    return any(
        isinstance(event, ConversationPaused) and isinstance(event.metadata, dict) and REVOKED_KEY in event.metadata
        for event in events
    )


def refuse_if_revoked(events: Iterable[Event]) -> None:
    if is_revoked(events):
        raise SessionRefused(REVOKED, REVOKED_MESSAGE)


async def check_not_revoked(tracker_store: Any, sender_id: Text) -> None:
    """Raises `SessionRefused` if the conversation was revoked, on any replica."""
    tracker = await tracker_store.retrieve_full_tracker(sender_id)
    refuse_if_revoked(tracker.events if tracker is not None else [])


def revocation_event(reason: Text, now: Optional[float] = None) -> ConversationPaused:
    """The record that ends a session; `reason` says who ended it (for the audit trail)."""
    return ConversationPaused(metadata={REVOKED_KEY: {"reason": reason, "at": now or time.time()}})


async def revoke(tracker_store: Any, lock_store: Any, sender_id: Text, reason: Text) -> None:
    """Ends the session of `sender_id` for every replica: its tokens stop working.

    Written under the conversation lock, as the processor writes, so it never races a
    turn that is saving the same tracker. `retrieve` (the latest session only) is what
    `save` expects to be given back; the check reads all sessions.
    """
    async with lock_store.lock(sender_id):
        tracker = await tracker_store.retrieve(sender_id)
        if tracker is None:
            tracker = tracker_store.init_tracker(sender_id)
        tracker.update(revocation_event(reason))
        await tracker_store.save(tracker)
