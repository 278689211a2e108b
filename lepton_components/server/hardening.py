"""Protections for everything `rasa run` serves, installed once per app.

* `request_limits`: bodies over `LEPTON_MAX_REQUEST_BYTES` (1 MiB) get 413;
* `json_errors`: Sanic's 400/404/405/413/... and unhandled exceptions answer with the
  JSON error shape, never an HTML page or a traceback;
* `api_auth`: Rasa's HTTP API does not start without a token, and every route Rasa
  guards needs it (bearer header or `?token=`, constant time);
* `access_log`: tokens in query strings never reach the access log;
* `api_bodies`: malformed API bodies (not JSON or UTF-8, lone surrogates, wrong shape)
  get 400, not Rasa's 500;
* `model_sources`: `PUT /model` loads only from the server's model folder unless
  `LEPTON_MODEL_DIR` / `LEPTON_ALLOW_REMOTE_MODELS` say otherwise.

The request middlewares run in that order: the token before anything reads the body.
Readiness (`GET /webhooks/rest/ready`) is a route of `LeptonRestInput`; forcing intents
with `/intent{...}` is handled per channel (`lepton_components.channels.intent_commands`).
See docs/hardening.md.
"""

import logging

from sanic import Sanic

from lepton_components.server.access_log import install_access_log_filter
from lepton_components.server.api_auth import api_enabled, install_api_auth
from lepton_components.server.api_bodies import install_api_bodies
from lepton_components.server.json_errors import install_json_errors
from lepton_components.server.model_sources import install_model_sources
from lepton_components.server.request_limits import install_request_limits

logger = logging.getLogger(__name__)

_INSTALLED_FLAG = "lepton_hardening"


def install_hardening(app: Sanic) -> None:
    """Install every protection on `app`; a second call does nothing."""
    if getattr(app.ctx, _INSTALLED_FLAG, False):
        return
    setattr(app.ctx, _INSTALLED_FLAG, True)
    install_access_log_filter()
    install_request_limits(app)
    install_json_errors(app)
    if api_enabled(app):
        install_api_auth(app)
        install_api_bodies(app)
        install_model_sources(app)
