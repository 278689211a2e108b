"""How tests reach the REST channel: with its credential, as the website's backend would.

`LEPTON_REST_TOKEN` is set for the whole test session (servers started by tests inherit
it, and `bot/credentials.yml` reads it), so one token serves in-process channels and
`rasa run` alike.
"""

import os
from typing import Any, Dict, Text

REST_TOKEN = os.environ.setdefault("LEPTON_REST_TOKEN", "test-rest-channel-token-0123456789abcdef")
REST_AUTH = {"Authorization": f"Bearer {REST_TOKEN}"}
REST_JSON = {**REST_AUTH, "Content-Type": "application/json"}


def rest_channel(**settings: Any) -> Any:
    """The REST channel as `credentials.yml` with `token: ${LEPTON_REST_TOKEN}` makes it."""
    from lepton_components.channels.rest import LeptonRestInput
    from lepton_components.channels.rest_auth import RestCredential

    return LeptonRestInput(RestCredential(token=REST_TOKEN), **settings)


def rest_credentials(**settings: Any) -> Dict[Text, Any]:
    """The channel's `credentials.yml` entry, for `from_credentials`."""
    return {"token": REST_TOKEN, **settings}
