"""Request checks the review and analytics pages share: bounded numbers, capped forms, URLs."""

from typing import Dict, Optional, Text
from urllib.parse import quote

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.operators.access.forms import BadForm, form_fields
from lepton_components.operators.pages import URL_PREFIX, secure_headers


class BadInput(ValueError):
    """A query or form value the page cannot use; the message names it and the fix (HTTP 400)."""

    def __init__(self, message: Text, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def int_arg(request: Request, name: Text, default: int, low: int, high: int) -> int:
    """The query parameter `name` as a whole number from `low` to `high`."""
    raw: Optional[Text] = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or not low <= int(raw) <= high:
        raise BadInput(f"`{name}` must be a whole number from {low} to {high}, e.g. `?{name}={default}`.")
    return int(raw)


def read_form(request: Request, max_bytes: int, max_fields: int = 20) -> Dict[Text, Text]:
    """The posted URL-encoded form, size-capped before it is parsed."""
    if len(request.body) > max_bytes:
        raise BadInput(f"The form is too large: at most {max_bytes} bytes.", status=413)
    try:
        return form_fields(request, max_fields=max_fields)
    except BadForm as error:
        raise BadInput(str(error)) from error


def conversation_url(conversation_id: Text) -> Text:
    """The review page of a conversation; the id is percent-encoded whole (it may hold '/' or '?')."""
    return f"{URL_PREFIX}/review/conversations/{quote(conversation_id, safe='')}"


def see_other(location: Text) -> HTTPResponse:
    """303 after a successful POST, so a reload does not post again."""
    return secure_headers(response.redirect(location, status=303))
