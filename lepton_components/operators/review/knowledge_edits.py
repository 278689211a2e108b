"""Edits of the FAQ knowledge base from the console: a question variant, or a new answer.

The file is the one the loaded `FaqRetriever` reads (its `knowledge_base` setting), edited
in round-trip YAML, so its comments, quoting and indentation stay as people wrote them.
Every edit is checked by the knowledge base's own loader before it is written: an edit
that would make the file invalid (a duplicate or malformed id, an empty answer, a
placeholder without a default) raises `KnowledgeBaseError` and the file is untouched.
`restore` puts the previous text back when the retriever still refuses the new file.
"""

from io import StringIO
from pathlib import Path
from typing import List, Sequence, Text, Tuple

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from lepton_components.operators.review.files import locked, write_atomically
from lepton_components.retrieval.knowledge_base import KnowledgeBaseError, load_knowledge_base, parse_knowledge_base

MAX_QUESTION_LENGTH = 500
MAX_QUESTIONS = 50
MAX_ANSWER_LENGTH = 5000


def _key(text: Text) -> Text:
    return " ".join(text.split()).casefold()


def _load(path: Path) -> Tuple[YAML, object, Text]:
    """The round-trip YAML set to the file's own indentation, its document and text."""
    load_knowledge_base(path)  # a missing or invalid file is reported as the loader reports it
    text = path.read_text(encoding="utf-8")
    try:
        _, indent, sequence_offset = load_yaml_guess_indent(text)
    except YAMLError:  # checked above; kept for a file changed in between
        indent, sequence_offset = None, None
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=indent or 4, offset=sequence_offset if sequence_offset is not None else 2)
    yaml.width = 4096
    yaml.preserve_quotes = True
    return yaml, yaml.load(text), text


def _checked_dump(path: Path, yaml: YAML, document: object) -> Text:
    """The document as text, once the loader accepts that very text."""
    buffer = StringIO()
    yaml.dump(document, buffer)
    text = buffer.getvalue()
    parse_knowledge_base(YAML(typ="rt").load(text), str(path))
    return text


def one_line(text: Text, limit: int, what: Text) -> Text:
    line = " ".join(text.split())
    if not line or len(line) > limit:
        raise ValueError(f"{what} must have 1 to {limit} characters.")
    return line


def add_question(path: Path, answer_id: Text, question: Text) -> Tuple[bool, Text]:
    """Adds `question` to the answer's `questions`: (whether it was new, the previous text)."""
    question = one_line(question, MAX_QUESTION_LENGTH, "A question")
    with locked(path):
        yaml, document, previous = _load(path)
        entry = next((item for item in document["answers"] if item.get("id") == answer_id), None)
        if entry is None:
            raise KnowledgeBaseError(
                str(path), None, f"The file has no answer with the id `{answer_id}` (it changed since it was loaded).",
                "Reload the knowledge base (POST /webhooks/faq_admin/reload) and pick the answer again.",
            )
        if any(_key(str(existing)) == _key(question) for existing in entry["questions"]):
            return False, previous
        entry["questions"].append(question)
        write_atomically(path, _checked_dump(path, yaml, document))
        return True, previous


def add_answer(path: Path, answer_id: Text, answer: Text, questions: Sequence[Text]) -> Text:
    """Appends a new answer; returns the previous text. The loader checks id and text."""
    distinct: List[Text] = []
    for question in questions:
        line = one_line(question, MAX_QUESTION_LENGTH, "Each question")
        if _key(line) not in {_key(known) for known in distinct}:
            distinct.append(line)
    if len(distinct) > MAX_QUESTIONS:
        raise ValueError(f"An answer may have at most {MAX_QUESTIONS} questions here; {len(distinct)} were given.")
    if len(answer) > MAX_ANSWER_LENGTH:
        raise ValueError(f"The answer text must have at most {MAX_ANSWER_LENGTH} characters.")
    with locked(path):
        yaml, document, previous = _load(path)
        entry = CommentedMap()
        entry["id"] = answer_id.strip()
        entry["questions"] = CommentedSeq(distinct)
        entry["answer"] = answer.strip()
        document["answers"].append(entry)
        write_atomically(path, _checked_dump(path, yaml, document))
        return previous


def restore(path: Path, previous: Text) -> None:
    """Puts back the text an edit replaced."""
    with locked(path):
        write_atomically(path, previous)
