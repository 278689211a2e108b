"""Protections for everything `rasa run` serves, installed once per app.

* `request_limits`: bodies over `LEPTON_MAX_REQUEST_BYTES` (1 MiB) get 413;
* `json_errors`: Sanic's 400/404/405/413/... and unhandled exceptions answer with the
  JSON error shape, never an HTML page or a traceback;
* `api_auth`: Rasa's HTTP API does not start without a token and checks it in constant time;
* `access_log`: tokens in query strings never reach the access log;
* `parse_validation`: malformed `/model/parse` bodies get 400, not Rasa's 500.

Readiness (`GET /webhooks/rest/ready`) is a route of `LeptonRestInput`; forcing intents
with `/intent{...}` is handled per channel (`lepton_components.channels.intent_commands`).
See docs/hardening.md.
"""

import logging

from sanic import Sanic

from lepton_components.server.access_log import install_access_log_filter
from lepton_components.server.api_auth import install_api_auth
from lepton_components.server.json_errors import install_json_errors
from lepton_components.server.parse_validation import install_parse_validation
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
    install_api_auth(app)
    install_parse_validation(app)
