"""Puts a customer's thumbs up/down on its turn in the turn log, when the console runs.

The web chat stores the rating in the conversation itself (the `customer_feedback`
slot); this copies it onto the `lepton_turns` row of the rated answer, so review finds
answers customers disliked and analytics counts ratings per day without reading
trackers. A server without the operator console has no turn log: nothing to do.
"""

import asyncio
import logging
from typing import Any, Text

from lepton_components.operators.analytics.turn_log import mark_feedback

logger = logging.getLogger(__name__)


async def record_feedback(app: Any, conversation_id: Text, message_id: Text, rating: Text, at: float) -> bool:
    """Marks the turn of `message_id`; False when the console is not installed on `app`."""
    from lepton_components.operators.console import ConsoleNotReady, console_of

    try:
        console = console_of(app)
    except AttributeError:  # no console entry in credentials.yml
        return False
    try:
        state = await console.state()
    except ConsoleNotReady:
        return False
    marked = await asyncio.to_thread(mark_feedback, state.engine, conversation_id, message_id, rating, at)
    if not marked:
        logger.info("Feedback on an answer the turn log has no row for (given before the console was installed).")
    return True
