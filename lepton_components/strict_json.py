"""JSON from a client, read strictly: valid UTF-8, valid Unicode, or a reason for a 400.

Every JSON decoder at hand lets something through that fails later, as a 500 after
work was done: `json.loads` and Sanic's ujson accept lone surrogate escapes
(`"\\ud83d"`), which only fail when the text is encoded for the tracker store or a
platform's API, and ujson raises `SystemError` for some invalid UTF-8 (code points
above U+10FFFF, `b'"\\xf4\\x90\\x80\\x80"'`). So every Lepton route that takes JSON
decodes it here: Python's strict UTF-8 decoder first, then JSON, then one pass over
every string (keys included) for surrogates.
"""

import json
import re
from typing import Any, List, Text, Union

LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


class InvalidJson(ValueError):
    """The body is not strict JSON; the message says why, for a 400."""


def has_lone_surrogate(data: Any) -> bool:
    """Whether any string (key or value) in decoded JSON holds an unpaired surrogate.

    Decoders turn a valid pair (`"\\ud83d\\ude00"`) into one character, so any surrogate
    left is unpaired. Iterative, one pass over the data.
    """
    pending: List[Any] = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def decode_json(body: Union[bytes, Text]) -> Any:
    """The JSON value in `body`; `InvalidJson` naming the problem otherwise."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidJson(f"The body is not valid UTF-8 (byte {error.start}); send JSON encoded as UTF-8.") from error
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise InvalidJson("The body is not JSON.") from error
    if has_lone_surrogate(data):
        raise InvalidJson(
            "The body contains an unpaired UTF-16 surrogate escape (e.g. \\ud83d), which is not text; "
            "send valid Unicode."
        )
    return data
