"""One JSON object per log line, for log shippers (Loki, Elasticsearch, Cloud Logging).

Enabled by `LEPTON_LOG_FORMAT=json` (anything else, or unset, keeps Rasa's coloured
text). `rasa run`'s `--logging-config-file` is not the switch: Rasa applies that file and
then always calls `coloredlogs.install`, which replaces the root handler writing to
stderr (`rasa/__main__.py`), so a JSON formatter set there is lost. The server
extensions call `use_log_format_from_env()` before the model is loaded, so everything
from model loading on, including Sanic's access log, is JSON.

Personal data is masked as in the text format: the PII log filter
(`lepton_components.privacy.log_filter`) rewrites the record before any formatter reads
it, and this formatter writes only what the filter rewrites (message, exception text,
stack text, the access log's fields).
"""

import json
import logging
import os
from datetime import datetime, timezone
from typing import Any, Dict, Text

LOG_FORMAT_ENV = "LEPTON_LOG_FORMAT"
JSON_FORMAT = "json"
# Fields Sanic's access logger passes as `extra=`.
ACCESS_FIELDS = ("host", "request", "status", "byte")


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...}` on one line; newlines in messages are escaped.

    Like `logging.Formatter`, writes (and caches) `record.exc_text`, never a traceback
    formatted afresh from `exc_info`, which would undo the PII filter's masking.
    """

    def format(self, record: logging.LogRecord) -> Text:
        entry: Dict[Text, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            # The cached text, as `logging.Formatter` writes it: the PII log filter masks
            # that text, while `exc_info` still holds the raw exception and its message.
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_json_logs(logger: logging.Logger) -> int:
    """Give every handler of `logger` the JSON formatter (one to stderr if none); returns how many."""
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
    return len(logger.handlers)


def use_log_format_from_env() -> bool:
    """Switch the root logger and Sanic's own loggers to JSON if `LEPTON_LOG_FORMAT=json`."""
    if os.environ.get(LOG_FORMAT_ENV, "").strip().lower() != JSON_FORMAT:
        return False
    use_json_logs(logging.getLogger())
    # Sanic's loggers have handlers of their own only when Sanic configured logging.
    for name in ("sanic.root", "sanic.error", "sanic.access"):
        sanic_logger = logging.getLogger(name)
        if sanic_logger.handlers:
            use_json_logs(sanic_logger)
    return True
