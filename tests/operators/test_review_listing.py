"""The review list: flagged conversations in the window, filtered, newest first, paginated."""

import datetime
from pathlib import Path

from lepton_components.operators.review.listing import attention_page
from tests.operators.turn_rows import TODAY, log, turn_log


def since(days: int) -> datetime.date:
    return TODAY - datetime.timedelta(days=days - 1)


def test_only_flagged_conversations_are_listed_with_their_counts(tmp_path: Path) -> None:
    engine = turn_log(tmp_path)
    log(engine, "web_chat:ok", 0, "hello", intent="greet")
    log(engine, "web_chat:lost", 1, "hello", intent="greet", channel="telegram")
    log(engine, "web_chat:lost", 1, "do you take bitcoin", seconds=10, fallback=True, rephrase=True)
    log(engine, "web_chat:lost", 1, "bitcoin payment", seconds=20, fallback=True, handoff=True)
    log(engine, "web_chat:angry", 0, "where is it", feedback="down")
    rows, total = attention_page(engine, since(7), None, 1)
    assert total == 2
    assert [row.conversation_id for row in rows] == ["web_chat:angry", "web_chat:lost"]
    lost = rows[1]
    assert (lost.turns, lost.first_question, lost.channel) == (3, "do you take bitcoin", "web_chat")
    assert lost.counts == {"fallback": 2, "rephrase": 1, "low_confidence": 0, "choices": 0, "handoff": 1,
                           "negative_feedback": 0}
    assert rows[0].counts["negative_feedback"] == 1


def test_a_flag_filter_and_the_window_narrow_the_list(tmp_path: Path) -> None:
    engine = turn_log(tmp_path)
    log(engine, "c:old", 20, "ancient question", fallback=True)
    log(engine, "c:suggested", 2, "gift?", choices=True)
    log(engine, "c:unsure", 1, "hmm", low_confidence=True, confidence=0.4)
    assert [row.conversation_id for row in attention_page(engine, since(7), "choices", 1)[0]] == ["c:suggested"]
    assert [row.conversation_id for row in attention_page(engine, since(7), "low_confidence", 1)[0]] == ["c:unsure"]
    assert attention_page(engine, since(7), "fallback", 1) == ([], 0)
    (old,), total = attention_page(engine, since(30), "fallback", 1)
    assert (old.conversation_id, old.first_question, total) == ("c:old", "ancient question", 1)


def test_pages_hold_page_size_conversations(tmp_path: Path) -> None:
    engine = turn_log(tmp_path)
    for number in range(7):
        log(engine, f"c:{number}", 0, f"question {number}", seconds=number, rephrase=True)
    first, total = attention_page(engine, since(1), None, 1, page_size=3)
    third, _ = attention_page(engine, since(1), None, 3, page_size=3)
    assert total == 7
    assert [row.conversation_id for row in first] == ["c:6", "c:5", "c:4"]
    assert [row.conversation_id for row in third] == ["c:0"]
