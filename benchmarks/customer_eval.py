"""End-to-end evaluation of what the customer sees: held-out messages sent to the trained bot.

    python -m benchmarks.customer_eval --model models --out docs/customer_eval.json

Every case of the held-out file (`bot/faq_paraphrases.yml`: knowledge-base questions,
intent questions, off-topic messages, questions asked inside the order number form, and
dialogue-memory conversations) is sent to the trained model through Rasa's own `Agent`,
in a fresh conversation with the default in-memory tracker store (no server, nothing
written to disk). Each reply is read back from the tracker's events and scored:

- right: the expected approved answer (recognised from the text the customer got, so
  whichever mechanism chose it) or the expected response, plus the turn's checks;
- deferred: a safe reply instead (rephrase, choices, out of scope, handoff, default);
- wrong: anything else, including silence. Off-topic messages are right when the bot
  says it is out of scope and deferred for other safe replies.

A conversation counts as its worst turn. The report gives right / deferred / wrong per
category against the issue's targets, every wrong case with the reply given and the
NLU's view of the message (intent confidence, retrieval candidates), and a diagnosis of
the knowledge-base misses. Missed targets do not fail the command: it is a benchmark.
"""

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import platform
import re
import statistics
import string
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Text, Tuple

import yaml

from lepton_components.retrieval.knowledge_base import Answer, load_knowledge_base
from lepton_components.training_data_checks import comparable

KNOWLEDGE_BASE, INTENTS, OFF_TOPIC, IN_FORM, MEMORY = "knowledge_base", "intents", "off_topic", "in_form", "memory"
CATEGORIES = (KNOWLEDGE_BASE, INTENTS, OFF_TOPIC, IN_FORM, MEMORY)
RIGHT, DEFERRED, WRONG = "right", "deferred", "wrong"
WORST_FIRST = (WRONG, DEFERRED, RIGHT)

ANSWER_RESPONSE = "utter_faq_answer"
OUT_OF_SCOPE_RESPONSE = "utter_out_of_scope"
# Replies that promise nothing wrong: the customer is asked again, offered choices, told
# the bot cannot help, or handed to a person.
SAFE_RESPONSES = frozenset(
    {
        "utter_please_rephrase",
        "utter_faq_suggest_2",
        "utter_faq_suggest_3",
        OUT_OF_SCOPE_RESPONSE,
        "utter_handoff",
        "utter_default",
    }
)
# Rasa's convention for the response a form asks a slot with.
ASK_PREFIX = "utter_ask_"
FORM_CHECKS = ("asks_again", "closed")
TURN_KEYS = frozenset({"text", "answer_id", "response", "mentions", "form", "slots"})


@dataclasses.dataclass(frozen=True)
class Target:
    """The issue's goal for a category; `safe` is right + deferred (not answered topically)."""

    min_right: Optional[float] = None
    max_wrong: Optional[float] = None
    min_safe: Optional[float] = None

    def describe(self) -> Text:
        parts = []
        if self.min_right is not None:
            parts.append(f"right >= {self.min_right:.0%}")
        if self.max_wrong is not None:
            parts.append(f"wrong <= {self.max_wrong:.0%}")
        if self.min_safe is not None:
            parts.append(f"not topical >= {self.min_safe:.0%}")
        return ", ".join(parts)

    def met(self, rates: Dict[Text, float]) -> bool:
        return (
            (self.min_right is None or rates[RIGHT] >= self.min_right)
            and (self.max_wrong is None or rates[WRONG] <= self.max_wrong)
            and (self.min_safe is None or rates[RIGHT] + rates[DEFERRED] >= self.min_safe)
        )


# Issue 14: knowledge base >= 90% right and <= 5% wrong, intents >= 97% right, off-topic
# >= 95% never answered topically, in the form >= 90% answered with the form resuming;
# the dialogue-memory conversations must all pass.
TARGETS = {
    KNOWLEDGE_BASE: Target(min_right=0.90, max_wrong=0.05),
    INTENTS: Target(min_right=0.97),
    OFF_TOPIC: Target(min_safe=0.95),
    IN_FORM: Target(min_right=0.90),
    MEMORY: Target(min_right=1.0),
}


class HeldOutError(ValueError):
    """The held-out file cannot be used; the message names the entry and the fix."""


@dataclasses.dataclass(frozen=True)
class Expectation:
    answer_id: Optional[Text] = None
    response: Optional[Text] = None
    off_topic: bool = False
    mentions: Optional[Text] = None
    form: Optional[Text] = None
    slots: Dict[Text, Text] = dataclasses.field(default_factory=dict)

    def describe(self) -> Text:
        if self.off_topic:
            return "no topical answer"
        parts = [f"answer {self.answer_id}" if self.answer_id else self.response or "any reply"]
        if self.mentions:
            parts.append(f"mentioning {self.mentions}")
        if self.form:
            parts.append(f"form {self.form}")
        if self.slots:
            parts.append(f"slots {self.slots}")
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Turn:
    text: Text
    expect: Expectation


@dataclasses.dataclass(frozen=True)
class Case:
    category: Text
    index: int
    turns: Tuple[Turn, ...]


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One bot message as the customer got it."""

    response: Optional[Text]  # the `utter_action` Rasa records in the event's metadata
    text: Text
    action: Optional[Text] = None  # the action that uttered it (a form, for its questions)
    policy: Optional[Text] = None
    answer_id: Optional[Text] = None  # for approved answers: which one, read from the text
    choice_ids: Tuple[Text, ...] = ()  # for buttons that send knowledge-base questions

    def describe(self) -> Text:
        name = f"{self.response} ({self.answer_id})" if self.answer_id else str(self.response)
        if self.choice_ids:
            name += f" [choices: {', '.join(self.choice_ids)}]"
        return f'{name}: "{shorten(self.text)}"'


@dataclasses.dataclass(frozen=True)
class Reply:
    """Everything the bot did in one turn, and its state afterwards."""

    utterances: Tuple[Utterance, ...]
    active_loop: Optional[Text] = None
    requested_slot: Optional[Text] = None
    slots: Dict[Text, Any] = dataclasses.field(default_factory=dict)
    parse: Dict[Text, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TurnScore:
    outcome: Text
    reason: Text = ""
    main_right: bool = False


def shorten(text: Text, limit: int = 90) -> Text:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the held-out file ------------------------------------------------------------------


def load_cases(path: Path) -> List[Case]:
    """Reads every section of the held-out file into cases, in file order."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise HeldOutError(f"{path}: must be a mapping with `paraphrases`, `intents`, `off_topic`, `in_form`, `memory`.")
    sections = {"paraphrases": KNOWLEDGE_BASE, INTENTS: INTENTS, OFF_TOPIC: OFF_TOPIC, IN_FORM: IN_FORM, MEMORY: MEMORY}
    missing = [name for name in sections if not isinstance(document.get(name), list)]
    if missing:
        raise HeldOutError(f"{path}: the sections {missing} are missing or not lists. Add them (see the file's header).")
    cases: List[Case] = []
    for section, category in sections.items():
        count = 0
        for position, entry in enumerate(document[section]):
            where = f"{path}: {section}[{position}]"
            if category in (IN_FORM, MEMORY):
                if not isinstance(entry, dict) or not isinstance(entry.get("turns"), list) or not entry["turns"]:
                    raise HeldOutError(f"{where}: a conversation needs `turns:`, a non-empty list of turns.")
                turns = tuple(_turn(turn, f"{where}.turns[{i}]") for i, turn in enumerate(entry["turns"]))
            elif category == KNOWLEDGE_BASE:
                if isinstance(entry, dict) and entry.get("answer_id") is None:
                    continue  # the knowledge base has no answer: used by faq_eval only
                turns = (_turn(entry, where),)
                if not turns[0].expect.answer_id:
                    raise HeldOutError(f"{where}: a knowledge-base question needs `answer_id`.")
            elif category == INTENTS:
                turns = (_turn(entry, where),)
                if not turns[0].expect.response:
                    raise HeldOutError(f"{where}: an intent question needs `response: utter_...`.")
            else:
                turn = _turn(entry, where)
                if turn.expect != Expectation():
                    raise HeldOutError(f"{where}: an off-topic message takes only `text`.")
                turns = (Turn(turn.text, Expectation(off_topic=True)),)
            cases.append(Case(category, count, turns))
            count += 1
    return cases


def _turn(entry: Any, where: Text) -> Turn:
    if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or not entry["text"].strip():
        raise HeldOutError(f"{where}: each turn is a mapping with a non-empty `text`.")
    unknown = set(entry) - TURN_KEYS
    if unknown:
        raise HeldOutError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(TURN_KEYS)}.")
    if entry.get("answer_id") and entry.get("response"):
        raise HeldOutError(f"{where}: expect either `answer_id` or `response`, not both.")
    if entry.get("form") is not None and entry["form"] not in FORM_CHECKS:
        raise HeldOutError(f"{where}: `form` must be one of {FORM_CHECKS}, got {entry['form']!r}.")
    slots = entry.get("slots") or {}
    if not isinstance(slots, dict):
        raise HeldOutError(f"{where}: `slots` must map slot names to values, e.g. {{order_number: LP-123456}}.")
    return Turn(
        entry["text"],
        Expectation(
            answer_id=entry.get("answer_id"),
            response=entry.get("response"),
            mentions=None if entry.get("mentions") is None else str(entry["mentions"]),
            form=entry.get("form"),
            slots={str(k): str(v) for k, v in slots.items()},
        ),
    )


def all_texts(cases: Iterable[Case]) -> List[Text]:
    return [turn.text for case in cases for turn in case.turns]


def unknown_references(cases: Iterable[Case], answer_ids: Iterable[Text], responses: Iterable[Text]) -> List[Text]:
    """Expected answers missing from the knowledge base and responses missing from the domain."""
    answer_ids, responses = set(answer_ids), set(responses)
    problems = []
    for case in cases:
        for turn in case.turns:
            if turn.expect.answer_id and turn.expect.answer_id not in answer_ids:
                problems.append(f"{case.category}[{case.index}] {turn.text!r}: no answer `{turn.expect.answer_id}`")
            if turn.expect.response and turn.expect.response not in responses:
                problems.append(f"{case.category}[{case.index}] {turn.text!r}: no response `{turn.expect.response}`")
    return problems


def training_overlap(texts: Iterable[Text], training_texts: Iterable[Text]) -> List[Text]:
    """Held-out texts that are also training texts, compared as a customer would (case, spacing, end punctuation aside)."""
    seen = {comparable(text) for text in training_texts}
    return [text for text in texts if comparable(text) in seen]


# --- reading the bot's replies ----------------------------------------------------------


class AnswerMatcher:
    """Tells which approved answer a text is, whatever values filled its placeholders."""

    def __init__(self, answers: Sequence[Answer]) -> None:
        self._patterns = [
            (answer.id, _template_pattern(template))
            for answer in answers
            for template in (answer.template, *answer.channel_templates.values())
        ]
        self._ids_by_question = {comparable(q): answer.id for answer in answers for q in answer.questions}

    def answer_of(self, text: Text) -> Optional[Text]:
        """The id of the single answer whose template renders to `text`, else None."""
        found = {answer_id for answer_id, pattern in self._patterns if pattern.fullmatch(text or "")}
        return found.pop() if len(found) == 1 else None

    def question_owner(self, question: Text) -> Optional[Text]:
        return self._ids_by_question.get(comparable(question or ""))


def _template_pattern(template: Text) -> "re.Pattern[Text]":
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(".+?")
    return re.compile("".join(parts), re.DOTALL)


def observe(tracker: Any, start: int, matcher: AnswerMatcher) -> Reply:
    """What happened in the tracker from event `start` on: one customer message and the bot's turn."""
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered

    utterances: List[Utterance] = []
    parse: Dict[Text, Any] = {}
    action: Optional[ActionExecuted] = None
    for event in list(tracker.events)[start:]:
        if isinstance(event, UserUttered):
            parse = parse_summary(event.parse_data or {})
        elif isinstance(event, ActionExecuted):
            action = event
        elif isinstance(event, BotUttered):
            response = (event.metadata or {}).get("utter_action")
            buttons = (event.data or {}).get("buttons") or []
            choices = tuple(
                owner for owner in (matcher.question_owner(b.get("payload", "")) for b in buttons) if owner
            )
            utterances.append(
                Utterance(
                    response=response,
                    text=event.text or "",
                    action=action.action_name if action else None,
                    policy=action.policy if action else None,
                    answer_id=matcher.answer_of(event.text or "") if response == ANSWER_RESPONSE else None,
                    choice_ids=choices,
                )
            )
    slots = tracker.current_slot_values()
    return Reply(
        utterances=tuple(utterances),
        active_loop=tracker.active_loop_name,
        requested_slot=slots.get("requested_slot"),
        slots=slots,
        parse=parse,
    )


def parse_summary(parse_data: Dict[Text, Any]) -> Dict[Text, Any]:
    """The parts of the NLU result that explain a decision: intent scores and retrieval candidates."""
    ranking = parse_data.get("intent_ranking") or []
    return {
        "intent": (parse_data.get("intent") or {}).get("name"),
        "confidence": round(float((parse_data.get("intent") or {}).get("confidence") or 0.0), 4),
        "runner_up": [ranking[1].get("name"), round(float(ranking[1].get("confidence") or 0.0), 4)]
        if len(ranking) > 1
        else None,
        "candidates": [
            [c.get("id"), round(float(c.get("score") or 0.0), 4)] for c in parse_data.get("answer_candidates") or []
        ],
        "entities": [[e.get("entity"), e.get("value")] for e in parse_data.get("entities") or []],
    }


# --- scoring ----------------------------------------------------------------------------


def score_turn(expect: Expectation, reply: Reply) -> TurnScore:
    """Scores one turn: its first bot message against the expected reply, then the turn's checks."""
    first = reply.utterances[0] if reply.utterances else None
    if expect.off_topic:
        if first is None:
            return TurnScore(WRONG, "no reply")
        if first.response == OUT_OF_SCOPE_RESPONSE:
            return TurnScore(RIGHT, main_right=True)
        if first.response in SAFE_RESPONSES:
            return TurnScore(DEFERRED, f"deferred with {first.describe()}", main_right=True)
        return TurnScore(WRONG, f"topical reply {first.describe()}")
    if expect.answer_id or expect.response:
        if first is None:
            return TurnScore(WRONG, f"expected {expect.describe()}, got no reply")
        right = (
            first.response == ANSWER_RESPONSE and first.answer_id == expect.answer_id
            if expect.answer_id
            else first.response == expect.response
        )
        if not right:
            outcome = DEFERRED if first.response in SAFE_RESPONSES else WRONG
            return TurnScore(outcome, f"expected {expect.describe()}, got {first.describe()}")
    problems = check_turn(expect, reply)
    if problems:
        return TurnScore(WRONG, "; ".join(problems), main_right=bool(expect.answer_id or expect.response))
    return TurnScore(RIGHT, main_right=True)


def check_turn(expect: Expectation, reply: Reply) -> List[Text]:
    """The turn-wide checks that failed: mentioned text, the form's state, slot values."""
    problems = []
    texts = " ".join(u.text for u in reply.utterances)
    if expect.mentions and expect.mentions.casefold() not in texts.casefold():
        problems.append(f"reply does not mention {expect.mentions}: {[u.describe() for u in reply.utterances]}")
    if expect.form == "asks_again":
        last = reply.utterances[-1].response if reply.utterances else None
        if reply.active_loop is None or last != f"{ASK_PREFIX}{reply.requested_slot}":
            problems.append(
                f"form did not ask again (active form {reply.active_loop}, last reply {last}, "
                f"requested slot {reply.requested_slot})"
            )
    if expect.form == "closed":
        asked = [u.response for u in reply.utterances if (u.response or "").startswith(ASK_PREFIX)]
        if reply.active_loop is not None or asked:
            problems.append(f"form still open (active form {reply.active_loop}, asked {asked})")
    for slot, value in expect.slots.items():
        actual = reply.slots.get(slot)
        if actual is None or str(actual).casefold() != value.casefold():
            problems.append(f"slot {slot} is {actual!r}, expected {value!r}")
    return problems


def score_case(case: Case, replies: Sequence[Reply]) -> Dict[Text, Any]:
    """A conversation's outcome is its worst turn's; every turn is kept for the report."""
    turns = []
    for turn, reply in zip(case.turns, replies):
        score = score_turn(turn.expect, reply)
        turns.append(
            {
                "text": turn.text,
                "expected": turn.expect.describe(),
                "outcome": score.outcome,
                "reason": score.reason,
                "main_right": score.main_right,
                "form_check": turn.expect.form,
                "replies": [{**dataclasses.asdict(u), "text": shorten(u.text, 120)} for u in reply.utterances],
                "active_form": reply.active_loop,
                "parse": reply.parse,
            }
        )
    outcome = next(o for o in WORST_FIRST if any(t["outcome"] == o for t in turns))
    worst = next((i for i, t in enumerate(turns) if t["outcome"] == outcome), 0)
    return {
        "category": case.category,
        "index": case.index,
        "outcome": outcome,
        "reason": f"turn {worst + 1}: {turns[worst]['reason']}" if turns[worst]["reason"] else "",
        "expected_answer": case.turns[0].expect.answer_id,
        "turns": turns,
    }


def summarise(results: Sequence[Dict[Text, Any]]) -> Dict[Text, Dict[Text, Any]]:
    summary: Dict[Text, Dict[Text, Any]] = {}
    for category in CATEGORIES:
        scored = [r for r in results if r["category"] == category]
        if not scored:
            continue
        counts = {o: sum(r["outcome"] == o for r in scored) for o in (RIGHT, DEFERRED, WRONG)}
        rates = {o: counts[o] / len(scored) for o in counts}
        target = TARGETS[category]
        summary[category] = {
            "cases": len(scored),
            "turns": sum(len(r["turns"]) for r in scored),
            **counts,
            "rates": {o: round(v, 4) for o, v in rates.items()},
            "target": target.describe(),
            "target_met": target.met(rates),
        }
        if category == IN_FORM:
            questions = [t for r in scored for t in r["turns"] if t["form_check"] == "asks_again"]
            summary[category]["questions_answered"] = sum(t["main_right"] for t in questions)
            summary[category]["answered_and_form_asked_again"] = sum(t["outcome"] == RIGHT for t in questions)
    return summary


def candidate_recall(results: Sequence[Dict[Text, Any]]) -> Dict[Text, Any]:
    """Recall@1 and @3 of the parse's `answer_candidates` on every knowledge-base question,
    whatever the bot replied: how often the NLU ranks the right approved answer first."""
    ranks = []
    for result in results:
        if result["category"] != KNOWLEDGE_BASE:
            continue
        ids = [candidate[0] for candidate in result["turns"][0]["parse"]["candidates"]]
        ranks.append(ids.index(result["expected_answer"]) + 1 if result["expected_answer"] in ids else None)
    if not ranks:
        return {}
    return {
        "questions": len(ranks),
        "recall_at_1": round(sum(rank == 1 for rank in ranks) / len(ranks), 3),
        "recall_at_3": round(sum(rank is not None and rank <= 3 for rank in ranks) / len(ranks), 3),
    }


def diagnose_knowledge_base(results: Sequence[Dict[Text, Any]]) -> Dict[Text, Any]:
    """Why knowledge-base questions miss: the retriever's view against the intent's, from parse data."""
    misses = [r for r in results if r["category"] == KNOWLEDGE_BASE and r["outcome"] != RIGHT]
    rows = []
    for result in misses:
        turn = result["turns"][0]
        ids = [c[0] for c in turn["parse"]["candidates"]]
        scores = dict((c[0], c[1]) for c in turn["parse"]["candidates"])
        first = turn["replies"][0] if turn["replies"] else {}
        rows.append(
            {
                "among_choices": result["expected_answer"] in (first.get("choice_ids") or ()),
                "rank": ids.index(result["expected_answer"]) + 1 if result["expected_answer"] in ids else None,
                "expected_score": scores.get(result["expected_answer"]),
                "intent_confidence": turn["parse"]["confidence"],
                "captured_by_intent": bool(first) and first.get("response") not in SAFE_RESPONSES | {ANSWER_RESPONSE},
            }
        )
    captured = [row for row in rows if row["captured_by_intent"]]

    def median(values: List[Optional[float]]) -> Optional[float]:
        present = [v for v in values if v is not None]
        return round(statistics.median(present), 3) if present else None

    return {
        "not_right": len(rows),
        "right_answer_ranked_first": sum(row["rank"] == 1 for row in rows),
        "right_answer_in_candidates": sum(row["rank"] is not None for row in rows),
        "deferred_with_right_answer_among_choices": sum(row["among_choices"] for row in rows),
        "captured_by_an_intent_response": len(captured),
        "captured_with_right_answer_ranked_first": sum(row["rank"] == 1 for row in captured),
        "captured_median_intent_confidence": median([row["intent_confidence"] for row in captured]),
        "captured_median_right_answer_score": median([row["expected_score"] for row in captured]),
        "captured_intent_confidence_at_least_0.8": sum(row["intent_confidence"] >= 0.8 for row in captured),
        "median_right_answer_score_all_misses": median([row["expected_score"] for row in rows]),
    }


# --- running the bot --------------------------------------------------------------------


async def run_case(agent: Any, case: Case, matcher: AnswerMatcher) -> List[Reply]:
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    sender = f"customer-eval-{uuid.uuid4().hex}"
    replies = []
    for turn in case.turns:
        before = await agent.tracker_store.retrieve_full_tracker(sender)
        start = len(before.events) if before else 0
        await agent.handle_message(UserMessage(turn.text, CollectingOutputChannel(), sender))
        replies.append(observe(await agent.tracker_store.retrieve_full_tracker(sender), start, matcher))
    return replies


async def evaluate(agent: Any, cases: Sequence[Case], matcher: AnswerMatcher) -> List[Dict[Text, Any]]:
    return [score_case(case, await run_case(agent, case, matcher)) for case in cases]


def load_agent(model: Text) -> Tuple[Any, Path]:
    from rasa.core.agent import Agent
    from rasa.model import get_latest_model

    path = Path(model)
    archive = get_latest_model(str(path)) if path.is_dir() else (str(path) if path.is_file() else None)
    if not archive:
        raise SystemExit(f"No trained model at {model}. Run `make train`, or pass --model <model .tar.gz or folder>.")
    # Default stores: in memory, so the evaluation writes no conversations anywhere.
    return Agent.load(archive), Path(archive)


# --- report -----------------------------------------------------------------------------

LABELS = {
    KNOWLEDGE_BASE: "knowledge-base questions",
    INTENTS: "intent questions",
    OFF_TOPIC: "off-topic",
    IN_FORM: "inside the order form",
    MEMORY: "dialogue memory",
}


def markdown_table(summary: Dict[Text, Dict[Text, Any]]) -> Text:
    lines = [
        "| category | cases (turns) | right | deferred | wrong | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for category, row in summary.items():
        cells = [f"{row['rates'][o]:.1%} ({row[o]})" for o in (RIGHT, DEFERRED, WRONG)]
        lines.append(
            f"| {LABELS[category]} | {row['cases']} ({row['turns']}) | {' | '.join(cells)} | "
            f"{row['target']} | {'yes' if row['target_met'] else '**no**'} |"
        )
    return "\n".join(lines)


def wrong_cases_text(results: Sequence[Dict[Text, Any]]) -> Text:
    lines = []
    for result in results:
        if result["outcome"] != WRONG:
            continue
        lines.append(f"- [{result['category']} {result['index']}] {result['reason']}")
        for number, turn in enumerate(result["turns"], start=1):
            parse = turn["parse"]
            candidates = ", ".join(f"{i} {s:.2f}" for i, s in parse.get("candidates", []))
            lines.append(
                f"    {number}. {turn['text']!r} -> {turn['outcome']}; intent {parse.get('intent')} "
                f"{parse.get('confidence', 0):.2f}; candidates: {candidates or 'none'}"
            )
    return "\n".join(lines)


def report_json(report: Dict[Text, Any]) -> Text:
    """Indented JSON with one line per case, so a rerun's diff shows which cases changed."""
    head = {key: value for key, value in report.items() if key != "cases"}
    cases = ",\n  ".join(json.dumps(case, ensure_ascii=False) for case in report["cases"])
    return json.dumps(head, indent=1, ensure_ascii=False)[:-2] + f',\n "cases": [\n  {cases}\n ]\n}}\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models", help="model archive, or a folder whose latest archive is used")
    parser.add_argument("--held-out", type=Path, default=Path("bot/faq_paraphrases.yml"))
    parser.add_argument("--knowledge-base", type=Path, default=Path("data/faq.yml"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--out", type=Path, default=None, help="write the summary and every case as JSON")
    args = parser.parse_args()

    try:
        cases = load_cases(args.held_out)
        answers = load_knowledge_base(args.knowledge_base)
    except (HeldOutError, ValueError) as error:
        raise SystemExit(str(error)) from error
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # else Rasa's debug events of every turn go to stdout
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    agent, archive = load_agent(args.model)
    problems = unknown_references(cases, [a.id for a in answers], agent.domain.responses)
    if problems:
        raise SystemExit("The held-out file expects answers or responses the bot does not have:\n" + "\n".join(problems))
    started = time.perf_counter()
    results = asyncio.run(evaluate(agent, cases, AnswerMatcher(answers)))
    seconds = time.perf_counter() - started
    summary = summarise(results)
    diagnosis = diagnose_knowledge_base(results)
    recall = candidate_recall(results)

    print(markdown_table(summary))
    print(f"\n{sum(len(c.turns) for c in cases)} turns in {len(cases)} conversations, {seconds:.0f} s.")
    print("\nKnowledge-base candidates:", json.dumps(recall))
    print("Knowledge-base misses:", json.dumps(diagnosis))
    print("\nWrong:\n" + (wrong_cases_text(results) or "none"))
    if args.out:
        report = {
            "date": time.strftime("%Y-%m-%d"),
            "model": archive.name,
            "held_out": str(args.held_out),
            "knowledge_base": str(args.knowledge_base),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
            "seconds": round(seconds, 1),
            "summary": summary,
            "knowledge_base_candidates": recall,
            "knowledge_base_misses": diagnosis,
            "cases": results,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report_json(report), encoding="utf-8")
        print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
