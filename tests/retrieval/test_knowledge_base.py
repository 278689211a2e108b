"""Knowledge base parsing: valid files load, every malformed one names line, field and fix."""

from pathlib import Path

import pytest

from lepton_components.retrieval.knowledge_base import (
    KnowledgeBaseError,
    answer_from_dict,
    load_knowledge_base,
    question_rows,
)

VALID = """\
version: "1"
answers:
  - id: gift_cards
    questions:
      - Do you sell gift cards?
      - Can I buy a voucher?
    answer: "Yes, digital gift cards from $10 to $500."
    tags: [payments]
  - id: damaged_item
    questions: [My parcel arrived broken]
    answer: "Sorry {order_number} arrived damaged. Reply with a photo."
    channels:
      telegram: "Sorry about {order_number}! Send a photo."
    defaults:
      order_number: your order
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "faq.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_loads(tmp_path: Path) -> None:
    answers = load_knowledge_base(write(tmp_path, VALID))
    assert [a.id for a in answers] == ["gift_cards", "damaged_item"]
    assert answers[0].questions == ("Do you sell gift cards?", "Can I buy a voucher?")
    assert answers[1].placeholders == ["order_number"]
    texts, owners = question_rows(answers)
    assert texts[2] == "My parcel arrived broken" and owners == [0, 0, 1]


def test_render_fills_slots_then_defaults_and_picks_channel(tmp_path: Path) -> None:
    damaged = load_knowledge_base(write(tmp_path, VALID))[1]
    assert damaged.render({"order_number": "LP-123456"}) == "Sorry LP-123456 arrived damaged. Reply with a photo."
    assert damaged.render({}) == "Sorry your order arrived damaged. Reply with a photo."
    assert damaged.render({"order_number": None}) == "Sorry your order arrived damaged. Reply with a photo."
    assert damaged.render({}, channel="telegram") == "Sorry about your order! Send a photo."
    assert damaged.render({}, channel="slack").startswith("Sorry your order arrived")


def test_round_trip_through_dict(tmp_path: Path) -> None:
    for answer in load_knowledge_base(write(tmp_path, VALID)):
        assert answer_from_dict(answer.as_dict()) == answer


@pytest.mark.parametrize(
    "text,line,expected",
    [
        ("answers: [\n", 2, "not valid YAML"),
        ("- just a list\n", 1, "must be a mapping with an `answers` list"),
        ('version: "7"\nanswers: []\n', 1, "Unsupported version '7'"),
        ("answers: []\n", 1, "`answers` must be a non-empty list"),
        ("answers:\n  - id: a\n    questions: [q]\n", 2, "missing the field `answer`"),
        ("answers:\n  - id: Bad Id\n    questions: [q]\n    answer: x\n", 2, "`id` must be lowercase"),
        ("answers:\n  - id: a\n    questions: []\n    answer: x\n", 3, "`questions` of `a` must be a non-empty list"),
        ("answers:\n  - id: a\n    questions: [q]\n    answer: x\n    anser: y\n", 5, "Did you mean `answer`?"),
        ("answers:\n  - id: a\n    questions: [q]\n    answer: 'hi {name}'\n", 4, "uses {name} but `defaults` has no value"),
        ("answers:\n  - id: a\n    questions: [q]\n    answer: 'hi {name'\n    defaults: {name: you}\n", 4, "unbalanced braces"),
        (
            "answers:\n  - id: a\n    questions: [q]\n    answer: x\n  - id: a\n    questions: [r]\n    answer: y\n",
            5,
            "The id `a` is used twice (first at line 2)",
        ),
        ("answers:\n  - id: a\n    questions: [q]\n    answer: x\n    channels: [telegram]\n", 5, "must map names to texts"),
    ],
)
def test_malformed_files_name_line_problem_and_fix(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(KnowledgeBaseError) as error:
        load_knowledge_base(path)
    assert expected in str(error.value)
    assert error.value.line == line
    assert str(error.value).startswith(f"{path}:{line}: ")
    assert "Fix:" in str(error.value)


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="does not exist.*knowledge_base"):
        load_knowledge_base(tmp_path / "nope.yml")
