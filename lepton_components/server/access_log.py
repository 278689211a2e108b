"""Keep secrets in URLs out of the access log.

Rasa's HTTP API takes its auth token only as `?token=` (`rasa/server.py`), Facebook's
handshake sends `hub.verify_token`, and Sanic's access log writes every request's full
URL, so whoever reads the logs could call the API. This filter on the `sanic.access`
logger replaces such query values with `REDACTED` before any handler writes them.
"""

import logging
from typing import Text
from urllib.parse import unquote_plus

ACCESS_LOGGER = "sanic.access"
REDACTED = "REDACTED"
# Query parameters whose values are credentials, compared after URL-decoding the name
# (Sanic decodes `?tok%65n=` to `token` too) and case-insensitively.
SECRET_PARAMETERS = frozenset({"token", "access_token", "auth_token", "jwt", "hub.verify_token", "secret", "password"})


def _redacted_pair(pair: Text) -> Text:
    name, separator, _ = pair.partition("=")
    if separator and unquote_plus(name).strip().lower() in SECRET_PARAMETERS:
        return f"{name}={REDACTED}"
    return pair


def redact_url(text: Text) -> Text:
    """`text` (a URL or `METHOD URL`) with the value of every secret query parameter replaced."""
    head, question_mark, query = text.partition("?")
    if not question_mark:
        return text
    query, hash_mark, fragment = query.partition("#")
    redacted = "&".join(_redacted_pair(pair) for pair in query.split("&"))
    return f"{head}?{redacted}{hash_mark}{fragment}"


class SecretQueryFilter(logging.Filter):
    """Rewrites the `request` field Sanic's access log formats (`GET http://...?token=...`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if isinstance(request, str):
            record.request = redact_url(request)
        return True


def install_access_log_filter() -> None:
    """Adds the filter once to the `sanic.access` logger."""
    access_logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, SecretQueryFilter) for existing in access_logger.filters):
        access_logger.addFilter(SecretQueryFilter())
