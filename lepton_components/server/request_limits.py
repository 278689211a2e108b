"""Cap request bodies far below Sanic's 100 MB default.

Every chat message, admin call and `/model/parse` request fits in a few kilobytes; a
100 MB body is only ever a way to make the server buffer and parse junk. The limit is
`LEPTON_MAX_REQUEST_BYTES` (default 1 MiB); Sanic answers a larger body with 413, which
`json_errors` renders as `{"error": "payload_too_large", ...}`. Raise it to upload
training data through `POST /model/train`.
"""

import logging
import os
from typing import Mapping, Text

from rasa.shared.exceptions import InvalidConfigException
from sanic import Sanic

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES_ENV = "LEPTON_MAX_REQUEST_BYTES"
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024


def max_request_bytes(environment: Mapping[Text, Text]) -> int:
    """The configured limit; a value that is not a positive whole number is refused."""
    raw = environment.get(MAX_REQUEST_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_REQUEST_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidConfigException(
            f"{MAX_REQUEST_BYTES_ENV} must be a whole number of bytes >= 1, got {raw!r}. "
            f"Example: {MAX_REQUEST_BYTES_ENV}={DEFAULT_MAX_REQUEST_BYTES} (1 MiB, the default)."
        )
    return int(raw)


def install_request_limits(app: Sanic) -> None:
    """Set Sanic's `REQUEST_MAX_SIZE`; connections opened from now on use it."""
    app.config.REQUEST_MAX_SIZE = max_request_bytes(os.environ)
    logger.info(f"Request bodies are limited to {app.config.REQUEST_MAX_SIZE} bytes ({MAX_REQUEST_BYTES_ENV}).")
