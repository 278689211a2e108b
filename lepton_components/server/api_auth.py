"""Never serve Rasa's HTTP API (`--enable-api`) without a token, and check it in constant time.

With neither `--auth-token` nor `--jwt-secret`, every API route is open to anyone who can
reach the port, `PUT /model` (load any model archive) included; with `--auth-token`,
Rasa compares `?token=` with `==` (`rasa/server.py` `requires_auth`). Installed on the
app, this module

* refuses to start when the API is enabled with no authentication at all, naming the
  fix (`make serve` passes `--auth-token "$LEPTON_API_TOKEN"`); `LEPTON_ALLOW_OPEN_API=true`
  allows it on a laptop;
* checks `?token=` on the API routes in constant time before Rasa's own `==` runs, so a
  wrong token never reaches it; with `LEPTON_API_TOKEN` set the API needs that token even
  when `--auth-token` was forgotten.

The token stays in the URL because that is the only place Rasa reads it;
`access_log` keeps it out of the access log.
"""

import hmac
import inspect
import logging
import os
from typing import Awaitable, Callable, Mapping, Optional, Text

from rasa.shared.exceptions import InvalidConfigException
from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.server.failures import error_response

logger = logging.getLogger(__name__)

API_TOKEN_ENV = "LEPTON_API_TOKEN"
ALLOW_OPEN_API_ENV = "LEPTON_ALLOW_OPEN_API"
MIN_TOKEN_LENGTH = 16
# The routes `rasa.server.create_app` guards with `requires_auth` (all but `/` and `/version`).
API_PATH_ROOTS = ("/status", "/conversations", "/model", "/domain")
_PROBE_ROUTE = "status"
_INSTALLED_FLAG = "lepton_api_auth"


def is_api_path(path: Text) -> bool:
    return any(path == root or path.startswith(root + "/") for root in API_PATH_ROOTS)


def api_enabled(app: Sanic) -> bool:
    return any(route.path == _PROBE_ROUTE for route in app.router.routes)


def rasa_auth_token(app: Sanic) -> Optional[Text]:
    """The `--auth-token` Rasa's API routes check, read from their `requires_auth` closure."""
    for route in app.router.routes:
        if route.path == _PROBE_ROUTE:
            token = inspect.getclosurevars(route.handler).nonlocals.get("token")
            return token if isinstance(token, str) and token else None
    return None


def configured_token(app: Sanic, environment: Mapping[Text, Text]) -> Optional[Text]:
    """The one token the API needs, or None when it needs none (JWT only, or allowed open).

    Raises `InvalidConfigException` for an open API, a short `LEPTON_API_TOKEN`, or a
    `LEPTON_API_TOKEN` that differs from `--auth-token`.
    """
    from_env = environment.get(API_TOKEN_ENV, "").strip() or None
    from_rasa = rasa_auth_token(app)
    if from_env is not None and len(from_env) < MIN_TOKEN_LENGTH:
        raise InvalidConfigException(
            f"{API_TOKEN_ENV} must have at least {MIN_TOKEN_LENGTH} characters, got {len(from_env)}. "
            "Generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    if from_env is not None and from_rasa is not None and not hmac.compare_digest(
        from_env.encode("utf-8"), from_rasa.encode("utf-8")
    ):
        raise InvalidConfigException(
            f"{API_TOKEN_ENV} and `rasa run --auth-token` differ; pass --auth-token \"${API_TOKEN_ENV}\"."
        )
    token = from_env or from_rasa
    open_allowed = environment.get(ALLOW_OPEN_API_ENV, "").strip().lower() in ("1", "true", "yes")
    if token is None and not app.config.get("USE_JWT") and not open_allowed:
        raise InvalidConfigException(
            "Rasa's HTTP API is enabled (--enable-api) without --auth-token or --jwt-secret, so anyone "
            "who can reach this port could replace the model (PUT /model) or read every conversation. "
            f"Start the server with `make serve` (it passes --auth-token \"${API_TOKEN_ENV}\"), or run "
            f"`rasa run --enable-api --auth-token \"${API_TOKEN_ENV}\"`, or drop --enable-api. "
            f"On a laptop only, {ALLOW_OPEN_API_ENV}=true starts it open."
        )
    return token


Middleware = Callable[[Request], Awaitable[Optional[HTTPResponse]]]


def _token_middleware(token: Text) -> Middleware:
    expected = token.encode("utf-8")

    async def check_api_token(request: Request) -> Optional[HTTPResponse]:
        if not is_api_path(request.path):
            return None
        if request.app.config.get("USE_JWT") and "Authorization" in request.headers:
            return None  # Rasa verifies the JWT itself.
        presented = request.args.get("token") or ""
        if hmac.compare_digest(presented.encode("utf-8", "replace"), expected):
            return None
        return error_response(
            401,
            "unauthorized",
            "Rasa's HTTP API needs `?token=<API token>` (the server's LEPTON_API_TOKEN / --auth-token).",
        )

    return check_api_token


def install_api_auth(app: Sanic, environment: Optional[Mapping[Text, Text]] = None) -> None:
    """Check the API configuration and add the token middleware; a second call does nothing."""
    if getattr(app.ctx, _INSTALLED_FLAG, False) or not api_enabled(app):
        return
    token = configured_token(app, os.environ if environment is None else environment)
    setattr(app.ctx, _INSTALLED_FLAG, True)
    if token is None:
        if not app.config.get("USE_JWT"):
            logger.warning(f"Rasa's HTTP API is open to anyone ({ALLOW_OPEN_API_ENV} is set).")
        return
    app.register_middleware(_token_middleware(token), "request")
