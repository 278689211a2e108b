"""The private parts of Rasa 3.6 and Sanic 21.12 the server hardening relies on, in one place.

`rasa run` offers no public way to ask which routes its HTTP API guards, which token
it checks, or which model folder it was started with, so these are read from Rasa's
own objects. Each reader fails loudly (`RasaInternalsChanged`) instead of guessing when
an upgrade moves what it reads; `tests/server/test_rasa_internals.py` holds a canary
for each.

* `requires_auth` (`rasa/server.py`) wraps each API handler in a closure named
  `decorated` (its code object identifies it) that holds the `--auth-token` in its
  `token` cell and the undecorated handler in `__wrapped__` (`functools.wraps`);
* `serve_application` (`rasa/core/run.py`) registers
  `partial(load_agent_on_start, model_path, ...)` as a `before_server_start` listener,
  which Sanic keeps among the app's signal handlers;
* Sanic's router caches lookups (`Router.get` is an `lru_cache`), so replacing a
  route's handler must clear that cache;
* when reading the body fails (413, timeout), Sanic 21.12 runs the request middleware
  from `handle_exception` with the body still unread (`request.stream.request_body`
  set), and a response a middleware returns there replaces the error: middleware
  that judges bodies must stand aside then (`body_pending`).
"""

import inspect
from functools import partial
from typing import Any, Callable, List, Optional, Text

import rasa.core.run
import rasa.server
from sanic import Sanic
from sanic.request import Request
from sanic_routing.route import Route

Handler = Callable[..., Any]


class RasaInternalsChanged(RuntimeError):
    """What Lepton reads from Rasa or Sanic is not where Rasa 3.6.21 / Sanic 21.12 keep it."""


def _requires_auth_code() -> Any:
    async def probe(request: Request) -> None:  # never called
        return None

    return rasa.server.requires_auth(None, None)(probe).__code__  # type: ignore[arg-type]


# The code object every handler wrapped by Rasa's `requires_auth` runs.
_REQUIRES_AUTH_CODE = _requires_auth_code()


def is_rasa_guarded(handler: Handler) -> bool:
    """Whether `handler` is Rasa's `requires_auth` wrapper around an API route."""
    return getattr(handler, "__code__", None) is _REQUIRES_AUTH_CODE


def guarded_routes(app: Sanic) -> List[Route]:
    """Every route of `app` whose handler Rasa wrapped in `requires_auth`."""
    return [route for route in app.router.routes if is_rasa_guarded(route.handler)]


def unguarded_handler(handler: Handler) -> Handler:
    """The handler inside Rasa's `requires_auth` wrapper, which runs without Rasa's token check."""
    inner = getattr(handler, "__wrapped__", None)
    if not is_rasa_guarded(handler) or not callable(inner):
        raise RasaInternalsChanged(
            f"{getattr(handler, '__name__', handler)!r} is not Rasa 3.6's `requires_auth` wrapper with "
            "`__wrapped__`; check rasa/server.py `requires_auth` after upgrading Rasa."
        )
    return inner


def rasa_auth_token(route: Route) -> Optional[Text]:
    """The `--auth-token` a guarded route's `requires_auth` closure compares `?token=` with."""
    closure = inspect.getclosurevars(route.handler).nonlocals
    if "token" not in closure:
        raise RasaInternalsChanged(
            "Rasa's `requires_auth` closure has no `token` variable; check rasa/server.py after upgrading Rasa."
        )
    token = closure["token"]
    return token if isinstance(token, str) and token else None


def replace_handler(app: Sanic, route: Route, handler: Handler) -> None:
    """Serve `route` with `handler` from now on (Sanic caches route lookups, so clear that cache)."""
    route.handler = handler
    app.router.get.cache_clear()


def _listeners(app: Sanic) -> List[Any]:
    """Every `before_server_start` listener: Sanic 21.12 keeps them as signal handlers
    `partial(app._listener, listener=...)` (`sanic/app.py` `register_listener`)."""
    wrapped = [signal.handler for signal in app._future_signals if signal.event == "server.init.before"]
    return [getattr(handler, "keywords", {}).get("listener", handler) for handler in wrapped]


def body_pending(request: Request) -> bool:
    """Whether a body the route reads is still unread: the request middleware then runs only to
    answer an error (413, timeout), and no handler will run. (GET and DELETE routes ignore bodies.)"""
    stream, route = request.stream, request.route
    ignored = route is not None and getattr(route.ctx, "ignore_body", False)
    return stream is not None and bool(getattr(stream, "request_body", None)) and not ignored


def startup_model_path(app: Sanic) -> Optional[Text]:
    """The `--model` argument of `rasa run` (file or folder), or None when the app was built otherwise."""
    for listener in _listeners(app):
        if isinstance(listener, partial) and listener.func is rasa.core.run.load_agent_on_start:
            model_path = listener.args[0] if listener.args else listener.keywords.get("model_path")
            return str(model_path) if model_path else None
    return None
