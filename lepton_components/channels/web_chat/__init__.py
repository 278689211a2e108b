"""The web chat widget channel: `lepton_components.channels.web_chat.WebChatInput`."""

from lepton_components.channels.web_chat.channel import WebChatInput
from lepton_components.channels.web_chat.settings import WebChatSettings

__all__ = ["WebChatInput", "WebChatSettings"]
