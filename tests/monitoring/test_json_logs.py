"""JSON log lines, switched on by LEPTON_LOG_FORMAT=json."""

import io
import json
import logging
from typing import Iterator, Tuple

import pytest

from lepton_components.monitoring.json_logs import JsonFormatter, use_log_format_from_env
from lepton_components.privacy.log_filter import PiiLogFilter

Captured = Tuple[logging.Logger, io.StringIO, io.StringIO]


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("lepton.test", logging.WARNING, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_one_line_with_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(_record("first line\nsecond line \"quoted\""))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "lepton.test"
    assert entry["message"] == 'first line\nsecond line "quoted"'
    assert entry["time"].endswith("+00:00")


def test_exceptions_and_access_log_fields_are_kept() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record("failed", host="127.0.0.1:5005", request="GET /metrics", status=200, byte=12)
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]
    assert (entry["host"], entry["request"], entry["status"], entry["byte"]) == ("127.0.0.1:5005", "GET /metrics", 200, 12)


@pytest.fixture
def root_stream() -> Iterator[io.StringIO]:
    """The root logger writing to a buffer through a plain text handler, restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    yield stream
    root.handlers, root.level = saved_handlers, saved_level


def test_env_switches_existing_handlers_to_json(root_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEPTON_LOG_FORMAT", raising=False)
    assert use_log_format_from_env() is False
    logging.getLogger("lepton.test").info("plain")
    monkeypatch.setenv("LEPTON_LOG_FORMAT", "JSON")
    assert use_log_format_from_env() is True
    logging.getLogger("lepton.test").info("structured %s", "message")
    plain, structured = root_stream.getvalue().splitlines()
    assert plain == "INFO plain"
    assert json.loads(structured)["message"] == "structured message"


RAW_EMAIL, RAW_CARD = "ada.lovelace@example.com", "4111 1111 1111 1111"


@pytest.fixture
def masked_logger() -> Iterator[Captured]:
    """A logger writing text and JSON through handlers that carry the PII log filter."""
    logger = logging.getLogger("lepton.test.pii")
    text, structured = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(text), logging.StreamHandler(structured)]
    handlers[0].setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handlers[1].setFormatter(JsonFormatter())
    for handler in handlers:
        handler.addFilter(PiiLogFilter())
    saved = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = handlers, False
    yield logger, text, structured
    logger.handlers, logger.propagate = saved


def _refund(card: str, email: str) -> None:
    raise ValueError(f"refund to card {card} for {email} was declined")


@pytest.mark.parametrize("json_first", [True, False])
def test_json_logs_are_masked_like_text_logs(masked_logger: Captured, json_first: bool) -> None:
    """Message, exception text, traceback, stack and access-log fields: nothing raw, in either format."""
    logger, text, structured = masked_logger
    if json_first:  # the order of handlers must not matter
        logger.handlers.reverse()
    try:
        # The traceback quotes this line of source, raw values included.
        _refund("4111 1111 1111 1111", "ada.lovelace@example.com")
    except ValueError:
        logger.exception(
            "Refund for %s failed",
            RAW_EMAIL,
            stack_info=True,
            extra={"host": "127.0.0.1", "request": "GET /refunds?email=ada.lovelace%40example.com", "status": 500},
        )
    entry = json.loads(structured.getvalue())
    written = text.getvalue() + structured.getvalue()
    assert RAW_EMAIL not in written and RAW_CARD not in written and "4111111111111111" not in written
    assert "ada.lovelace%40example.com" not in written
    # What was logged is still there, masked.
    assert entry["message"] == "Refund for [EMAIL] failed"
    assert "ValueError: refund to card [CARD] for [EMAIL] was declined" in entry["exception"]
    assert '_refund("[CARD]", "[EMAIL]")' in entry["exception"]
    assert "Traceback" in entry["exception"] and "Stack (most recent call last)" in entry["stack"]
    assert entry["request"] == "GET /refunds?email=[EMAIL]" and entry["status"] == 500
    assert "ValueError: refund to card [CARD] for [EMAIL] was declined" in text.getvalue()
