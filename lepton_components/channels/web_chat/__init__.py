"""The web chat widget channel: `lepton_components.channels.web_chat.WebChatInput`."""

from lepton_components.channels.web_chat.channel import WebChatInput, WebChatSettings

__all__ = ["WebChatInput", "WebChatSettings"]
