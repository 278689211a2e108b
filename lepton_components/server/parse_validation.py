"""Refuse malformed `POST /model/parse` bodies with 400 instead of Rasa's 500.

Rasa 3.6 wraps the whole parse route in `except Exception` and answers 500 with the
exception text (`rasa/server.py` `parse`), so a body that is not JSON, or JSON that is
not an object, looks like a server failure and shows Python internals. This request
middleware answers those with 400 and the JSON error shape before Rasa sees them.
"""

from typing import Any, Optional, Text

from sanic import Sanic
from sanic.request import Request, json_loads
from sanic.response import HTTPResponse

from lepton_components.server.failures import error_response

PARSE_PATH = "/model/parse"
EXAMPLE = 'Send a JSON object like {"text": "where is my order?"}.'


def parse_body_problem(body: bytes) -> Optional[Text]:
    """What is wrong with a `/model/parse` body, or None when Rasa can parse it."""
    try:
        # The decoder `request.json` uses (ujson), so both agree on what is JSON.
        data: Any = json_loads(body)
    except (UnicodeDecodeError, ValueError, TypeError, OverflowError):
        return f"The body is not JSON. {EXAMPLE}"
    if not isinstance(data, dict):
        return f"The body must be a JSON object. {EXAMPLE}"
    if not isinstance(data.get("text"), str):
        return f"`text` must be a string. {EXAMPLE}"
    if data.get("message_id") is not None and not isinstance(data["message_id"], str):
        return "`message_id` must be a string when given."
    return None


async def _check_parse_body(request: Request) -> Optional[HTTPResponse]:
    if request.method != "POST" or request.path.rstrip("/") != PARSE_PATH:
        return None
    problem = parse_body_problem(request.body or b"")
    return error_response(400, "bad_request", problem) if problem else None


def install_parse_validation(app: Sanic) -> None:
    """Register the middleware; runs after the API token check, which is registered first."""
    app.register_middleware(_check_parse_body, "request")
