"""A logging filter that masks personal data in every log record before it is written.

Rasa 3.6 logs the user's text, entities and slot values at DEBUG (processor,
policies, forms; structlog renders its events to a string and hands it to the stdlib
`logging`), and Sanic's access log puts the URL, which can hold a conversation id or
a query string, into the record's `request` attribute. The filter rewrites the record
in place: the formatted message, string `extra` attributes (URL-decoded first), the
traceback text and the stack text. It returns True always: a record is masked, never
dropped; if masking itself fails, the message is withheld rather than written raw.

Only detectors run here (`pii` kinds): a log line carries no slot or entity names.

Attach it to handlers, not loggers: a logger's filters do not see records propagated
from its children, a handler's see every record it writes. `install_log_filter` puts
one on every handler that exists when the masking tracker store is created (after
Rasa's and Sanic's logging setup, before the first message). Handlers configured with
Rasa's `--logging-config-file` can name it directly::

    filters:
      pii: {"()": lepton_components.privacy.log_filter.PiiLogFilter}
    handlers:
      file: {class: logging.FileHandler, filename: rasa.log, filters: [pii]}
"""

import logging
from typing import Any, List, Optional, Text
from urllib.parse import unquote

from lepton_components.privacy.event_masker import EventMasker
from lepton_components.privacy.privacy_policy import PrivacyPolicy

STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
WITHHELD = "[log message withheld: masking personal data failed]"
_MASKED_MARK = "_lepton_pii_masked"


class PiiLogFilter(logging.Filter):
    """Masks a record's text with the detectors of `masker` (default: mask every kind)."""

    def __init__(self, masker: Optional[EventMasker] = None, **settings: Any) -> None:
        """`settings` are the masking store's (`pii`, `phone_regions`, ...), for dictConfig use."""
        super().__init__()
        self.masker = masker or EventMasker(PrivacyPolicy.from_settings(settings))

    def _mask(self, text: Text) -> Text:
        masked = self.masker.mask_text(text)
        if "%" in masked:
            decoded = unquote(masked)
            masked_decoded = self.masker.mask_text(decoded)
            if masked_decoded != decoded:
                return masked_decoded
        return masked

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _MASKED_MARK, False):
            return True
        try:
            record.msg = self._mask(record.getMessage())
            record.args = None
            for key, value in list(vars(record).items()):
                if key not in STANDARD_ATTRIBUTES and isinstance(value, str):
                    setattr(record, key, self._mask(value))
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._mask(record.exc_text)
            if record.stack_info:
                record.stack_info = self._mask(record.stack_info)
        except Exception:  # noqa: BLE001 - a failing filter must not write the raw record
            record.msg, record.args, record.exc_info, record.exc_text, record.stack_info = (
                WITHHELD,
                None,
                None,
                None,
                None,
            )
        setattr(record, _MASKED_MARK, True)
        return True


def _all_handlers() -> List[logging.Handler]:
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    handlers: List[logging.Handler] = []
    for logger in loggers:
        handlers.extend(handler for handler in logger.handlers if handler not in handlers)
    return handlers


def install_log_filter(masker: EventMasker) -> int:
    """Puts a `PiiLogFilter` with `masker` on every existing handler; returns how many."""
    shared = PiiLogFilter(masker)
    for handler in _all_handlers():
        existing = [item for item in handler.filters if isinstance(item, PiiLogFilter)]
        if existing:
            for item in existing:
                item.masker = masker
        else:
            handler.addFilter(shared)
    return len(_all_handlers())
