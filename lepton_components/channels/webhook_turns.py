"""What the Telegram, Messenger and Slack webhooks share around a customer's turn.

* A length cap before any work: Rasa runs NLU synchronously on the event loop, so one
  long message holds every conversation of the replica (100,000 characters: 13.7 s).
  A message over the channel's `max_message_length` never reaches the guards, the
  tracker store or NLU; the customer is told the limit in a bot reply instead, and the
  platform gets its 200 (the message was handled: resending it would not help).
* Turns that finish: Sanic cancels a request's handler when the client hangs up, and a
  platform that times out does hang up. A turn cancelled half-way may have sent replies
  without saving the conversation; run in its own task it always completes, and the
  platform's redelivery finds it done (Messenger de-duplicates by message id).
"""

import asyncio
import functools
import logging
from typing import Any, Awaitable, Callable, Dict, Set, Text

from rasa.core.channels.channel import UserMessage

from lepton_components.channels.message_text import without_control_characters
from lepton_components.channels.rate_limits import DEFAULT_PER_SENDER, MESSAGES_PER_SENDER, RateLimit, RateLimiter


logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]

# Strong references: the event loop keeps only weak ones to running tasks.
_running_turns: Set["asyncio.Task[Any]"] = set()


def too_long_reply(max_length: int) -> Text:
    """What the customer reads when their message is over the limit."""
    return (
        f"Sorry, that message is too long for me: I can read at most {max_length} characters. "
        "Could you send it again in a shorter form?"
    )


def too_fast_reply(retry_after_s: int) -> Text:
    return f"You're sending messages faster than I can read them. Please wait {retry_after_s} s and send it again."


def screen_customer_texts(
    on_new_message: OnNewMessage, max_length: int, per_sender: RateLimit = DEFAULT_PER_SENDER
) -> OnNewMessage:
    """`on_new_message` that answers itself messages over `max_length` characters or over
    the sender's rate limit, and passes the others on without control characters.

    The platform gets its 200 either way: refusing would only make it deliver the same
    message again. The limit is per process (`rate_limits.py`).
    """
    limiter = RateLimiter({MESSAGES_PER_SENDER: per_sender})

    async def handle(message: UserMessage) -> Any:
        if message.text is not None and len(message.text) > max_length:
            logger.info(
                f"A '{message.input_channel}' message of {len(message.text)} characters is over "
                f"max_message_length ({max_length}); the customer was asked for a shorter one."
            )
            await message.output_channel.send_text_message(message.sender_id, too_long_reply(max_length))
            return None
        limited = limiter.check(MESSAGES_PER_SENDER, message.sender_id)
        if limited is not None:
            logger.info(f"A '{message.input_channel}' sender is over its rate limit; it was asked to wait.")
            await message.output_channel.send_text_message(message.sender_id, too_fast_reply(limited.retry_after_s))
            return None
        if message.text is not None:
            message.text = without_control_characters(message.text)
        return await on_new_message(message)

    return handle


def start_turn(work: Awaitable[Any]) -> "asyncio.Task[Any]":
    """`work` in a task of its own, which runs to its end whatever happens to the request."""
    task = asyncio.ensure_future(work)
    _running_turns.add(task)
    task.add_done_callback(_running_turns.discard)
    return task


def _log_if_failed(what: Text, task: "asyncio.Task[Any]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            f"{what} failed after its webhook request was answered or abandoned, so the platform "
            "will not resend it.",
            exc_info=task.exception(),
        )


def log_late_failure(task: "asyncio.Task[Any]", what: Text) -> None:
    """Logs a failure of `task` that no HTTP answer can report any more."""
    task.add_done_callback(functools.partial(_log_if_failed, what))


async def finish_turn(work: Awaitable[Any], what: Text) -> Any:
    """Awaits `work`; a cancelled request handler (the client hung up) does not cancel it.

    `what` names the turn in the log line written if it fails after the hang-up.
    """
    task = start_turn(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            log_late_failure(task, what)
        raise
