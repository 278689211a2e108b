"""`LeptonServerInput`: the `credentials.yml` switch for Lepton's server extensions.

Every Lepton channel installs the extensions (`extensions.install_server_extensions`:
API gate, body limits, JSON errors, strict stores, metrics) when it is listed. A server
that lists only Rasa's own channels (socket.io, Rasa's `rest`) lists this entry instead,
so the protection never depends on which chat channel happens to be configured::

    lepton_components.server.channel.LeptonServerInput:

It serves no route of its own.
"""

from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint

from lepton_components.server.extensions import install_server_extensions


class LeptonServerInput(InputChannel):
    """Not a chat channel: listing it installs the server extensions, nothing else."""

    @classmethod
    def name(cls) -> Text:
        return "lepton_server"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "LeptonServerInput":
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        switch = Blueprint("lepton_server", __name__)
        switch.listener("before_server_start")(install_server_extensions)
        return switch
