"""Turn-log rows for tests of review and analytics: a known set of turns on known days."""

import datetime
from pathlib import Path
from typing import Any, Text

import sqlalchemy as sa

from lepton_components.operators.analytics.turn_log import insert_turn
from lepton_components.operators.database import create_tables

TODAY = datetime.date(2024, 5, 30)
FLAG_COLUMNS = ("fallback", "rephrase", "low_confidence", "choices", "handoff", "faq_answered", "kb_missed", "human")


def turn_log(tmp_path: Path) -> sa.engine.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    create_tables(engine)
    return engine


def at(days_ago: int, seconds: float = 0.0) -> float:
    """Unix time of noon UTC `days_ago` days before TODAY, plus `seconds`."""
    noon = datetime.datetime.combine(TODAY - datetime.timedelta(days=days_ago), datetime.time(12), datetime.timezone.utc)
    return noon.timestamp() + seconds


def log(engine: sa.engine.Engine, conversation: Text, days_ago: int, text: Text = "a question", seconds: float = 0.0,
        **values: Any) -> None:
    """One customer message of `conversation`, with the given flags (others False)."""
    when = at(days_ago, seconds)
    row = {
        "conversation_id": conversation,
        "message_id": values.pop("message_id", None),
        "channel": values.pop("channel", "web_chat"),
        "at": when,
        "day": datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc).date(),
        "text": text,
        "intent": values.pop("intent", "nlu_fallback"),
        "confidence": values.pop("confidence", 0.9),
        "actions": "[]",
        "feedback": values.pop("feedback", None),
        **{flag: bool(values.pop(flag, False)) for flag in FLAG_COLUMNS},
    }
    assert not values, f"unknown columns {values}"
    insert_turn(engine, row)
