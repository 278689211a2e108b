"""Sanic's own errors (404, 405, 400, 413, ...) as the JSON every Lepton route answers with.

Sanic renders them as HTML or text pages, with a traceback when debug is on, and any
exception escaping a handler as a 500 page quoting it. Clients of a JSON API then parse
HTML, and the exception text can name files, hosts or SQL. Here they become
`{"error": <code>, "message": <text>}` (`lepton_components.server.failures`); a 500
says only "see the server log", where the traceback goes.
"""

import logging
from typing import Dict, Text

from sanic import Sanic
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.server.failures import error_response

logger = logging.getLogger(__name__)

ERROR_CODES: Dict[int, Text] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    416: "range_not_satisfiable",
    417: "expectation_failed",
    503: "service_unavailable",
}
TOO_LARGE_HINT = "Send a smaller body; operators can raise the limit with LEPTON_MAX_REQUEST_BYTES."
INTERNAL_ERROR_MESSAGE = "The server failed to handle this request; see the server log."


def sanic_error_response(request: Request, exception: SanicException) -> HTTPResponse:
    """The status Sanic chose, with a JSON body; the exception's own headers (`Allow`) kept."""
    status = int(getattr(exception, "status_code", None) or 500)
    if status >= 500 and status != 503:
        return internal_error_response(request, exception)
    message = str(exception) or ERROR_CODES.get(status, "error")
    if status == 413:
        message = f"{message}. {TOO_LARGE_HINT}"
    reply = error_response(status, ERROR_CODES.get(status, f"http_{status}"), message)
    reply.headers.update(getattr(exception, "headers", None) or {})
    return reply


def internal_error_response(request: Request, exception: Exception) -> HTTPResponse:
    """500 without the exception text, which goes to the log with the traceback."""
    what = f"{request.method} {request.path}" if request is not None else "a request"
    logger.error(f"HTTP 500 for {what}", exc_info=exception)
    return error_response(500, "internal_error", INTERNAL_ERROR_MESSAGE)


def install_json_errors(app: Sanic) -> None:
    """Handlers for Sanic's exceptions and for anything else nobody handled.

    More specific handlers (Rasa's `ErrorResponse`, strict mode's outages) still win:
    Sanic picks the handler of the nearest class in the exception's MRO.
    """
    app.error_handler.add(SanicException, sanic_error_response)
    app.error_handler.add(Exception, internal_error_response)
