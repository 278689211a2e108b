"""HTML form bodies read strictly, since Sanic's `request.form` logs a bad body and returns nothing."""

from typing import Dict, Text
from urllib.parse import parse_qs

from sanic.request import Request

FORM_TYPE = "application/x-www-form-urlencoded"


class BadForm(ValueError):
    """The body is not the form expected; the message says why (for a 400)."""


def content_type(request: Request) -> Text:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def form_fields(request: Request, max_fields: int = 100) -> Dict[Text, Text]:
    """The URL-encoded form of `request`, one value per field (the first one)."""
    if content_type(request) != FORM_TYPE:
        raise BadForm(f"Send the form as {FORM_TYPE} (what a browser's form sends).")
    try:
        # errors="strict": percent-escapes that are not UTF-8 are refused, not replaced.
        parsed = parse_qs(
            request.body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=max_fields
        )
    except ValueError as error:
        raise BadForm(f"The body is not a URL-encoded form in UTF-8 with at most {max_fields} fields.") from error
    return {name: values[0] for name, values in parsed.items()}
