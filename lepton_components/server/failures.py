"""The JSON error replies every Lepton chat channel gives, so clients handle one shape.

Each body is `{"error": <code>, "message": <what happened and what to do>}`: 503 (with
`Retry-After`) when no model is loaded or a backing service is down, so a client
retries; 500 when processing failed for another reason; 4xx for a request the client
must change.
"""

import logging
from typing import Text

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.server.outages import RETRY_AFTER_SECONDS, find_outage, log_outage, unavailable_response

logger = logging.getLogger(__name__)


def error_response(status: int, code: Text, message: Text) -> HTTPResponse:
    return response.json({"error": code, "message": message}, status=status)


def agent_ready(request: Request) -> bool:
    """Whether `rasa run` has loaded a model that can handle messages."""
    agent = getattr(request.app.ctx, "agent", None)
    return agent is not None and agent.is_ready()


def no_model_response() -> HTTPResponse:
    body = {
        "error": "no_model_loaded",
        "message": "The server has no trained model loaded, so the message was not processed. "
        "Operators: check the server log for why loading failed, or load one with PUT /model.",
        "retry_after_seconds": RETRY_AFTER_SECONDS,
    }
    return response.json(body, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def failure_response(error: BaseException, what: Text) -> HTTPResponse:
    """503 naming the service for an outage, else 500; each with one log line about `what`."""
    outage = find_outage(error)
    if outage is not None:
        log_outage(outage, what)
        return unavailable_response(outage)
    logger.error(f"HTTP 500 for {what}", exc_info=error)
    return error_response(500, "internal_error", "The bot failed to process this message; see the server log.")
