"""JSON log lines, switched on by LEPTON_LOG_FORMAT=json."""

import io
import json
import logging
from typing import Iterator

import pytest

from lepton_components.monitoring.json_logs import JsonFormatter, use_log_format_from_env


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
