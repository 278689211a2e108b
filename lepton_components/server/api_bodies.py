"""Refuse malformed bodies on Rasa's HTTP API with 400 before Rasa sees them.

Rasa 3.6 wraps most API routes in `except Exception` and answers 500 with the exception
text (`rasa/server.py`), so junk looks like a server failure and shows Python
internals: `{}` on `/model/parse` gave `500 "Error: 'text'"`, a list on `PUT /model`
an `AttributeError`, `"\\ud800"` (a lone surrogate, which `json.loads` accepts) a failure
wherever the text is encoded later, and invalid UTF-8 on `/model/train` a
`UnicodeDecodeError`. This request middleware, on the routes `api_auth` marked (after
the token check), answers such bodies with 400 and the JSON error shape:

* JSON routes: the body must be JSON (the decoder `request.json` uses, so both agree),
  hold no lone surrogate in any string or key, and have the shape `SCHEMAS` gives
  (the events routes reuse Rasa's own `EVENTS_SCHEMA`, the JSON test data Rasa's NLU
  data schema);
* YAML routes (`/model/train`, `/model/test/...`): the body must be UTF-8 (Rasa decodes
  it strictly; libyaml already refuses surrogate escapes).

Shapes are checked only as deep as Rasa's handlers read them without checking, so
valid requests pass unchanged.
"""

from typing import Any, Dict, Optional, Text, Tuple

import jsonschema
from rasa.shared.nlu.training_data.schemas.data_schema import rasa_nlu_data_schema
from rasa.shared.utils.schemas.events import EVENTS_SCHEMA
from sanic import Sanic
from sanic.request import Request, json_loads
from sanic.response import HTTPResponse

from lepton_components.server.api_auth import is_api_route
from lepton_components.server.failures import error_response
from lepton_components.server.rasa_internals import body_pending
from lepton_components.strict_json import has_lone_surrogate

YAML_CONTENT_TYPE = "application/x-yaml"  # rasa.server.YAML_CONTENT_TYPE
MAX_DETAIL_CHARS = 200

_STRING_OR_NULL = {"type": ["string", "null"]}
# Rasa's event schema, plus what `UserUttered._from_parameters` reads unchecked.
_EVENT = {
    "allOf": [
        EVENTS_SCHEMA["items"],
        {"if": {"properties": {"event": {"const": "user"}}}, "then": {"required": ["parse_data"]}},
    ]
}
_EVENTS = {"type": "array", "items": _EVENT}
_ENTITY = {"type": "object", "required": ["entity", "value"], "properties": {"entity": {"type": "string"}}}
_CONVERSATION = "conversations/<conversation_id:path>"

# (method, route template) -> JSON schema of the body Rasa's handler reads.
SCHEMAS: Dict[Tuple[Text, Text], Dict[Text, Any]] = {
    ("POST", "model/parse"): {
        "type": "object",
        "required": ["text"],
        "properties": {"text": {"type": "string"}, "message_id": _STRING_OR_NULL},
    },
    ("PUT", "model"): {
        "type": "object",
        "properties": {
            "model_file": _STRING_OR_NULL,
            "model_server": {"type": ["object", "null"]},
            "remote_storage": _STRING_OR_NULL,
        },
    },
    ("POST", "model/predict"): _EVENTS,
    # Rasa turns "no event in the list" into 500 (its 400 is caught by its own `except Exception`).
    ("POST", f"{_CONVERSATION}/tracker/events"): {"anyOf": [_EVENT, {**_EVENTS, "minItems": 1}]},
    ("PUT", f"{_CONVERSATION}/tracker/events"): _EVENTS,
    ("POST", f"{_CONVERSATION}/execute"): {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "policy": _STRING_OR_NULL,
            "confidence": {"type": ["number", "null"]},
        },
    },
    ("POST", f"{_CONVERSATION}/trigger_intent"): {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "entities": {"anyOf": [{"type": "array", "items": _ENTITY}, {"type": ["object", "null"]}]},
        },
    },
    ("POST", f"{_CONVERSATION}/messages"): {
        "type": "object",
        "required": ["text", "sender"],
        "properties": {"text": {"type": "string"}, "sender": {"type": "string"}, "parse_data": {"type": ["object", "null"]}},
    },
}
# Routes whose body is YAML, or (`/model/test/intents` without the YAML content type) JSON test data.
YAML_ROUTES = {("POST", "model/train"), ("POST", "model/test/stories")}
TEST_DATA_ROUTE = ("POST", "model/test/intents")
_VALIDATORS = {key: jsonschema.Draft7Validator(schema) for key, schema in SCHEMAS.items()}
_TEST_DATA_VALIDATOR = jsonschema.Draft7Validator(rasa_nlu_data_schema())


def _schema_problem(validator: jsonschema.Draft7Validator, data: Any) -> Optional[Text]:
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return None
    where = "The body" if not error.absolute_path else "`" + ".".join(map(str, error.absolute_path)) + "`"
    detail = error.message if len(error.message) <= MAX_DETAIL_CHARS else error.message[:MAX_DETAIL_CHARS] + "..."
    return f"{where} does not have the shape this route needs: {detail}"


def text_body_problem(body: bytes) -> Optional[Text]:
    """Python's strict decoder: no invalid bytes, no encoded surrogates, nothing above U+10FFFF."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"The body is not valid UTF-8 (byte {error.start}); send YAML encoded as UTF-8."
    return None


def json_body_problem(body: bytes, validator: jsonschema.Draft7Validator) -> Optional[Text]:
    """What is wrong with a JSON API body, or None when Rasa can read it."""
    not_utf8 = text_body_problem(body)
    if not_utf8 is not None:
        # Checked first, strictly: ujson raises SystemError (HTTP 500) for some invalid UTF-8,
        # such as code points above U+10FFFF (b'"\xf4\x90\x80\x80"').
        return not_utf8.replace("YAML", "JSON")
    try:
        data: Any = json_loads(body)
    except (ValueError, TypeError, OverflowError):
        return "The body is not JSON. Send a JSON object, see Rasa's HTTP API reference."
    if has_lone_surrogate(data):
        return (
            "The body holds a lone UTF-16 surrogate escape (like \"\\ud800\"), which is not text. "
            "Send characters as UTF-8, or escape both halves of a surrogate pair."
        )
    return _schema_problem(validator, data)


def body_problem(request: Request) -> Optional[Text]:
    """What is wrong with the body of a request to one of Rasa's API routes, else None."""
    key = (request.method, request.route.path)
    body = request.body or b""
    if key in _VALIDATORS:
        return json_body_problem(body, _VALIDATORS[key])
    if key in YAML_ROUTES or (key == TEST_DATA_ROUTE and request.headers.get("content-type") == YAML_CONTENT_TYPE):
        return text_body_problem(body)
    if key == TEST_DATA_ROUTE:
        return json_body_problem(body, _TEST_DATA_VALIDATOR)
    return None


async def _check_api_body(request: Request) -> Optional[HTTPResponse]:
    if not is_api_route(request) or body_pending(request):
        return None  # an unread body: Sanic is answering an error (413), keep it
    problem = body_problem(request)
    return error_response(400, "bad_request", problem) if problem else None


def install_api_bodies(app: Sanic) -> None:
    """Register the middleware; runs after the API token check, which is registered first."""
    app.register_middleware(_check_api_body, "request")
