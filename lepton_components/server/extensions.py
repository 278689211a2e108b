"""Everything Lepton adds to the `rasa run` app, installed once before it serves.

A `credentials.yml` entry's blueprint is the only hook `rasa run` offers on the app
without user code, so each Lepton chat channel (REST, web chat) registers
`install_server_extensions` as a `before_server_start` listener; every installer is
idempotent, so listing several channels installs everything once.
"""

from typing import Any

from sanic import Sanic

from lepton_components.monitoring.install import install_monitoring
from lepton_components.server.hardening import install_hardening
from lepton_components.server.strict_mode import install_strict_mode


async def install_server_extensions(app: Sanic, _loop: Any) -> None:
    """`before_server_start` listener: strict store errors (HTTP 503), metrics, hardening.

    Monitoring goes before hardening so that requests hardening refuses are timed too.
    """
    install_strict_mode(app)
    install_monitoring(app)
    install_hardening(app)
