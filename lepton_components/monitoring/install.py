"""Put Lepton's monitoring on a `rasa run` Sanic app: `/metrics`, timings, counters, JSON logs.

`install_monitoring(app)` is called from `lepton_components.server.extensions` in a
`before_server_start` listener and installs, once per app:

* `GET /metrics` (Prometheus text format), guarded by `access.MetricsAccess` (loopback
  only unless configured); refusals use the JSON error shape;
* app-level request/response middleware that observes
  `lepton_http_request_duration_seconds` for every route (blueprint middleware would
  only see the blueprint's own routes) and instruments the current agent's processor
  (`processor_hooks`, `graph_timing`). Rasa builds a new agent on `PUT /model`, so the
  check runs per request; it is an identity comparison once done;
* the JSON log format when `LEPTON_LOG_FORMAT=json` (`json_logs`).

Sanic 21.12 has finalised the router before `before_server_start` listeners run, and
`rasa run` offers no earlier hook without user code, so the route is added by
un-finalising the router, adding it and finalising again, before any request is served.
Streamed responses (`?stream=true`) are timed to their first byte, when Sanic runs the
response middleware.
"""

import logging
import time
from typing import Awaitable, Callable, FrozenSet, Optional, Text, Tuple

from prometheus_client import CONTENT_TYPE_LATEST
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.monitoring.access import MetricsAccess
from lepton_components.monitoring.json_logs import use_log_format_from_env
from lepton_components.monitoring.metrics import LeptonMetrics
from lepton_components.monitoring.processor_hooks import instrument_processor
from lepton_components.server.failures import error_response
from lepton_components.server.json_errors import ERROR_CODES

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
WEBHOOKS = "webhooks"
HTTP_API, UNMATCHED = "http_api", "unmatched"
_INSTALLED = "lepton_metrics"
_STARTED = "lepton_request_started"


def channel_and_route(route_path: Optional[Text]) -> Tuple[Text, Text]:
    """Labels from the matched route's template (never the raw URL, which clients choose)."""
    if route_path is None:
        return UNMATCHED, UNMATCHED
    parts = route_path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == WEBHOOKS:
        channel = parts[1]
    elif parts[0] == METRICS_PATH.strip("/"):
        channel = "metrics"
    else:
        channel = HTTP_API
    return channel, "/" + route_path.strip("/")


def webhook_channels(app: Sanic) -> FrozenSet[Text]:
    """Names of the channels mounted under `/webhooks/<name>/`: the allowed channel label values."""
    return frozenset(
        channel for channel, _ in (channel_and_route(route.path) for route in app.router.routes)
        if channel not in (HTTP_API, "metrics")
    )


def _metrics_of(app: Sanic) -> LeptonMetrics:
    return getattr(app.ctx, _INSTALLED)


async def _on_request(request: Request) -> None:
    # Sanic 21.12 runs request middleware once per request, also for errors raised before
    # or in the route; installed before the hardening middleware, whose 401/413 answers
    # stop the chain, so those are timed too.
    setattr(request.ctx, _STARTED, time.perf_counter())
    processor = getattr(getattr(request.app.ctx, "agent", None), "processor", None)
    if callable(getattr(processor, "handle_message", None)) and callable(getattr(processor, "save_tracker", None)):
        instrument_processor(processor, _metrics_of(request.app), request.app.ctx.lepton_channels)


async def _on_response(request: Request, reply: HTTPResponse) -> None:
    started = getattr(request.ctx, _STARTED, None)
    if started is None:
        return
    channel, route = channel_and_route(request.route.path if request.route is not None else None)
    status_class = f"{reply.status // 100}xx" if reply is not None else "none"
    _metrics_of(request.app).http_duration.labels(channel, route, status_class).observe(time.perf_counter() - started)


def _metrics_route(metrics: LeptonMetrics, access: MetricsAccess) -> Callable[[Request], Awaitable[HTTPResponse]]:
    async def metrics_endpoint(request: Request) -> HTTPResponse:
        refused = access.refusal(request.ip, request.headers)
        if refused is not None:
            status, reason = refused
            reply = error_response(status, ERROR_CODES[status], reason)
            if status == 401:
                reply.headers["WWW-Authenticate"] = "Bearer"
            return reply
        return response.raw(metrics.render(), content_type=CONTENT_TYPE_LATEST)

    return metrics_endpoint


def _add_route_late(app: Sanic, metrics: LeptonMetrics, access: MetricsAccess) -> None:
    finalized = app.router.finalized
    if finalized:
        app.router.reset()
    app.add_route(_metrics_route(metrics, access), METRICS_PATH, methods=["GET"], name="lepton_metrics")
    if finalized:
        app.router.finalize()


def install_monitoring(app: Sanic) -> None:
    """Install `/metrics`, the timing middleware and the log format on `app`; a second call does nothing."""
    if getattr(app.ctx, _INSTALLED, None) is not None:
        return
    # Read first: a bad setting stops the server before anything is half installed.
    access = MetricsAccess.from_env()
    use_log_format_from_env()
    metrics = LeptonMetrics()
    setattr(app.ctx, _INSTALLED, metrics)
    _add_route_late(app, metrics, access)
    app.ctx.lepton_channels = webhook_channels(app)
    app.register_middleware(_on_request, "request")
    app.register_middleware(_on_response, "response")
    logger.info(
        f"Lepton monitoring: Prometheus metrics at {METRICS_PATH} for {access.allow} addresses"
        + (" or a bearer token." if access.token else ".")
    )
