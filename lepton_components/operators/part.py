"""What each piece of the console (access, handoff, review, analytics) plugs in."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sanic import Blueprint

from lepton_components.operators.hooks import TurnHooks

if TYPE_CHECKING:
    from lepton_components.operators.console import OperatorConsole


@dataclass(frozen=True)
class OperatorState:
    """The loaded bot the console works on: its agent and the SQL database of its tracker store."""

    agent: Any
    engine: sa.engine.Engine


class ConsolePart:
    """One piece of the console: its routes, its turn hooks, its start-up work."""

    def __init__(self, console: "OperatorConsole") -> None:
        self.console = console

    def register_routes(self, blueprint: Blueprint) -> None:
        """Adds the part's routes (paths relative to /webhooks/operators)."""

    @property
    def turn_hooks(self) -> Optional[TurnHooks]:
        """Hooks around every customer message, if the part needs them."""
        return None

    async def on_ready(self, state: OperatorState) -> None:
        """Runs once per database, after the tables exist (e.g. the first admin account)."""
