"""Canaries for the Rasa and Sanic internals `lepton_components.server.rasa_internals` reads.

Each fails loudly when an upgrade of Rasa (3.6.21) or Sanic (21.12) moves what Lepton
relies on, before the API gate could silently stop guarding a route.
"""

from functools import partial
from typing import Any

import pytest
import rasa.server
from rasa.core.run import load_agent_on_start
from sanic import Sanic, response

from lepton_components.server.rasa_internals import (
    RasaInternalsChanged,
    guarded_routes,
    is_rasa_guarded,
    rasa_auth_token,
    replace_handler,
    startup_model_path,
    unguarded_handler,
)
from tests.server.lepton_app import API_TOKEN, rasa_app

# Every route rasa/server.py 3.6.21 decorates with `requires_auth` (method, path).
RASA_GUARDED_ROUTES = {
    ("GET", "status"),
    ("GET", "conversations/<conversation_id:path>/tracker"),
    ("POST", "conversations/<conversation_id:path>/tracker/events"),
    ("PUT", "conversations/<conversation_id:path>/tracker/events"),
    ("GET", "conversations/<conversation_id:path>/story"),
    ("POST", "conversations/<conversation_id:path>/execute"),
    ("POST", "conversations/<conversation_id:path>/trigger_intent"),
    ("POST", "conversations/<conversation_id:path>/predict"),
    ("POST", "conversations/<conversation_id:path>/messages"),
    ("POST", "model/train"),
    ("POST", "model/test/stories"),
    ("POST", "model/test/intents"),
    ("POST", "model/predict"),
    ("POST", "model/parse"),
    ("PUT", "model"),
    ("DELETE", "model"),
    ("GET", "domain"),
}


def _methods_and_paths(routes: Any) -> set:
    return {(method, route.path) for route in routes for method in route.methods}


def test_every_route_rasa_guards_is_found_and_nothing_else() -> None:
    app = rasa_app([])
    assert _methods_and_paths(guarded_routes(app)) == RASA_GUARDED_ROUTES
    open_paths = {route.path for route in app.router.routes if not is_rasa_guarded(route.handler)}
    assert open_paths == {"", "version"}


def test_the_auth_token_is_read_from_rasas_closure() -> None:
    assert {rasa_auth_token(route) for route in guarded_routes(rasa_app([]))} == {API_TOKEN}
    assert {rasa_auth_token(route) for route in guarded_routes(rasa_app([], auth_token=None))} == {None}


def test_the_unguarded_handler_is_the_one_requires_auth_wraps() -> None:
    routes = {route.path: route for route in rasa_app([]).router.routes}
    inner = unguarded_handler(routes["status"].handler)
    assert inner.__name__ == "status" and not is_rasa_guarded(inner)
    with pytest.raises(RasaInternalsChanged):
        unguarded_handler(routes["version"].handler)
    with pytest.raises(RasaInternalsChanged):
        unguarded_handler(inner)


def test_a_route_guarded_by_requires_auth_outside_rasas_app_is_found_too() -> None:
    app = Sanic("lepton_canary_guarded")

    @app.get("/custom")
    @rasa.server.requires_auth(app, API_TOKEN)
    async def custom(request: Any) -> Any:
        return response.json({})

    assert [route.path for route in guarded_routes(app)] == ["custom"]


def test_startup_model_path_is_read_from_rasas_listener(tmp_path: Any) -> None:
    app = rasa_app([])
    assert startup_model_path(app) is None
    app.register_listener(partial(load_agent_on_start, str(tmp_path), None, None), "before_server_start")
    assert startup_model_path(app) == str(tmp_path)


def test_a_replaced_handler_is_served_even_after_a_cached_lookup() -> None:
    app = rasa_app([])
    app.router.finalize()
    route, handler, _ = app.router.get("/version", "GET", None)

    async def replacement(request: Any) -> Any:
        return response.text("replaced")

    replace_handler(app, route, replacement)
    assert app.router.get("/version", "GET", None)[1] is replacement
