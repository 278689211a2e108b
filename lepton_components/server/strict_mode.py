"""Make `rasa run` refuse requests while the conversation database or Redis is down.

Rasa 3.6 hides such outages twice: `Agent` wraps every tracker store in
`FailSafeTrackerStore`, which logs errors and carries on with an empty conversation
(rasa issue 3243), and error paths answer 200 or 500. `install_strict_mode(app)`
fixes both on a Sanic app, idempotently:

* a request middleware applies `make_tracker_store_strict` to `app.ctx.agent`.
  Rasa builds a new `Agent` (with a new, lenient wrapper) at start-up and on every
  `PUT /model`, and nothing else in Rasa can be hooked; checking on every request
  keeps each agent strict before it handles anything (a type check once strict);
* outage errors (`lepton_components.server.outages.OUTAGE_TYPES`) escaping any route
  answer 503 with one log line;
* Rasa's `ErrorResponse` handler keeps its answers, except that a 500 caused by an
  outage (its HTTP API wraps store errors) becomes 503.

`lepton_components.server.extensions` installs it when a Lepton channel starts.
"""

import logging
from typing import Any, Callable, Optional

from rasa.server import ErrorResponse
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.server.outages import OUTAGE_TYPES, find_outage, log_outage, unavailable_response
from lepton_components.stores.strict_tracker_store import make_tracker_store_strict

logger = logging.getLogger(__name__)

_INSTALLED_FLAG = "lepton_strict_mode"

ExceptionHandler = Callable[[Request, Exception], Any]


def ensure_strict_agent(app: Sanic) -> None:
    """Let tracker store errors of the app's current agent reach the caller."""
    agent = getattr(app.ctx, "agent", None)
    if agent is not None:
        make_tracker_store_strict(agent)


async def _strict_agent_middleware(request: Request) -> None:
    ensure_strict_agent(request.app)


def _outage_handler(request: Request, exception: Exception) -> HTTPResponse:
    outage = find_outage(exception) or exception
    log_outage(outage, f"{request.method} {request.path}")
    return unavailable_response(outage)


def _error_response_handler(previous: Optional[ExceptionHandler]) -> ExceptionHandler:
    """Rasa's `ErrorResponse` handler, but 503 when an outage caused the error."""

    def handle(request: Request, exception: Exception) -> Any:
        outage = find_outage(exception)
        if outage is not None:
            # `ErrorResponse.__init__` has already logged its message, which quotes the
            # outage error: no second line.
            return unavailable_response(outage)
        if previous is not None:
            return previous(request, exception)
        return response.json(exception.error_info, status=exception.status)  # type: ignore[attr-defined]

    return handle


def install_strict_mode(app: Sanic) -> None:
    """Register the middleware and error handlers on `app`; a second call does nothing."""
    if getattr(app.ctx, _INSTALLED_FLAG, False):
        return
    setattr(app.ctx, _INSTALLED_FLAG, True)
    app.register_middleware(_strict_agent_middleware, "request")
    for outage_type in OUTAGE_TYPES:
        app.error_handler.add(outage_type, _outage_handler)
    # Sanic 21.12 keeps one handler per exception type; wrap the one Rasa registered.
    previous = app.error_handler.cached_handlers.get((ErrorResponse, None))
    app.error_handler.add(ErrorResponse, _error_response_handler(previous))
    logger.info(
        "Lepton strict mode: tracker store and lock store errors now answer HTTP 503 "
        "instead of an empty conversation or `200 []`."
    )
