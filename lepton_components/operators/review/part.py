"""The review part: conversations that need a look, and turning them into training data.

Admins see the conversations whose turns were flagged (`/review`), read one with what
the bot understood and why it acted (`/review/conversations/<id>`), and fix a turn in
one click: the right intent becomes a training example (`review.nlu_file`, used by the
next `rasa train`), or the right knowledge-base answer gets the question as a variant
(live at once: the retrievers reload). Every annotation is audited in the conversation.
"""

import asyncio
from pathlib import Path
from typing import Any, Text

from sanic import Blueprint

from lepton_components.operators.part import ConsolePart
from lepton_components.operators.review.nlu_file import add_example
from lepton_components.operators.review.routes import register_review_routes
from lepton_components.operators.review.settings import ReviewSettings


class ReviewFile:
    """The review NLU file, written by one coroutine of this process at a time (and locked on disk)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def add(self, intent: Text, text: Text) -> bool:
        async with self._lock:
            return await asyncio.to_thread(add_example, self.path, intent, text)


class ReviewPart(ConsolePart):
    def __init__(self, console: Any) -> None:
        super().__init__(console)
        self.settings = ReviewSettings.from_dict(console.settings.review)
        self.nlu_file = ReviewFile(self.settings.nlu_file)
        # Knowledge-base edits (here and on the analytics page) and their reloads, one at a time.
        self.knowledge_lock = asyncio.Lock()

    def register_routes(self, blueprint: Blueprint) -> None:
        register_review_routes(blueprint, self)
