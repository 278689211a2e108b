"""The review pages (admins only): the attention list, a conversation, its annotations.

    GET  /review?flag=<flag>&days=N&page=K
    GET  /review/conversations/<percent-encoded id>
    POST /review/conversations/<id>/intent   turn, intent, csrf_token
    POST /review/conversations/<id>/answer   turn, answer, csrf_token

An annotation names the turn by its event position; its text is read back from the
tracker store (as stored, so masked where masking is on), never taken from the form.
"""

import asyncio
import datetime
import logging
from functools import partial
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Text
from urllib.parse import urlencode

from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.core.constants import USER_INTENT_BACK, USER_INTENT_RESTART, USER_INTENT_SESSION_START
from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.operators.access.accounts import Operator
from lepton_components.operators.access.guard import operator_required
from lepton_components.operators.pages import URL_PREFIX, render
from lepton_components.operators.review.audit import record_action
from lepton_components.operators.review.conversation import review_items, user_text_at
from lepton_components.operators.review.knowledge_edits import add_question
from lepton_components.operators.review.listing import FLAGS, PAGE_SIZE, attention_page
from lepton_components.operators.review.nlu_file import ReviewFileInvalid
from lepton_components.operators.review.retrievers import (
    answer_choices,
    edit_and_reload,
    knowledge_base_of,
    loaded_retrievers,
    retriever_serving,
)
from lepton_components.operators.review.web import BadInput, conversation_url, int_arg, read_form, see_other
from lepton_components.retrieval.knowledge_base import KnowledgeBaseError

if TYPE_CHECKING:
    from lepton_components.operators.review.part import ReviewPart

logger = logging.getLogger(__name__)

DEFAULT_DAYS = 7
MAX_DAYS = 365
MAX_PAGE = 100_000
MAX_FORM_BYTES = 4096
MAX_CONVERSATION_ID_LENGTH = 255
# Rasa adds these to every domain; no customer message is an example of them.
INTERNAL_INTENTS = frozenset({USER_INTENT_RESTART, USER_INTENT_BACK, USER_INTENT_SESSION_START, DEFAULT_NLU_FALLBACK_INTENT_NAME})


def _when(at: Optional[float]) -> Text:
    if at is None:
        return ""
    return datetime.datetime.fromtimestamp(at, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _since(days: int) -> datetime.date:
    return datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=days - 1)


def _list_url(flag: Optional[Text], days: int, page: int = 1) -> Text:
    query = {"days": days, **({"flag": flag} if flag else {}), **({"page": page} if page > 1 else {})}
    return f"{URL_PREFIX}/review?{urlencode(query)}"


def register_review_routes(blueprint: Blueprint, part: "ReviewPart") -> None:
    @blueprint.route("/review", methods=["GET"], name="review_list")
    @operator_required("admin")
    async def review_list(request: Request, operator: Operator) -> HTTPResponse:
        flag = request.args.get("flag") or None
        try:
            if flag is not None and flag not in FLAGS:
                raise BadInput(f"`flag` must be one of {', '.join(FLAGS)} (or left out for every flag).")
            days = int_arg(request, "days", DEFAULT_DAYS, 1, MAX_DAYS)
            page = int_arg(request, "page", 1, 1, MAX_PAGE)
        except BadInput as bad:
            context = {**_list_context(None, DEFAULT_DAYS, 1), "error": str(bad)}
            return render(request, "review_list.html", status=bad.status, **context)
        state = request.ctx.operator_state
        rows, total = await asyncio.to_thread(attention_page, state.engine, _since(days), flag, page)
        return render(request, "review_list.html", **_list_context(flag, days, page, rows, total))

    @blueprint.route("/review/conversations/<conversation_id:str>", methods=["GET"], name="review_conversation",
                     unquote=True)
    @operator_required("admin")
    async def review_conversation(request: Request, operator: Operator, conversation_id: Text) -> HTTPResponse:
        saved = _saved_notice(request)
        return await _conversation_page(request, part, conversation_id, notice=saved)

    @blueprint.route("/review/conversations/<conversation_id:str>/intent", methods=["POST"],
                     name="review_annotate_intent", unquote=True)
    @operator_required("admin")
    async def annotate_intent(request: Request, operator: Operator, conversation_id: Text) -> HTTPResponse:
        state = request.ctx.operator_state
        intents = annotation_intents(state.agent.domain)
        try:
            form = read_form(request, MAX_FORM_BYTES)
            intent = form.get("intent", "")
            if intent not in intents:
                raise BadInput(f"`intent` must be one of the bot's intents: {', '.join(intents)}.")
            turn, text = await _turn_text(state.agent, conversation_id, form)
        except BadInput as bad:
            return await _conversation_page(request, part, conversation_id, status=bad.status, error=str(bad))
        try:
            added = await part.nlu_file.add(intent, text)
        except ReviewFileInvalid as problem:
            return await _conversation_page(request, part, conversation_id, status=409, error=str(problem))
        except ValueError as problem:  # a text too long to be an example
            return await _conversation_page(request, part, conversation_id, status=400, error=str(problem))
        await record_action(
            state.agent, conversation_id, operator.username, "review_intent",
            {"turn": turn, "intent": intent, "file": str(part.settings.nlu_file), "added": added},
        )
        return see_other(_saved_url(conversation_id, "intent", intent, turn))

    @blueprint.route("/review/conversations/<conversation_id:str>/answer", methods=["POST"],
                     name="review_annotate_answer", unquote=True)
    @operator_required("admin")
    async def annotate_answer(request: Request, operator: Operator, conversation_id: Text) -> HTTPResponse:
        from lepton_components.retrieval.faq_retriever import KnowledgeBaseInvalid

        state = request.ctx.operator_state
        retrievers = loaded_retrievers(request)
        choices = answer_choices(retrievers)
        try:
            form = read_form(request, MAX_FORM_BYTES)
            if not retrievers:
                raise BadInput("The loaded model has no FaqRetriever, so there are no knowledge-base answers.", 409)
            answer_id = form.get("answer", "")
            if answer_id not in choices:
                raise BadInput(f"`answer` must be the id of a knowledge-base answer: {', '.join(sorted(choices))}.")
            turn, text = await _turn_text(state.agent, conversation_id, form)
        except BadInput as bad:
            return await _conversation_page(request, part, conversation_id, status=bad.status, error=str(bad))
        path = knowledge_base_of(retriever_serving(retrievers, answer_id))
        try:
            async with part.knowledge_lock:
                added = await edit_and_reload(retrievers, path, partial(add_question, path, answer_id, text))
        except (KnowledgeBaseError, KnowledgeBaseInvalid) as problem:
            logger.warning(f"Review: a question variant was refused, the old answers are kept: {problem}")
            return await _conversation_page(request, part, conversation_id, status=422, error=str(problem))
        except ValueError as problem:
            return await _conversation_page(request, part, conversation_id, status=400, error=str(problem))
        await record_action(
            state.agent, conversation_id, operator.username, "review_answer",
            {"turn": turn, "answer": answer_id, "file": str(path), "added": added},
        )
        return see_other(_saved_url(conversation_id, "answer", answer_id, turn))


def annotation_intents(domain: Any) -> List[Text]:
    """The domain's intents a message can be annotated with (not Rasa's internal ones)."""
    return sorted(set(domain.intents) - INTERNAL_INTENTS)


def _list_context(flag: Optional[Text], days: int, page: int, rows: Optional[List[Any]] = None, total: int = 0) -> Dict[Text, Any]:
    pages = max(1, -(-total // PAGE_SIZE))
    return {
        "active": "review",
        "flags": FLAGS,
        "flag": flag,
        "days": days,
        "page": page,
        "pages": pages,
        "total": total,
        "rows": [
            {"row": row, "url": conversation_url(row.conversation_id), "last": _when(row.last_at)} for row in rows or []
        ],
        "flag_urls": {name: _list_url(name, days) for name in (None, *FLAGS)},
        "previous_url": _list_url(flag, days, page - 1) if page > 1 else None,
        "next_url": _list_url(flag, days, page + 1) if page < pages else None,
        "error": None,
    }


def _saved_url(conversation_id: Text, kind: Text, value: Text, turn: int) -> Text:
    return f"{conversation_url(conversation_id)}?{urlencode({'saved': kind, 'value': value, 'turn': turn})}#turn-{turn}"


def _saved_notice(request: Request) -> Optional[Dict[Text, Any]]:
    kind, value, turn = request.args.get("saved"), request.args.get("value"), request.args.get("turn")
    if kind not in ("intent", "answer") or not value or not (turn or "").isdigit():
        return None
    return {"kind": kind, "value": value, "turn": int(turn)}


async def _turn_text(agent: Any, conversation_id: Text, form: Dict[Text, Text]) -> Any:
    """The posted turn's position and its stored text, or BadInput."""
    raw = form.get("turn", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise BadInput("`turn` must be the position of a customer message of this conversation.")
    tracker = await agent.tracker_store.retrieve_full_tracker(conversation_id)
    if tracker is None:
        raise BadInput(f"There is no conversation {conversation_id!r}.", 404)
    text = user_text_at(list(tracker.events), int(raw))
    if text is None:
        raise BadInput(f"Event {raw} of this conversation is not a customer message that can be annotated.")
    return int(raw), text


async def _conversation_page(
    request: Request,
    part: "ReviewPart",
    conversation_id: Text,
    status: int = 200,
    error: Optional[Text] = None,
    notice: Optional[Dict[Text, Any]] = None,
) -> HTTPResponse:
    state = request.ctx.operator_state
    intents = annotation_intents(state.agent.domain)
    context: Dict[Text, Any] = {
        "active": "review",
        "conversation_id": conversation_id,
        "url": conversation_url(conversation_id),
        "error": error,
        "notice": notice,
        "items": [],
        "skipped": 0,
        "intents": intents,
        # Preselected: the classifier's best guess among the intents a message can have.
        "likely_intent": lambda item: next((name for name, _ in item.detail["ranking"] if name in intents), None),
        "answers": sorted(answer_choices(loaded_retrievers(request)).items()),
        "nlu_file": str(part.settings.nlu_file),
        "when": _when,
    }
    if len(conversation_id) > MAX_CONVERSATION_ID_LENGTH:
        return render(request, "review_conversation.html", status=404, **{**context, "error": "No such conversation."})
    tracker = await state.agent.tracker_store.retrieve_full_tracker(conversation_id)
    if tracker is None or not tracker.events:
        return render(
            request, "review_conversation.html", status=404,
            **{**context, "error": f"There is no conversation {conversation_id!r} in the tracker store."},
        )
    items, skipped = review_items(list(tracker.events))
    if notice is not None:
        notice = {**notice, "text": next((item.text for item in items if item.index == notice["turn"]), "")}
    context["notice"] = notice
    return render(request, "review_conversation.html", status=status, **{**context, "items": items, "skipped": skipped})
