"""Never serve Rasa's HTTP API (`--enable-api`) without a token, and be its only gate.

With neither `--auth-token` nor `--jwt-secret`, Rasa's `requires_auth` lets every
request through, `PUT /model` (load any model archive) included; with `--auth-token`,
it compares `?token=` with `==` and reads no header (`rasa/server.py`). Installed on
the app, this module

* refuses to start when the API is enabled with no authentication at all, naming the
  fix (`make serve` exports `LEPTON_API_TOKEN`); `LEPTON_ALLOW_OPEN_API=true` allows it
  on a laptop;
* finds the routes to guard in the app's router (every handler Rasa wrapped in
  `requires_auth`, `rasa_internals`), so a route Rasa adds is guarded without a list
  here to forget it in;
* checks each request to those routes before anything else reads it: the token from
  `Authorization: Bearer <token>` (kept out of URLs and access logs) or `?token=`
  (Rasa's clients), compared in constant time; 401 otherwise, 400 for an
  `Authorization` header that is not UTF-8. `LEPTON_API_TOKEN` is the token, also
  when `rasa run` got no `--auth-token`;
* lets a request it has authenticated skip Rasa's own `==` check (which would refuse a
  header token); with `--jwt-secret`, a bearer that is not the API token goes on to
  Rasa's JWT check unchanged.
"""

import inspect
import logging
import os
from functools import wraps
from typing import Awaitable, Callable, List, Mapping, Optional, Text

from rasa.shared.exceptions import InvalidConfigException
from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic_routing.route import Route

from lepton_components.server.bearer import (
    MalformedAuthorization,
    malformed_authorization_response,
    presented_bearer,
    tokens_match,
    unauthorized_response,
)
from lepton_components.server.rasa_internals import (
    RasaInternalsChanged,
    guarded_routes,
    rasa_auth_token,
    replace_handler,
    unguarded_handler,
)

logger = logging.getLogger(__name__)

API_TOKEN_ENV = "LEPTON_API_TOKEN"
ALLOW_OPEN_API_ENV = "LEPTON_ALLOW_OPEN_API"
MIN_TOKEN_LENGTH = 16
# A route Rasa's API always has: its presence means `--enable-api`.
_PROBE_ROUTE = "status"
_INSTALLED_FLAG = "lepton_api_auth"
# On `route.ctx`: this route is one of Rasa's API routes, checked by the gate below.
API_ROUTE_FLAG = "lepton_api_route"
# On `request.ctx`: the gate found the API token in this request.
_AUTHENTICATED = "lepton_api_authenticated"
UNAUTHORIZED_MESSAGE = (
    "Rasa's HTTP API needs the server's API token (LEPTON_API_TOKEN): send `Authorization: Bearer <token>` "
    "(or `?token=<token>`)."
)


def api_enabled(app: Sanic) -> bool:
    return any(route.path == _PROBE_ROUTE for route in app.router.routes)


def api_routes(app: Sanic) -> List[Route]:
    """Rasa's guarded API routes; fails loudly when the API is on but none can be found."""
    routes = guarded_routes(app)
    if api_enabled(app) and not routes:
        raise RasaInternalsChanged(
            "Rasa's HTTP API is enabled but none of its routes carries Rasa's `requires_auth` wrapper, so "
            "Lepton cannot tell which routes to guard; check rasa/server.py after upgrading Rasa."
        )
    return routes


def is_api_route(request: Request) -> bool:
    route = request.route
    return route is not None and getattr(route.ctx, API_ROUTE_FLAG, False)


def _checked_token(value: Text, where: Text) -> Text:
    if len(value) < MIN_TOKEN_LENGTH or not value.isascii() or not value.isprintable() or " " in value:
        raise InvalidConfigException(
            f"{where} must be at least {MIN_TOKEN_LENGTH} printable ASCII characters without spaces, "
            f"got {len(value)} characters. Generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    return value


def configured_token(app: Sanic, environment: Mapping[Text, Text]) -> Optional[Text]:
    """The one token the API needs, or None when it needs none (JWT only, or allowed open).

    Raises `InvalidConfigException` for an open API, a weak token, or a `LEPTON_API_TOKEN`
    that differs from `--auth-token`.
    """
    routes = api_routes(app)
    raw_env = environment.get(API_TOKEN_ENV, "").strip()
    from_env = _checked_token(raw_env, API_TOKEN_ENV) if raw_env else None
    raw_rasa = rasa_auth_token(routes[0]) if routes else None
    from_rasa = _checked_token(raw_rasa, "`rasa run --auth-token`") if raw_rasa else None
    if from_env is not None and from_rasa is not None and not tokens_match(
        from_env.encode("utf-8"), from_rasa.encode("utf-8")
    ):
        raise InvalidConfigException(
            f"{API_TOKEN_ENV} and `rasa run --auth-token` differ; drop --auth-token (the token on the command "
            f"line shows in the process list) and keep {API_TOKEN_ENV}."
        )
    token = from_env or from_rasa
    open_allowed = environment.get(ALLOW_OPEN_API_ENV, "").strip().lower() in ("1", "true", "yes")
    if token is None and not app.config.get("USE_JWT") and not open_allowed:
        raise InvalidConfigException(
            "Rasa's HTTP API is enabled (--enable-api) without --auth-token or --jwt-secret, so anyone "
            "who can reach this port could replace the model (PUT /model) or read every conversation. "
            f"Start the server with `make serve` (it exports {API_TOKEN_ENV}), or set {API_TOKEN_ENV} to a "
            f"secret before `rasa run --enable-api`, or drop --enable-api. "
            f"On a laptop only, {ALLOW_OPEN_API_ENV}=true starts it open."
        )
    return token


Middleware = Callable[[Request], Awaitable[Optional[HTTPResponse]]]


def _gate(token: Optional[Text], jwt_enabled: bool) -> Middleware:
    expected = token.encode("utf-8") if token is not None else None

    async def check_api_credentials(request: Request) -> Optional[HTTPResponse]:
        if not is_api_route(request):
            return None
        try:
            bearer = presented_bearer(request.headers.get("authorization"))
        except MalformedAuthorization as problem:
            return malformed_authorization_response(problem)
        if expected is None:
            return None  # JWT only (Rasa checks it) or explicitly open
        query = request.args.get("token")
        query_token = query.encode("utf-8") if query else None
        if tokens_match(bearer, expected) or tokens_match(query_token, expected):
            setattr(request.ctx, _AUTHENTICATED, True)
            return None
        if jwt_enabled and bearer is not None and query_token is None:
            return None  # not the API token: Rasa verifies it as a JWT
        return unauthorized_response(UNAUTHORIZED_MESSAGE)

    return check_api_credentials


def _trusting_the_gate(decorated: Callable) -> Callable:
    """Rasa's handler without its `?token=` check for requests the gate authenticated."""
    inner = unguarded_handler(decorated)

    @wraps(decorated)
    async def api_handler(request: Request, *args: object, **kwargs: object) -> HTTPResponse:
        handler = inner if getattr(request.ctx, _AUTHENTICATED, False) else decorated
        result = handler(request, *args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return api_handler


def install_api_auth(app: Sanic, environment: Optional[Mapping[Text, Text]] = None) -> None:
    """Check the API configuration, mark the API routes and add the gate; a second call does nothing."""
    if getattr(app.ctx, _INSTALLED_FLAG, False) or not api_enabled(app):
        return
    token = configured_token(app, os.environ if environment is None else environment)
    routes = api_routes(app)
    setattr(app.ctx, _INSTALLED_FLAG, True)
    for route in routes:
        setattr(route.ctx, API_ROUTE_FLAG, True)
        if token is not None:
            replace_handler(app, route, _trusting_the_gate(route.handler))
    app.register_middleware(_gate(token, bool(app.config.get("USE_JWT"))), "request")
    if token is None and not app.config.get("USE_JWT"):
        logger.warning(f"Rasa's HTTP API is open to anyone ({ALLOW_OPEN_API_ENV} is set).")
    logger.info(f"Lepton API gate: {len(routes)} routes of Rasa's HTTP API need the API token.")
