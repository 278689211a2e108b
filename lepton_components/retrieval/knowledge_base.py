"""The FAQ knowledge base: approved answer templates and the questions they answer.

Rasa-free. A knowledge base is a YAML file (``data/faq.yml`` in the demo)::

    version: "1"
    answers:
      - id: shipping_costs                 # unique, lowercase letters, digits, _ and -
        questions:                         # ways customers ask it (at least one)
          - How much does delivery cost?
        answer: Standard delivery is free over $50.   # the approved text
        channels:                          # optional per-channel variants
          telegram: Delivery is free over $50.
        defaults:                          # a value for every {placeholder} no slot fills
          order_number: your order
        tags: [shipping]                   # optional labels for reports

Every problem is reported with the file, the line, the field and how to fix it, and every
``{placeholder}`` must have a default so that a customer never sees a raw ``{slot}``.
"""

import dataclasses
import difflib
import re
import string
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

SUPPORTED_VERSIONS = ("1",)
ANSWER_KEYS = ("id", "questions", "answer", "channels", "defaults", "tags")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


class KnowledgeBaseError(ValueError):
    """A knowledge base file that cannot be used, with where and how to fix it."""

    def __init__(self, path: Text, line: Optional[int], problem: Text, fix: Text) -> None:
        location = f"{path}:{line}" if line else str(path)
        super().__init__(f"{location}: {problem} Fix: {fix}")
        self.path, self.line, self.problem, self.fix = path, line, problem, fix


@dataclasses.dataclass(frozen=True)
class Answer:
    """One approved answer and the question variants it covers."""

    id: Text
    questions: Tuple[Text, ...]
    template: Text
    channel_templates: Dict[Text, Text] = dataclasses.field(default_factory=dict)
    defaults: Dict[Text, Text] = dataclasses.field(default_factory=dict)
    tags: Tuple[Text, ...] = ()

    @property
    def placeholders(self) -> List[Text]:
        """Names used as ``{name}`` in the template or any channel variant."""
        names: List[Text] = []
        for text in (self.template, *self.channel_templates.values()):
            names.extend(name for name in placeholder_names(text) if name not in names)
        return names

    def render(self, values: Dict[Text, Any], channel: Optional[Text] = None) -> Text:
        """Fills placeholders from ``values`` (slots, entities), else from the defaults."""
        template = self.channel_templates.get(channel or "", self.template)
        filled = {
            name: str(values[name]) if values.get(name) not in (None, "") else self.defaults[name]
            for name in placeholder_names(template)
        }
        return template.format(**filled)

    def as_dict(self) -> Dict[Text, Any]:
        """JSON-ready form, the inverse of :func:`answer_from_dict`."""
        return {
            "id": self.id,
            "questions": list(self.questions),
            "answer": self.template,
            "channels": dict(self.channel_templates),
            "defaults": dict(self.defaults),
            "tags": list(self.tags),
        }


def answer_from_dict(data: Dict[Text, Any]) -> Answer:
    """Rebuilds an answer saved with :meth:`Answer.as_dict` (already validated)."""
    return Answer(
        id=data["id"],
        questions=tuple(data["questions"]),
        template=data["answer"],
        channel_templates=dict(data.get("channels") or {}),
        defaults=dict(data.get("defaults") or {}),
        tags=tuple(data.get("tags") or ()),
    )


def placeholder_names(template: Text) -> List[Text]:
    """``{name}`` fields of a template; raises ValueError on unbalanced braces."""
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def load_knowledge_base(path: Path) -> List[Answer]:
    """Reads and validates a knowledge base file."""
    source = str(path)
    if not Path(path).is_file():
        raise KnowledgeBaseError(
            source, None, "The knowledge base file does not exist.",
            "Create it (see the format in README.md) or set `knowledge_base` in config.yml to its path.",
        )
    try:
        document = YAML(typ="rt").load(Path(path).read_text(encoding="utf-8"))
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise KnowledgeBaseError(
            source, mark.line + 1 if mark else None, f"This is not valid YAML ({getattr(error, 'problem', error)}).",
            "Check indentation and quote answers that contain ': ' or start with a special character.",
        ) from error
    return parse_knowledge_base(document, source)


def parse_knowledge_base(document: Any, source: Text = "<knowledge base>") -> List[Answer]:
    """Validates an already loaded YAML document and returns its answers."""
    if not isinstance(document, dict) or "answers" not in document:
        raise KnowledgeBaseError(
            source, 1, "The file must be a mapping with an `answers` list.",
            'Start it with `version: "1"` and `answers:` followed by one entry per answer.',
        )
    version = str(document.get("version", "1"))
    if version not in SUPPORTED_VERSIONS:
        raise KnowledgeBaseError(
            source, _line(document, "version"), f"Unsupported version {version!r}.",
            f'Use version: "{SUPPORTED_VERSIONS[-1]}".',
        )
    entries = document["answers"]
    if not isinstance(entries, list) or not entries:
        raise KnowledgeBaseError(
            source, _line(document, "answers"), "`answers` must be a non-empty list.",
            "Add at least one answer with `id`, `questions` and `answer`.",
        )
    answers: List[Answer] = []
    seen_ids: Dict[Text, Optional[int]] = {}
    for position, entry in enumerate(entries):
        answer = _parse_answer(entry, source, _item_line(entries, position))
        if answer.id in seen_ids:
            raise KnowledgeBaseError(
                source, _line(entry, "id"),
                f"The id `{answer.id}` is used twice (first at line {seen_ids[answer.id]}).",
                "Give every answer its own id, or merge the two entries' questions.",
            )
        seen_ids[answer.id] = _line(entry, "id")
        answers.append(answer)
    return answers


def _parse_answer(entry: Any, source: Text, line: Optional[int]) -> Answer:
    if not isinstance(entry, dict):
        raise KnowledgeBaseError(
            source, line, "Each item of `answers` must be a mapping.",
            "Write `- id: ...`, `questions: [...]` and `answer: ...` under it.",
        )
    for key in entry:
        if key not in ANSWER_KEYS:
            close = difflib.get_close_matches(str(key), ANSWER_KEYS, n=1)
            raise KnowledgeBaseError(
                source, _line(entry, key), f"Unknown field `{key}`.",
                (f"Did you mean `{close[0]}`? " if close else "") + f"Allowed fields: {', '.join(ANSWER_KEYS)}.",
            )
    for key in ("id", "questions", "answer"):
        if key not in entry:
            raise KnowledgeBaseError(
                source, line, f"The answer is missing the field `{key}`.",
                f"Add `{key}:` to this answer.",
            )
    answer_id = entry["id"]
    if not isinstance(answer_id, str) or not ID_PATTERN.match(answer_id):
        raise KnowledgeBaseError(
            source, _line(entry, "id"), f"`id` must be lowercase letters, digits, `_` or `-`, got {answer_id!r}.",
            "Use an id like `shipping_costs`.",
        )
    questions = _strings(entry, "questions", source, answer_id)
    template = entry["answer"]
    if not isinstance(template, str) or not template.strip():
        raise KnowledgeBaseError(
            source, _line(entry, "answer"), f"`answer` of `{answer_id}` must be non-empty text.",
            "Write the approved answer text after `answer:`.",
        )
    channels = _text_mapping(entry, "channels", source, answer_id)
    defaults = _text_mapping(entry, "defaults", source, answer_id)
    tags = _strings(entry, "tags", source, answer_id) if "tags" in entry else []
    for field, text in [("answer", template), *((f"channels.{k}", v) for k, v in channels.items())]:
        line_of_field = _line(entry, field.split(".")[0])
        try:
            names = placeholder_names(text)
        except ValueError as error:
            raise KnowledgeBaseError(
                source, line_of_field, f"`{field}` of `{answer_id}` has unbalanced braces ({error}).",
                "Write placeholders as {slot_name}; write a literal brace as {{ or }}.",
            ) from error
        for name in names:
            if not name.isidentifier():
                raise KnowledgeBaseError(
                    source, line_of_field, f"`{field}` of `{answer_id}` has the placeholder {{{name}}}, which is not a slot name.",
                    "Use a plain slot or entity name such as {order_number}.",
                )
            if name not in defaults:
                raise KnowledgeBaseError(
                    source, line_of_field,
                    f"`{field}` of `{answer_id}` uses {{{name}}} but `defaults` has no value for it, so a "
                    "customer could see a raw placeholder.",
                    f"Add `defaults: {{{name}: <text to use when the slot is empty>}}` to this answer.",
                )
    return Answer(
        id=answer_id,
        questions=tuple(questions),
        template=template,
        channel_templates=channels,
        defaults=defaults,
        tags=tuple(tags),
    )


def _strings(entry: Dict, key: Text, source: Text, answer_id: Text) -> List[Text]:
    value = entry[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise KnowledgeBaseError(
            source, _line(entry, key), f"`{key}` of `{answer_id}` must be a non-empty list of texts.",
            f"Write `{key}:` followed by lines like `- How much is delivery?`.",
        )
    return [v.strip() for v in value]


def _text_mapping(entry: Dict, key: Text, source: Text, answer_id: Text) -> Dict[Text, Text]:
    value = entry.get(key) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise KnowledgeBaseError(
            source, _line(entry, key), f"`{key}` of `{answer_id}` must map names to texts.",
            f"Write `{key}:` followed by lines like `telegram: Short answer text`.",
        )
    return {str(k): str(v) for k, v in value.items()}


def _line(mapping: Any, key: Any) -> Optional[int]:
    """1-based line of a key in a ruamel round-trip mapping, when known."""
    try:
        return mapping.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return None


def _item_line(sequence: Any, index: int) -> Optional[int]:
    try:
        return sequence.lc.item(index)[0] + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def question_rows(answers: Sequence[Answer]) -> Tuple[List[Text], List[int]]:
    """Flattens answers into (question texts, index of the answer each belongs to)."""
    texts: List[Text] = []
    owners: List[int] = []
    for index, answer in enumerate(answers):
        texts.extend(answer.questions)
        owners.extend([index] * len(answer.questions))
    return texts, owners
