"""Everything Lepton adds to the `rasa run` app, installed once before it serves.

A `credentials.yml` entry's blueprint is the only hook `rasa run` offers on the app
without user code, so every Lepton channel (REST, web chat, the verified Telegram,
Messenger and Slack channels, faq_admin) registers `install_server_extensions` as a
`before_server_start` listener, and so does `LeptonServerInput`
(`lepton_components.server.channel`), the explicit switch for servers that list none
of them. Whichever of them are listed, the whole set is installed exactly once per app:
strict stores (and no in-memory fallback for a tracker store Rasa cannot import),
the graph run without dask, metrics, body limits, JSON errors and the API gate.
"""

from typing import Any

from sanic import Sanic

from lepton_components.monitoring.install import install_monitoring
from lepton_components.server.graph_runner import install_sequential_graph_runner
from lepton_components.server.hardening import install_hardening
from lepton_components.server.strict_mode import install_strict_mode
from lepton_components.stores.store_startup import refuse_in_memory_fallback

_INSTALLED_FLAG = "lepton_server_extensions"


async def install_server_extensions(app: Sanic, _loop: Any) -> None:
    """`before_server_start` listener: strict store errors (HTTP 503), metrics, hardening.

    Monitoring goes before hardening so that requests hardening refuses are timed too.
    """
    if getattr(app.ctx, _INSTALLED_FLAG, False):
        return
    # Runs before Rasa creates the stores (its own listener comes after the channels').
    refuse_in_memory_fallback()
    install_strict_mode(app)
    install_sequential_graph_runner(app)
    install_monitoring(app)
    install_hardening(app)
    setattr(app.ctx, _INSTALLED_FLAG, True)


def server_extensions_installed(app: Sanic) -> bool:
    return bool(getattr(app.ctx, _INSTALLED_FLAG, False))
