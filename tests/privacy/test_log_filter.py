"""The log filter masks what handlers write: formatted messages, Sanic's access-log URL,
tracebacks; it works from a dictConfig file and never lets a raw record through."""

import io
import logging
import logging.config
from typing import Callable, Iterator, Tuple

import pytest

from lepton_components.privacy.event_masker import EventMasker
from lepton_components.privacy.log_filter import WITHHELD, PiiLogFilter, install_log_filter


@pytest.fixture
def captured() -> Iterator[Tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.privacy.log_filter")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_installed_filter_masks_formatted_messages(captured, make_masker: Callable[..., EventMasker]) -> None:
    logger, stream, handler = captured
    assert install_log_filter(make_masker()) >= 1
    logger.debug(
        "Received user message '%s' with intent '%s'", "mail ada@example.com, card 4111-1111-1111-1111", "inform"
    )
    logger.info('{"event": "processor.slots", "slot_values": {"email": "ada@example.com"}}')
    assert stream.getvalue().splitlines() == [
        "Received user message 'mail [EMAIL], card [CARD]' with intent 'inform'",
        '{"event": "processor.slots", "slot_values": {"email": "[EMAIL]"}}',
    ]


def test_access_log_extras_are_masked_even_url_encoded(captured, make_masker: Callable[..., EventMasker]) -> None:
    logger, stream, handler = captured
    handler.setFormatter(logging.Formatter("%(host)s %(request)s %(message)s %(status)d"))
    handler.addFilter(PiiLogFilter(make_masker()))
    # What Sanic's access logger passes as `extra`.
    logger.info(
        "", extra={"host": "127.0.0.1:5005", "request": "GET /conversations/ada%40example.com/tracker", "status": 200}
    )
    assert stream.getvalue() == "127.0.0.1:5005 GET /conversations/[EMAIL]/tracker  200\n"


def test_tracebacks_are_masked(captured, make_masker: Callable[..., EventMasker]) -> None:
    logger, stream, handler = captured
    handler.addFilter(PiiLogFilter(make_masker()))
    try:
        raise ValueError("cannot parse IBAN GB82 WEST 1234 5698 7654 32")
    except ValueError:
        logger.exception("failed for +1 415-555-2671")
    written = stream.getvalue()
    assert "failed for [PHONE]" in written and "ValueError: cannot parse IBAN [IBAN]" in written
    assert "GB82" not in written and "415" not in written


def test_a_failing_masker_withholds_the_message(captured, make_masker: Callable[..., EventMasker]) -> None:
    logger, stream, handler = captured
    masker = make_masker()
    masker.mask_text = lambda text: 1 / 0  # type: ignore[assignment]
    handler.addFilter(PiiLogFilter(masker))
    logger.warning("card 4111111111111111")
    assert stream.getvalue() == WITHHELD + "\n"


def test_usable_from_a_logging_config_file(tmp_path) -> None:
    log = tmp_path / "rasa.log"
    # What `rasa run --logging-config-file` hands to dictConfig.
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"pii": {"()": "lepton_components.privacy.log_filter.PiiLogFilter", "pii": {"phone": "keep"}}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log), "filters": ["pii"]}},
            "loggers": {"tests.privacy.config_file": {"handlers": ["file"], "level": "DEBUG", "propagate": False}},
        }
    )
    logger = logging.getLogger("tests.privacy.config_file")
    logger.debug("ada@example.com called from +1 415-555-2671")
    for handler in logger.handlers:
        handler.close()
    logger.handlers.clear()
    assert log.read_text() == "[EMAIL] called from +1 415-555-2671\n"
