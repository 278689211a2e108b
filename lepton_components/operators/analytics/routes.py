"""The analytics pages (admins only).

    GET  /analytics?days=30        charts, totals, unanswered-question clusters
    GET  /api/analytics?days=30    the same figures as JSON (docs/operators.md)
    POST /analytics/answers        a new knowledge-base answer from a cluster:
                                   answer_id, answer, questions (one per line), csrf_token
"""

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Text

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.operators.access.accounts import Operator
from lepton_components.operators.access.guard import json_error, operator_required
from lepton_components.operators.analytics.charts import charts
from lepton_components.operators.analytics.clusters import unanswered_texts
from lepton_components.operators.analytics.figures import MAX_DAYS, report
from lepton_components.operators.pages import URL_PREFIX, render, secure_headers
from lepton_components.operators.review.knowledge_edits import add_answer
from lepton_components.operators.review.retrievers import (
    edit_and_reload,
    encoder_of,
    knowledge_bases,
    loaded_retrievers,
)
from lepton_components.operators.review.web import BadInput, int_arg, read_form, see_other
from lepton_components.retrieval.knowledge_base import ID_PATTERN, KnowledgeBaseError

if TYPE_CHECKING:
    from lepton_components.operators.analytics.part import AnalyticsPart

logger = logging.getLogger(__name__)

DEFAULT_DAYS = 30
MAX_ANSWER_FORM_BYTES = 64 * 1024


def _days(request: Request) -> int:
    return int_arg(request, "days", DEFAULT_DAYS, 1, MAX_DAYS)


def register_analytics_routes(blueprint: Blueprint, part: "AnalyticsPart") -> None:
    @blueprint.route("/analytics", methods=["GET"], name="analytics_page")
    @operator_required("admin")
    async def analytics_page(request: Request, operator: Operator) -> HTTPResponse:
        try:
            days = _days(request)
        except BadInput as bad:
            return render(request, "analytics.html", status=400, **_empty_page(), error=str(bad))
        state = request.ctx.operator_state
        figures = await asyncio.to_thread(report, state.engine, days)
        retrievers = loaded_retrievers(request)
        clusters: Optional[List[Any]] = None
        if retrievers:
            texts = await asyncio.to_thread(unanswered_texts, state.engine, figures.first_day)
            clusters = await part.clusters(texts, encoder_of(retrievers[0]))
        return render(
            request,
            "analytics.html",
            active="analytics",
            days=days,
            report=figures,
            charts=charts(figures),
            clusters=clusters,
            knowledge_bases=[str(path) for path in knowledge_bases(retrievers)],
            created=_created(request),
            error=None,
        )

    @blueprint.route("/api/analytics", methods=["GET"], name="analytics_api")
    @operator_required("admin")
    async def analytics_api(request: Request, operator: Operator) -> HTTPResponse:
        try:
            days = _days(request)
        except BadInput as bad:
            return json_error(400, "bad_request", str(bad))
        figures = await asyncio.to_thread(report, request.ctx.operator_state.engine, days)
        return secure_headers(response.json(figures.as_json()))

    @blueprint.route("/analytics/answers", methods=["POST"], name="analytics_create_answer")
    @operator_required("admin")
    async def create_answer(request: Request, operator: Operator) -> HTTPResponse:
        from lepton_components.retrieval.faq_retriever import KnowledgeBaseInvalid

        retrievers = loaded_retrievers(request)
        paths = knowledge_bases(retrievers)
        form: Dict[Text, Text] = {}
        try:
            form = read_form(request, MAX_ANSWER_FORM_BYTES)
            if not paths:
                raise BadInput("The loaded model has no FaqRetriever, so there is no knowledge base to add to.", 409)
            chosen = form.get("knowledge_base") or str(paths[0])
            path = next((known for known in paths if str(known) == chosen), None)
            if path is None:
                raise BadInput(f"`knowledge_base` must be one of {', '.join(str(known) for known in paths)}.")
            answer_id = form.get("answer_id", "").strip()
            questions = [line for line in form.get("questions", "").splitlines() if line.strip()]
            edit = partial(_add_answer, path, answer_id, form.get("answer", ""), questions)
            async with part.console.review.knowledge_lock:
                await edit_and_reload(retrievers, path, edit)
        except BadInput as bad:
            return _answer_form(request, form, paths, bad.status, str(bad))
        except (KnowledgeBaseError, KnowledgeBaseInvalid) as problem:
            logger.warning(f"Analytics: a new answer was refused, the old answers are kept: {problem}")
            return _answer_form(request, form, paths, 422, str(problem))
        except ValueError as problem:
            return _answer_form(request, form, paths, 400, str(problem))
        logger.info(f"Operator {operator.username!r} added the knowledge-base answer {answer_id!r} to {path}.")
        return see_other(f"{URL_PREFIX}/analytics?created={answer_id}")


def _created(request: Request) -> Optional[Text]:
    """The id of the answer just created (after the redirect), if it is an answer id at all."""
    value = request.args.get("created") or ""
    return value if ID_PATTERN.match(value) and len(value) <= 100 else None


def _add_answer(path: Any, answer_id: Text, answer: Text, questions: List[Text]) -> Any:
    return True, add_answer(path, answer_id, answer, questions)


def _answer_form(request: Request, form: Dict[Text, Text], paths: List[Any], status: int, error: Text) -> HTTPResponse:
    return render(
        request,
        "analytics_answer.html",
        status=status,
        active="analytics",
        error=error,
        form={key: form.get(key, "") for key in ("answer_id", "answer", "questions", "knowledge_base")},
        knowledge_bases=[str(path) for path in paths],
    )


def _empty_page() -> Dict[Text, Any]:
    return {
        "active": "analytics",
        "days": DEFAULT_DAYS,
        "report": None,
        "charts": [],
        "clusters": None,
        "knowledge_bases": [],
        "created": None,
    }
