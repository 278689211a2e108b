"""The customer's thumbs up/down on a bot answer, kept in the conversation itself.

The widget shows the buttons under each answer it receives, and names the answer by
the id of the customer message it replied to: the UUID the widget itself gave that
message (`POST /messages` `id`), which Rasa keeps as the `user` event's `message_id`.
So no new id is needed in the replies, and a retried message (same id) rates the same
answer. A rating is refused unless that message is in this conversation and the bot
answered it.

The rating is recorded as `SlotSet("customer_feedback", {"rating", "message", "at"})`
under the conversation lock, like every other write outside a turn (`revocation.py`),
so it is part of the conversation record wherever the tracker store is, and the
operator console copies it onto its turn log (`operators/analytics/feedback.py`).
"""

import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Text, Tuple

from rasa.shared.core.events import BotUttered, Event, SlotSet, UserUttered

from lepton_components.channels.web_chat.revocation import refuse_if_revoked
from lepton_components.channels.web_chat.transcript import CHANNEL_NAME
from lepton_components.strict_json import InvalidJson, decode_json

FEEDBACK_SLOT = "customer_feedback"
RATINGS = ("up", "down")
MAX_BODY_BYTES = 1024
MAX_ID_LENGTH = 64
EXAMPLE = '{"message": "<id of the message the bot answered>", "rating": "up"}'


@dataclass(frozen=True)
class Feedback:
    """A checked `POST /feedback` body."""

    message: Text
    rating: Text


class BadFeedback(ValueError):
    """The body is not a rating; the message says what to send (HTTP 400 or 413)."""

    def __init__(self, status: int, message: Text) -> None:
        super().__init__(message)
        self.status = status


def _valid_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and all(character.isascii() and (character.isalnum() or character in "-_.:") for character in value)
    )


def read_feedback(body: bytes) -> Feedback:
    """The posted rating, or `BadFeedback` naming the problem (size is checked first)."""
    if len(body) > MAX_BODY_BYTES:
        raise BadFeedback(413, f"The request is too large; a rating is at most {MAX_BODY_BYTES} bytes: {EXAMPLE}.")
    try:
        data = decode_json(body)
    except InvalidJson as error:
        raise BadFeedback(400, f"{error} Send JSON such as {EXAMPLE}.") from error
    if not isinstance(data, dict) or set(data) != {"message", "rating"}:
        raise BadFeedback(400, f"The body must be a JSON object with exactly `message` and `rating`: {EXAMPLE}.")
    if data["rating"] not in RATINGS:
        raise BadFeedback(400, f"`rating` must be \"up\" or \"down\", got {data['rating']!r}.")
    if not _valid_id(data["message"]):
        raise BadFeedback(
            400,
            f"`message` must be the id of a message of this conversation: 1 to {MAX_ID_LENGTH} characters of "
            "A-Z, a-z, 0-9, '-', '_', '.' or ':'.",
        )
    return Feedback(data["message"], data["rating"])


def answered(events: Iterable[Event], message_id: Text) -> bool:
    """Whether the web chat message `message_id` is in `events` and the bot replied to it."""
    found = False
    for event in events:
        if isinstance(event, UserUttered):
            if found:
                return False
            found = event.message_id == message_id and event.input_channel == CHANNEL_NAME
        elif found and isinstance(event, BotUttered):
            return True
    return False


def feedback_event(feedback: Feedback, now: Optional[float] = None) -> SlotSet:
    return SlotSet(
        FEEDBACK_SLOT, {"rating": feedback.rating, "message": feedback.message, "at": now or time.time()}
    )


async def store_feedback(
    tracker_store: Any, lock_store: Any, sender_id: Text, feedback: Feedback, now: Optional[float] = None
) -> Tuple[bool, float]:
    """Records the rating in the conversation; (False, 0) if the answer is not in it.

    Raises `SessionRefused` when the session was ended. The check reads every session
    of the conversation (the answer may be in an earlier one); `retrieve` (the latest
    session) is what `save` expects back.
    """
    at = now or time.time()
    async with lock_store.lock(sender_id):
        full = await tracker_store.retrieve_full_tracker(sender_id)
        events = list(full.events) if full is not None else []
        refuse_if_revoked(events)
        if not answered(events, feedback.message):
            return False, 0.0
        tracker = await tracker_store.retrieve(sender_id)
        tracker.update(feedback_event(feedback, at))
        await tracker_store.save(tracker)
    return True, at
