"""The operator console's `credentials.yml` entry: one switch for inbox, review and analytics.

    lepton_components.operators.console.OperatorConsoleInput:
      admin_password: ${LEPTON_OPERATOR_PASSWORD}
      secure_cookies: true      # false only for http://localhost

Pages live under `/webhooks/operators/` (a channel's blueprint is all `rasa run` mounts
without user code). Like every Lepton channel, listing it installs the server
extensions (`lepton_components.server.extensions`).

The console works on whatever bot the server runs now: on each request it looks at the
current agent (Rasa builds a new one on `PUT /model`), makes sure the operator tables exist
in its tracker store's database and that every part's turn hooks wrap its processor.
"""

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

import sqlalchemy as sa
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.exceptions import InvalidConfigException
from sanic import Blueprint, Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.operators.access.part import AccessPart
from lepton_components.operators.analytics.part import AnalyticsPart
from lepton_components.operators.database import create_tables, sql_engine_of
from lepton_components.operators.handoff.part import HandoffPart
from lepton_components.operators.hooks import TurnHooks, install_turn_hooks
from lepton_components.operators.pages import static_file
from lepton_components.operators.part import ConsolePart, OperatorState
from lepton_components.operators.review.part import ReviewPart
from lepton_components.operators.settings import OperatorSettings
from lepton_components.server.extensions import install_server_extensions
from lepton_components.server.failures import no_model_response

logger = logging.getLogger(__name__)

CHANNEL_NAME = "operators"
_APP_KEY = "lepton_operator_console"


class ConsoleNotReady(Exception):
    """No bot is loaded yet, so there is no tracker store to work on (HTTP 503)."""


class OperatorConsole:
    """The settings, the parts and the state of the console within one server process."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.access = AccessPart(self)
        self.handoff = HandoffPart(self)
        self.review = ReviewPart(self)
        self.analytics = AnalyticsPart(self)
        self.app: Optional[Sanic] = None
        self._ready_engines: Dict[int, sa.engine.Engine] = {}
        self._ready_lock = asyncio.Lock()

    @property
    def parts(self) -> List[ConsolePart]:
        return [self.access, self.handoff, self.review, self.analytics]

    @property
    def turn_hooks(self) -> List[TurnHooks]:
        return [part.turn_hooks for part in self.parts if part.turn_hooks is not None]

    def input_channels(self) -> List[InputChannel]:
        """The channels `rasa run` serves (Rasa keeps them on the app for `?output_channel=`)."""
        return list(getattr(getattr(self.app, "ctx", None), "input_channels", None) or [])

    async def state(self) -> OperatorState:
        """The current bot and its database, with the tables made and the hooks installed.

        Raises `InvalidConfigException` when the tracker store is not a SQL one, and
        `ConsoleNotReady` while no model is loaded.
        """
        agent = getattr(getattr(self.app, "ctx", None), "agent", None)
        if agent is None or agent.tracker_store is None:
            raise ConsoleNotReady()
        engine = sql_engine_of(agent.tracker_store)
        if id(engine) not in self._ready_engines:
            async with self._ready_lock:
                if id(engine) not in self._ready_engines:
                    await asyncio.to_thread(_create_tables_once, engine)
                    state = OperatorState(agent, engine)
                    for part in self.parts:
                        await part.on_ready(state)
                    self._ready_engines[id(engine)] = engine
        if not agent.is_ready():
            raise ConsoleNotReady()
        install_turn_hooks(agent.processor, self.turn_hooks)
        return OperatorState(agent, engine)

    async def check_at_start(self, app: Sanic) -> None:
        """`after_server_start`: a tracker store the console cannot use stops the server.

        Rasa loads the agent in its own `before_server_start` listener, after the
        channels' ones, so this is the first moment the store is known.
        """
        try:
            await self.state()
        except ConsoleNotReady:
            logger.info("Operator console: no model loaded yet; it starts working with the first one.")
        except InvalidConfigException as error:
            logger.error(f"The server stops: {error}")
            app.stop()
            raise
        except Exception as error:
            # The database is not reachable yet: the channels answer 503 meanwhile, and the
            # console sets itself up on the first request that finds the database back.
            logger.warning(f"Operator console: its database is not reachable yet ({error!r}); retrying per request.")


def _create_tables_once(engine: sa.engine.Engine) -> None:
    """`create_tables`, tolerating a replica that created the same tables a moment earlier.

    `CREATE TABLE` after a `checkfirst` look is not atomic: two replicas starting
    together on PostgreSQL can both decide to create, and one then fails; its second
    look finds the tables.
    """
    try:
        create_tables(engine)
    except sa.exc.SQLAlchemyError:
        time.sleep(0.5)
        create_tables(engine)


def console_of(app: Sanic) -> OperatorConsole:
    """The console serving `app` (set when its blueprint is registered)."""
    return getattr(app.ctx, _APP_KEY)


class OperatorConsoleInput(InputChannel):
    """Not a chat channel: the agent inbox, conversation review and analytics pages."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "OperatorConsoleInput":
        return cls(OperatorSettings.from_credentials(credentials))

    def __init__(self, settings: Optional[OperatorSettings] = None) -> None:
        self.console = OperatorConsole(settings or OperatorSettings())

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        operators = Blueprint("lepton_operators", __name__)
        console = self.console
        operators.listener("before_server_start")(install_server_extensions)

        @operators.listener("before_server_start")
        async def remember_app(app: Sanic, _loop: Any) -> None:
            console.app = app
            setattr(app.ctx, _APP_KEY, console)

            # Messages reach the bot through other channels' routes: make sure the current
            # processor carries the console's hooks before any of them is handled.
            async def attach_console(request: Request) -> None:
                try:
                    await console.state()
                except ConsoleNotReady:
                    pass
                except Exception as error:
                    # A database outage: the request goes on to its route, which answers
                    # 503 for it (lepton_components/server/outages.py); hooks already
                    # installed on the processor stay in place.
                    logger.warning(f"Operator console: database unavailable ({type(error).__name__}).")

            app.register_middleware(attach_console, "request")

        @operators.listener("after_server_start")
        async def check_store(app: Sanic, _loop: Any) -> None:
            await console.check_at_start(app)

        @operators.route("/static/<name:str>", methods=["GET"])
        async def static(request: Request, name: Text) -> HTTPResponse:
            return static_file(name)

        for part in console.parts:
            part.register_routes(operators)
        return operators


async def ready_state(request: Request) -> Any:
    """The console state for a route, or the 503 reply when no bot is loaded yet."""
    try:
        return await console_of(request.app).state()
    except ConsoleNotReady:
        return no_model_response()
