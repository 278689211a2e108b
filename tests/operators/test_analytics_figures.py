"""Analytics figures from a known set of turns, the charts drawn from them, and the clusters."""

from pathlib import Path

import pytest

from lepton_components.operators.analytics.charts import charts
from lepton_components.operators.analytics.clusters import CachingEncoder, cluster_texts, unanswered_texts
from lepton_components.operators.analytics.figures import report
from tests.operators.review_harness import WordEncoder
from tests.operators.turn_rows import TODAY, log, turn_log


@pytest.fixture
def engine(tmp_path: Path):
    engine = turn_log(tmp_path)
    # Yesterday: three conversations.
    log(engine, "c:a", 1, "hello", intent="greet")                       # contained
    log(engine, "c:a", 1, "gift cards?", seconds=5, faq_answered=True, feedback="up")
    log(engine, "c:b", 1, "do you take bitcoin", fallback=True, rephrase=True, kb_missed=True)
    log(engine, "c:b", 1, "bitcoin??", seconds=5, fallback=True, handoff=True, kb_missed=True, feedback="down")
    log(engine, "c:b", 1, "hi, agent here?", seconds=9, human=True)      # a person answers
    log(engine, "c:c", 1, "where is my parcel", faq_answered=True)
    # Today: c:b goes on with the person, c:d is new.
    log(engine, "c:b", 0, "thanks!", human=True)
    log(engine, "c:d", 0, "store hours", fallback=True)
    # Outside a 3-day window.
    log(engine, "c:e", 5, "old", fallback=True)
    return engine


def test_daily_figures_and_totals(engine) -> None:
    figures = report(engine, 3, today=TODAY)
    assert [day.isoformat() for day in figures.daily] == ["2024-05-28", "2024-05-29", "2024-05-30"]
    yesterday = figures.per_day[figures.daily[1]]
    assert (yesterday.conversations, yesterday.contained, yesterday.handed_off) == (3, 2, 1)
    assert (yesterday.bot_turns, yesterday.fallback_turns, yesterday.kb_answers) == (5, 2, 2)
    assert (yesterday.feedback_up, yesterday.feedback_down) == (1, 1)
    assert (yesterday.containment, yesterday.fallback_rate, yesterday.kb_answer_rate, yesterday.handoff_rate) == (
        0.6667, 0.4, 0.4, 0.3333,
    )
    today = figures.per_day[figures.daily[2]]
    # c:b is held by a person today: not contained, though the handoff was yesterday.
    assert (today.conversations, today.contained, today.handed_off, today.bot_turns) == (2, 1, 0, 1)
    empty = figures.per_day[figures.daily[0]]
    assert empty.conversations == 0 and empty.containment is None and empty.fallback_rate is None
    totals = figures.totals
    # Each conversation once over the window.
    assert (totals.conversations, totals.contained, totals.handed_off, totals.bot_turns) == (4, 3, 1, 6)
    assert (totals.containment, totals.fallback_rate, totals.kb_answer_rate) == (0.75, 0.5, 0.3333)


def test_the_json_figures(engine) -> None:
    data = report(engine, 3, today=TODAY).as_json()
    assert (data["from"], data["to"], data["days"]) == ("2024-05-28", "2024-05-30", 3)
    assert data["totals"]["conversations"] == 4 and data["totals"]["handoff_rate"] == 0.25
    assert [day["day"] for day in data["daily"]] == ["2024-05-28", "2024-05-29", "2024-05-30"]
    assert data["daily"][1]["feedback_down"] == 1 and data["daily"][0]["containment"] is None


def test_charts_draw_one_mark_per_day_with_data(engine) -> None:
    drawn = {chart.key: chart for chart in charts(report(engine, 3, today=TODAY))}
    assert list(drawn) == ["conversations", "containment", "fallback_rate", "kb_answer_rate", "handoff_rate", "feedback"]
    bars = drawn["conversations"].bars
    assert [bar.title for bar in bars] == ["2024-05-28: 0 conversations", "2024-05-29: 3 conversations",
                                           "2024-05-30: 2 conversations"]
    assert bars[1].height > bars[2].height > bars[0].height == 0
    # No rate on a day without conversations: the line starts on day two.
    assert [point.title for point in drawn["containment"].points] == ["2024-05-29: 66.7 %", "2024-05-30: 50.0 %"]
    assert len(drawn["containment"].lines) == 1
    assert [bar.series for bar in drawn["feedback"].bars].count("down") == 3


def test_unanswered_questions_are_the_failed_bot_turns_in_the_window(engine) -> None:
    since = TODAY.replace(day=28)
    assert unanswered_texts(engine, since) == ["store hours", "bitcoin??", "do you take bitcoin"]


def test_clusters_group_similar_questions_biggest_first() -> None:
    texts = [
        "sunday opening hours", "bitcoin payment accepted", "Bitcoin payment accepted", "what are sunday opening hours",
        "is bitcoin payment ok", "bitcoin payment possible", "opening hours on sunday", "lost my password",
    ]
    clusters = cluster_texts(texts, WordEncoder(), distance=0.5)
    assert [cluster.size for cluster in clusters] == [4, 3, 1]
    assert clusters[0].examples == ("bitcoin payment accepted", "is bitcoin payment ok", "bitcoin payment possible")
    assert set(clusters[1].examples) == {"sunday opening hours", "what are sunday opening hours", "opening hours on sunday"}
    assert clusters[2].examples == ("lost my password",)
    assert cluster_texts([], WordEncoder(), 0.5) == []
    (single,) = cluster_texts(["one question", "One  question"], WordEncoder(), 0.5)
    assert single.size == 2


class CountingEncoder(WordEncoder):
    def __init__(self) -> None:
        self.encoded: list = []

    def encode(self, texts):
        self.encoded.extend(texts)
        return super().encode(texts)


def test_a_page_view_encodes_only_questions_new_since_the_last() -> None:
    inner = CountingEncoder()
    cached = CachingEncoder(inner, capacity=3)
    first = cached.encode(["a b", "c d", "a b"])
    assert inner.encoded == ["a b", "c d"] and first.shape == (3, WordEncoder.dimension)
    again = cached.encode(["c d", "e f"])
    assert inner.encoded == ["a b", "c d", "e f"]
    assert (again[0] == first[1]).all()
    cached.encode(["g h"])  # over capacity: the least recently used ("a b") is forgotten
    cached.encode(["a b"])
    assert inner.encoded[-1] == "a b" and len(inner.encoded) == 5
