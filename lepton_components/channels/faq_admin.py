"""Admin endpoint that swaps in an edited FAQ knowledge base while the server keeps serving.

Enabled by a `credentials.yml` entry::

    lepton_components.channels.faq_admin.FaqAdminInput:
      token: ${LEPTON_ADMIN_TOKEN}

Routes (under `/webhooks/faq_admin/`): `GET /` health, `GET /status` and `POST /reload`,
both of which need `Authorization: Bearer <token>`. The token is compared in constant
time and never travels in the URL, so access logs cannot leak it; a header that is not
UTF-8 gets 400 (`lepton_components.server.bearer`).

Like every Lepton channel, listing it installs the server extensions (API gate, limits,
JSON errors, strict stores, metrics; `lepton_components.server.extensions`).
"""

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.exceptions import InvalidConfigException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.server.bearer import (
    MalformedAuthorization,
    malformed_authorization_response,
    presented_bearer,
    tokens_match,
    unauthorized_response,
)
from lepton_components.server.extensions import install_server_extensions

logger = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16


class FaqAdminInput(InputChannel):
    """Not a chat channel: it only serves the knowledge-base admin routes."""

    @classmethod
    def name(cls) -> Text:
        return "faq_admin"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "FaqAdminInput":
        token = str((credentials or {}).get("token") or "")
        if len(token) < MIN_TOKEN_LENGTH or token.startswith("${"):
            raise InvalidConfigException(
                f"The faq_admin channel needs a secret `token` of at least {MIN_TOKEN_LENGTH} "
                "characters in credentials.yml, e.g. `token: ${LEPTON_ADMIN_TOKEN}` with "
                "LEPTON_ADMIN_TOKEN set in the environment (generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or remove the "
                "faq_admin entry to disable live reloads."
            )
        return cls(token)

    def __init__(self, token: Text) -> None:
        self._token = token.encode("utf-8")

    def _refusal(self, request: Request) -> Optional[HTTPResponse]:
        """None for the admin token, else the 400 (header not UTF-8) or 401 to answer."""
        try:
            presented = presented_bearer(request.headers.get("Authorization"))
        except MalformedAuthorization as problem:
            return malformed_authorization_response(problem)
        if tokens_match(presented, self._token):
            return None
        return unauthorized_response("The admin routes need `Authorization: Bearer <token>` (LEPTON_ADMIN_TOKEN).")

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        admin = Blueprint("faq_admin", __name__)
        admin.listener("before_server_start")(install_server_extensions)

        @admin.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @admin.route("/status", methods=["GET"])
        async def status(request: Request) -> HTTPResponse:
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
            retrievers = _loaded_retrievers(request)
            if not retrievers:
                return _no_retriever()
            return response.json({"knowledge_bases": [r.state.summary() for r in retrievers if r.state]})

        @admin.route("/reload", methods=["POST"])
        async def reload(request: Request) -> HTTPResponse:
            from lepton_components.retrieval.faq_retriever import KnowledgeBaseInvalid

            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
            retrievers = _loaded_retrievers(request)
            if not retrievers:
                return _no_retriever()
            loop = asyncio.get_running_loop()
            try:
                # Embedding the questions is CPU work: keep it off the event loop so
                # conversations continue while the new index is built.
                summaries = [await loop.run_in_executor(None, retriever.reload) for retriever in retrievers]
            except KnowledgeBaseInvalid as error:
                logger.warning(f"Knowledge base reload refused, old answers kept: {error}")
                return response.json({"error": str(error), "kept_version": retrievers[0].state.summary()}, status=422)
            return response.json({"knowledge_bases": summaries})

        return admin


def _no_retriever() -> HTTPResponse:
    return response.json(
        {"error": "the loaded model has no FaqRetriever (or no model is loaded yet)"}, status=409
    )


def _loaded_retrievers(request: Request) -> List[Any]:
    """The components of the running model that serve a knowledge base, in graph order.

    FaqRetriever and JointNluComponent alike: anything with a live `state`, a `reload()`
    and a configured `knowledge_base` file (a JointNluComponent without one serves none).
    """
    agent = getattr(request.app.ctx, "agent", None)
    processor = getattr(agent, "processor", None) if agent else None
    runner = getattr(processor, "graph_runner", None)
    # Rasa 3.6's DaskGraphRunner keeps its eagerly loaded components on the graph nodes.
    nodes = getattr(runner, "_instantiated_nodes", {}) or {}
    components = [getattr(node, "_component", None) for node in nodes.values()]
    return [
        component
        for component in components
        if callable(getattr(component, "reload", None))
        and hasattr(component, "state")
        and (getattr(component, "component_config", None) or {}).get("knowledge_base")
    ]
