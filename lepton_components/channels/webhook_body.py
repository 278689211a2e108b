"""Webhook bodies read strictly: a JSON object of valid Unicode, or a reason for a 400.

Stock Rasa's Telegram, Messenger and Slack channels read `request.json` and go on: a
body that is not JSON or not UTF-8 raises Sanic's `InvalidUsage` (an HTML 400 page),
JSON that is not an object fails on the first `.get` (a 500), and a lone surrogate
escape such as `"\\ud83d"` is accepted by every JSON decoder (Sanic's ujson included)
and only fails once the text is encoded for the tracker store or the platform's API: a
500 after the bot has done its work. Here all of these are refused before any work,
with a message that names the problem.

Decoding is `lepton_components.strict_json`'s, as for every Lepton route.
"""

from typing import Any, Dict, Text, Union
from urllib.parse import parse_qs

from lepton_components.strict_json import InvalidJson, decode_json


class BadWebhookBody(ValueError):
    """The body cannot be the platform's webhook call; the message says why (for a 400)."""


def json_object(body: Union[bytes, Text], expected: Text) -> Dict[Text, Any]:
    """`body` decoded as a JSON object; `BadWebhookBody` naming `expected` otherwise."""
    try:
        data = decode_json(body)
    except InvalidJson as error:
        raise BadWebhookBody(f"{error} Expected {expected}.") from error
    if not isinstance(data, dict):
        raise BadWebhookBody(f"The body must be a JSON object: {expected}.")
    return data


def form_json_field(body: bytes, field: Text, expected: Text) -> Dict[Text, Any]:
    """The JSON object in form field `field` of a URL-encoded body (Slack's `payload=`)."""
    try:
        # errors="strict": percent-escapes that are not UTF-8 are refused, not replaced.
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except ValueError as error:
        raise BadWebhookBody(f"The body is not a URL-encoded form in UTF-8; expected {expected}.") from error
    values = fields.get(field)
    if not values:
        raise BadWebhookBody(f"The form has no `{field}` field; expected {expected}.")
    return json_object(values[0], expected)
