"""The handoff part: a person takes over when the bot hands off, in the inbox or a helpdesk.

It brings the settings (`handoff:` in the console's credentials.yml entry, checked when
the console is built), the turn hooks that queue conversations and keep the bot quiet
(`hooks`), the inbox and helpdesk routes (`routes`), the webhook sender (`webhook`) and a
background sweep that gives waits nobody took back to the bot after
`wait_timeout_minutes` (every replica sweeps; ending a wait is atomic, so each ends once).
"""

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from sanic import Blueprint

from lepton_components.operators.handoff.hooks import HandoffHooks
from lepton_components.operators.handoff.queue import HandoffQueue
from lepton_components.operators.handoff.routes import register_handoff_routes
from lepton_components.operators.handoff.service import HandoffService
from lepton_components.operators.handoff.settings import HandoffSettings
from lepton_components.operators.handoff.webhook import WebhookSender
from lepton_components.operators.hooks import TurnHooks
from lepton_components.operators.part import ConsolePart, OperatorState

if TYPE_CHECKING:
    from lepton_components.operators.console import OperatorConsole

logger = logging.getLogger(__name__)

# Seconds between sweeps for overdue waits; a wait ends at most this long after its timeout.
SWEEP_INTERVAL_S = 15.0


class HandoffPart(ConsolePart):
    """Queue, inbox, helpdesk API and webhook of the console."""

    def __init__(self, console: "OperatorConsole", clock: Callable[[], float] = time.time) -> None:
        super().__init__(console)
        self.settings = HandoffSettings.from_mapping(console.settings.handoff)
        self.sender: Optional[WebhookSender] = (
            WebhookSender(self.settings.webhook) if self.settings.webhook is not None else None
        )
        self.clock = clock
        self._hooks = HandoffHooks(self)
        self._sweeper: Optional["asyncio.Task[None]"] = None

    @property
    def turn_hooks(self) -> Optional[TurnHooks]:
        return self._hooks

    def register_routes(self, blueprint: Blueprint) -> None:
        register_handoff_routes(blueprint, self)
        blueprint.listener("before_server_stop")(self._stop)

    def service_for(self, state: OperatorState) -> HandoffService:
        """The handoff actions on `state`'s bot and database."""
        queue = HandoffQueue(state.engine, self.clock)
        return HandoffService(self.settings, queue, state.agent, self.console.input_channels(), self.sender)

    async def service(self) -> HandoffService:
        """The handoff actions on the bot the server runs now."""
        return self.service_for(await self.console.state())

    async def sweep(self) -> int:
        """Gives every overdue wait back to the bot; how many."""
        return await (await self.service()).expire_overdue()

    async def on_ready(self, state: OperatorState) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        # Imported here: the console imports every part.
        from lepton_components.operators.console import ConsoleNotReady

        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except ConsoleNotReady:
                pass  # no model loaded (yet): no bot to give the waits back to
            except Exception:
                logger.exception("Handoff: the sweep for overdue waits failed; it runs again shortly.")

    async def _stop(self, _app: Any, _loop: Any) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self.sender is not None:
            await self.sender.close()
