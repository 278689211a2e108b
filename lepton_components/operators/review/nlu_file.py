"""Intent annotations from review, as Rasa 3.x NLU training data (`review.nlu_file`).

The file sits inside the training data folder (default `data/reviewed/nlu.yml`), so the
next `rasa train --data data` learns from it; it is plain Rasa YAML that people may edit
and comment (round-trip YAML keeps their comments)::

    version: "3.1"
    nlu:
    - intent: order_status
      examples: |
        - where is my parcel
        - has my order shipped yet

An annotation goes into the intent's block (made if missing); a text already there is
not added twice, and a text annotated before with another intent moves, so the latest
decision wins and Rasa never sees one example under two intents. Texts become one line,
and Rasa's entity markup (`[text](entity)`) is broken up, so a customer's message can
never plant an entity annotation.
"""

import re
from io import StringIO
from pathlib import Path
from typing import Any, List, Text

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

from lepton_components.operators.review.files import locked, write_atomically

FORMAT_VERSION = "3.1"
MAX_EXAMPLE_LENGTH = 1000
# `]` followed by `(`, `{` or `[` starts Rasa's entity annotation (entities_parser.ENTITY_REGEX).
_ENTITY_MARKUP = re.compile(r"\](?=[(\[{])")


class ReviewFileInvalid(ValueError):
    """The review file exists but is not NLU data this can extend; the message names the fix."""


def example_text(text: Text) -> Text:
    """`text` as one training example line: one line, no entity markup."""
    line = " ".join(text.split())
    return _ENTITY_MARKUP.sub("] ", line)


def _key(text: Text) -> Text:
    return " ".join(text.split()).casefold()


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.width = 4096
    yaml.preserve_quotes = True
    return yaml


def _examples(block: Any) -> List[Text]:
    text = block.get("examples") or ""
    return [line.strip()[2:].strip() for line in str(text).splitlines() if line.strip().startswith("- ")]


def _set_examples(block: Any, examples: List[Text]) -> None:
    block["examples"] = LiteralScalarString("".join(f"- {example}\n" for example in examples))


def _load(path: Path, yaml: YAML) -> Any:
    if not path.exists():
        document = CommentedMap()
        document["version"] = DoubleQuotedScalarString(FORMAT_VERSION)
        document["nlu"] = CommentedSeq()
        return document
    try:
        document = yaml.load(path.read_text(encoding="utf-8"))
    except YAMLError as error:
        raise ReviewFileInvalid(
            f"{path} is not valid YAML ({error}); fix or delete it (`review.nlu_file` in credentials.yml)."
        ) from error
    if document is None:
        document = CommentedMap()
    if not isinstance(document, dict) or not isinstance(document.get("nlu", []), list):
        raise ReviewFileInvalid(
            f"{path} is not Rasa NLU data (a mapping with an `nlu:` list); fix it or point `review.nlu_file` "
            "in credentials.yml at another file."
        )
    document.setdefault("version", FORMAT_VERSION)
    if document.get("nlu") is None:
        document["nlu"] = CommentedSeq()
    return document


def add_example(path: Path, intent: Text, text: Text) -> bool:
    """Adds `text` as an example of `intent`; False if it already was one. Blocking."""
    example = example_text(text)
    if not example or len(example) > MAX_EXAMPLE_LENGTH:
        raise ValueError(f"An example must have 1 to {MAX_EXAMPLE_LENGTH} characters.")
    yaml = _yaml()
    with locked(path):
        document = _load(path, yaml)
        blocks = document["nlu"]
        target = None
        for block in list(blocks):
            if not isinstance(block, dict) or "intent" not in block:
                continue
            examples = _examples(block)
            if block["intent"] == intent:
                target = block
                if any(_key(existing) == _key(example) for existing in examples):
                    return False
                continue
            kept = [existing for existing in examples if _key(existing) != _key(example)]
            if len(kept) != len(examples):
                if kept:
                    _set_examples(block, kept)
                else:
                    blocks.remove(block)
        if target is None:
            target = CommentedMap()
            target["intent"] = intent
            blocks.append(target)
        _set_examples(target, [*_examples(target), example])
        buffer = StringIO()
        yaml.dump(document, buffer)
        write_atomically(path, buffer.getvalue())
        return True
