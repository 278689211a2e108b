"""The open-set threshold for a trained bot, from questions it never trained on.

    python -m benchmarks.open_set_calibration --model models

Parses the calibration paraphrases of `bot/faq_paraphrases.yml` (the first three per answer,
the questions FaqAnswerPolicy's thresholds were chosen on; the rest of the file stays
untouched for `make eval`) with the trained model and prints the `alpha` quantile of their
`open_set_score`: JointNluComponent's `open_set_threshold` that turns away about `alpha` of
in-scope questions, the rule CLINC150 measured without any out-of-scope example
(docs/benchmarks.md). Set the printed value in config.yml.
"""

import argparse
import asyncio
import json
from pathlib import Path
from typing import Dict, List, Text

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
CALIBRATION_PER_ANSWER = 3


def calibration_questions(path: Path) -> List[Text]:
    """The first `CALIBRATION_PER_ANSWER` paraphrases of every answer, in file order."""
    seen: Dict[Text, int] = {}
    questions = []
    for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["paraphrases"]:
        answer = entry.get("answer_id")
        if answer is None:
            continue
        seen[answer] = seen.get(answer, 0) + 1
        if seen[answer] <= CALIBRATION_PER_ANSWER:
            questions.append(entry["text"])
    return questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models", help="model archive or folder (make train)")
    parser.add_argument("--paraphrases", type=Path, default=REPO / "bot" / "faq_paraphrases.yml")
    parser.add_argument("--alpha", type=float, default=0.05, help="share of in-scope questions to turn away")
    args = parser.parse_args()

    from rasa.core.agent import Agent
    from rasa.model import get_local_model

    agent = Agent.load(get_local_model(str(args.model)))
    questions = calibration_questions(args.paraphrases)

    async def scores() -> List[float]:
        parsed = [await agent.parse_message(question) for question in questions]
        if any("open_set_score" not in p for p in parsed):
            raise SystemExit("The model writes no `open_set_score`: it needs JointNluComponent (config.yml).")
        return [p["open_set_score"] for p in parsed]

    values = np.array(asyncio.run(scores()))
    threshold = float(np.quantile(values, args.alpha))
    print(
        json.dumps(
            {
                "questions": len(values),
                "alpha": args.alpha,
                "open_set_threshold": round(threshold, 2),
                "lowest_scores": [round(float(v), 4) for v in np.sort(values)[:5]],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
