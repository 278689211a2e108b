"""The inbox (agents, behind the login) and the inbound helpdesk API (a bearer token).

Under /webhooks/operators/:

* `GET /inbox`: the page (`templates/inbox.html`, `static/inbox.js`);
* `GET /api/handoffs`: the queue as the operator sees it;
* `GET /api/handoffs/<conversation id>`: one conversation's handoff and newest messages;
* `POST /api/handoffs/<conversation id>/claim`, `.../messages` `{"text": ...}`, `.../release`;
* `POST /helpdesk/messages` `{"conversation_id", "text", "agent"}` and `POST /helpdesk/release`
  `{"conversation_id", "agent"}` with `Authorization: Bearer <handoff.helpdesk_token>`.

Conversation ids hold ':' and must be percent-encoded in paths (`encodeURIComponent`).
Every body is capped before it is read, and every refusal is a 4xx naming the fix.
"""

import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Optional, Text
from urllib.parse import unquote

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.channels.message_text import DEFAULT_MAX_MESSAGE_LENGTH, text_problem
from lepton_components.operators.access.guard import console_state, json_error, operator_required
from lepton_components.operators.handoff.permissions import Helpdesk, Refusal
from lepton_components.operators.handoff.queue import HELD
from lepton_components.operators.handoff.service import HandoffService, Outcome
from lepton_components.operators.pages import render, secure_headers
from lepton_components.server.bearer import (
    MalformedAuthorization,
    presented_bearer,
    tokens_match,
    unauthorized_response,
)
from lepton_components.server.failures import failure_response
from lepton_components.strict_json import InvalidJson, decode_json

if TYPE_CHECKING:
    from lepton_components.operators.handoff.part import HandoffPart

logger = logging.getLogger(__name__)

MAX_TEXT_LENGTH = DEFAULT_MAX_MESSAGE_LENGTH
MAX_CONVERSATION_ID_LENGTH = 255
MAX_AGENT_NAME_LENGTH = 64
# A \uXXXX escape is 6 bytes per character, plus the other fields and JSON framing.
MAX_BODY_BYTES = MAX_TEXT_LENGTH * 6 + 4096
HELPDESK_OFF = (
    "The helpdesk API is off. Set `handoff.helpdesk_token: ${LEPTON_HELPDESK_TOKEN}` (at least 32 characters) in the "
    "operator console's credentials.yml entry and restart (docs/handoff.md)."
)


class BadRequest(Exception):
    """A request body the route cannot use; the message names the fix."""

    def __init__(self, status: int, message: Text) -> None:
        super().__init__(message)
        self.status = status


def _json(body: Dict[Text, Any], status: int = 200) -> HTTPResponse:
    return secure_headers(response.json(body, status=status))


def _outcome(outcome: Outcome) -> HTTPResponse:
    if outcome.failure is not None:
        return _json({"error": "delivery_failed", "message": outcome.failure, **outcome.as_json()}, status=502)
    return _json(outcome.as_json())


def _conversation_id(raw: Text) -> Text:
    # Sanic hands over the path segment as sent; ids are percent-encoded there.
    try:
        conversation_id = unquote(raw, errors="strict") if "%" in raw else raw
    except UnicodeDecodeError:
        conversation_id = ""
    if not 0 < len(conversation_id) <= MAX_CONVERSATION_ID_LENGTH or text_problem(conversation_id):
        raise BadRequest(
            404, f"No conversation has that id: ids are 1 to {MAX_CONVERSATION_ID_LENGTH} printable characters, "
            "percent-encoded in the path (encodeURIComponent)."
        )
    return conversation_id


def _body(request: Request) -> Dict[Text, Any]:
    if len(request.body) > MAX_BODY_BYTES:
        raise BadRequest(413, f"The body is too large; messages are limited to {MAX_TEXT_LENGTH} characters.")
    try:
        body = decode_json(request.body or b"{}")
    except InvalidJson as error:
        raise BadRequest(400, f'{error} Send JSON such as {{"text": "Hello, I can help with that."}}.') from None
    if not isinstance(body, dict):
        raise BadRequest(400, 'The body must be a JSON object such as {"text": "Hello, I can help with that."}.')
    return body


def _text(body: Dict[Text, Any]) -> Text:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(400, "`text` must be a non-empty string: the message for the customer.")
    if len(text) > MAX_TEXT_LENGTH:
        raise BadRequest(413, f"The message has {len(text)} characters; the limit is {MAX_TEXT_LENGTH}. Split it.")
    problem = text_problem(text)
    if problem is not None:
        raise BadRequest(400, f"`text`: {problem}")
    return text.strip()


def _agent_name(body: Dict[Text, Any]) -> Text:
    name = body.get("agent", "Our support team")
    if (
        not isinstance(name, str)
        or not name.strip()
        or len(name) > MAX_AGENT_NAME_LENGTH
        or text_problem(name)
        or any(character in name for character in "\r\n\t")
    ):
        raise BadRequest(
            400, f"`agent` must be the agent's name the customer sees, 1 to {MAX_AGENT_NAME_LENGTH} printable "
            "characters on one line, e.g. \"Dana\"."
        )
    return name.strip()


Action = Callable[[HandoffService], Awaitable[HTTPResponse]]


async def _run(request: Request, state: Any, part: "HandoffPart", action: Action, what: Text) -> HTTPResponse:
    """Runs `action` on the service, turning refusals and failures into JSON replies."""
    try:
        return await action(part.service_for(state))
    except BadRequest as bad:
        return json_error(bad.status, "not_found" if bad.status == 404 else "bad_request", str(bad))
    except Refusal as refusal:
        return json_error(refusal.status, refusal.code, refusal.message)
    except Exception as error:
        return secure_headers(failure_response(error, what))


def register_handoff_routes(blueprint: Blueprint, part: "HandoffPart") -> None:
    """The inbox page, its JSON API and the helpdesk API."""

    @blueprint.route("/inbox", methods=["GET"], name="handoff_inbox")
    @operator_required()
    async def inbox_page(request: Request, operator: Any) -> HTTPResponse:
        return render(
            request, "inbox.html", active="inbox", max_text_length=MAX_TEXT_LENGTH,
            is_admin=operator.role == "admin",
        )

    @blueprint.route("/api/handoffs", methods=["GET"], name="handoff_list")
    @operator_required()
    async def list_handoffs(request: Request, operator: Any) -> HTTPResponse:
        async def action(service: HandoffService) -> HTTPResponse:
            return _json(await service.inbox(operator))

        return await _run(request, request.ctx.operator_state, part, action, "the handoff inbox")

    @blueprint.route("/api/handoffs/<conversation_id:str>", methods=["GET"], name="handoff_conversation")
    @operator_required()
    async def show(request: Request, operator: Any, conversation_id: Text) -> HTTPResponse:
        async def action(service: HandoffService) -> HTTPResponse:
            return _json(await service.conversation(operator, _conversation_id(conversation_id)))

        return await _run(request, request.ctx.operator_state, part, action, "a handoff conversation")

    @blueprint.route("/api/handoffs/<conversation_id:str>/claim", methods=["POST"], name="handoff_claim")
    @operator_required()
    async def claim(request: Request, operator: Any, conversation_id: Text) -> HTTPResponse:
        async def action(service: HandoffService) -> HTTPResponse:
            return _outcome(await service.claim(operator, _conversation_id(conversation_id)))

        return await _run(request, request.ctx.operator_state, part, action, "taking a conversation")

    @blueprint.route("/api/handoffs/<conversation_id:str>/messages", methods=["POST"], name="handoff_reply")
    @operator_required()
    async def reply(request: Request, operator: Any, conversation_id: Text) -> HTTPResponse:
        async def action(service: HandoffService) -> HTTPResponse:
            checked_id, text = _conversation_id(conversation_id), _text(_body(request))
            return _outcome(await service.reply(operator, checked_id, text))

        return await _run(request, request.ctx.operator_state, part, action, "an agent's reply")

    @blueprint.route("/api/handoffs/<conversation_id:str>/release", methods=["POST"], name="handoff_release")
    @operator_required()
    async def release(request: Request, operator: Any, conversation_id: Text) -> HTTPResponse:
        async def action(service: HandoffService) -> HTTPResponse:
            return _outcome(await service.release(operator, _conversation_id(conversation_id)))

        return await _run(request, request.ctx.operator_state, part, action, "handing a conversation back")

    # The helpdesk API ----------------------------------------------------------------

    def helpdesk_refusal(request: Request) -> Optional[HTTPResponse]:
        expected = part.settings.helpdesk_token
        if expected is None:
            return json_error(404, "not_found", HELPDESK_OFF)
        try:
            presented = presented_bearer(request.headers.get("Authorization"))
        except MalformedAuthorization as problem:
            return json_error(400, "bad_request", str(problem))
        if not tokens_match(presented, expected.encode("utf-8")):
            return secure_headers(
                unauthorized_response(
                    "Send the helpdesk token as `Authorization: Bearer <token>` (`handoff.helpdesk_token` in the "
                    "operator console's credentials.yml entry)."
                )
            )
        return None

    async def helpdesk(request: Request, act: Callable[[HandoffService, Dict[Text, Any]], Awaitable[HTTPResponse]],
                       what: Text) -> HTTPResponse:
        refusal = helpdesk_refusal(request)
        if refusal is not None:
            return refusal
        state = await console_state(request)
        if isinstance(state, HTTPResponse):
            return secure_headers(state)

        async def action(service: HandoffService) -> HTTPResponse:
            return await act(service, _body(request))

        return await _run(request, state, part, action, what)

    def conversation_of(body: Dict[Text, Any]) -> Text:
        value = body.get("conversation_id")
        if not isinstance(value, str):
            raise BadRequest(400, "`conversation_id` must be the conversation's id as the webhook sent it.")
        if not 0 < len(value) <= MAX_CONVERSATION_ID_LENGTH or text_problem(value):
            raise BadRequest(400, f"`conversation_id` must be 1 to {MAX_CONVERSATION_ID_LENGTH} printable characters.")
        return value

    @blueprint.route("/helpdesk/messages", methods=["POST"], name="helpdesk_message")
    async def helpdesk_message(request: Request) -> HTTPResponse:
        async def act(service: HandoffService, body: Dict[Text, Any]) -> HTTPResponse:
            conversation_id, text, name = conversation_of(body), _text(body), _agent_name(body)
            desk = Helpdesk(name)
            handoff = await service.queue.status_of(conversation_id)
            if handoff is not None and handoff.status != HELD:
                joined = await service.claim(desk, conversation_id, name=name)
                if joined.failure is not None:
                    return _outcome(joined)
            return _outcome(await service.reply(desk, conversation_id, text, name=name))

        return await helpdesk(request, act, "a helpdesk message")

    @blueprint.route("/helpdesk/release", methods=["POST"], name="helpdesk_release")
    async def helpdesk_release(request: Request) -> HTTPResponse:
        async def act(service: HandoffService, body: Dict[Text, Any]) -> HTTPResponse:
            conversation_id, name = conversation_of(body), _agent_name(body)
            return _outcome(await service.release(Helpdesk(name), conversation_id, name=name))

        return await helpdesk(request, act, "a helpdesk release")
