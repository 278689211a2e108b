"""Evaluates FAQ retrieval on held-out paraphrases: recall@1/@3, MRR and a threshold sweep plot.

    python -m benchmarks.faq_eval --knowledge-base data/faq.yml \
        --paraphrases bot/faq_paraphrases.yml --plot docs/faq_threshold_sweep.png

Uses the same index and encoder code as the FaqRetriever component in the bot.
"""

import argparse
import json
from pathlib import Path
from typing import List, Optional, Text

import numpy as np
import yaml

from lepton_components.backbone import resolve_backbone_path
from lepton_components.retrieval.evaluation import RankedResult, mean_reciprocal_rank, recall_at, threshold_sweep
from lepton_components.retrieval.knowledge_base import load_knowledge_base, question_rows
from lepton_components.retrieval.sentence_encoder import SentenceEncoder
from lepton_components.retrieval.vector_index import best_per_owner, build_index, search


def evaluate(knowledge_base: Path, paraphrases: Path, index_type: Text, model: Optional[Text]) -> dict:
    answers = load_knowledge_base(knowledge_base)
    entries = yaml.safe_load(paraphrases.read_text(encoding="utf-8"))["paraphrases"]
    encoder = SentenceEncoder(resolve_backbone_path(model, "faq_eval"))
    questions, owners = question_rows(answers)
    index = build_index(encoder.encode(questions), index_type)
    scores, rows = search(index, encoder.encode([e["text"] for e in entries]), 10 * len(answers))
    results: List[RankedResult] = []
    for entry, score_row, id_row in zip(entries, scores, rows):
        ranked = best_per_owner(score_row, id_row, owners, limit=len(answers))
        results.append(
            RankedResult(entry.get("answer_id"), [answers[o].id for o, _, _ in ranked], [s for _, s, _ in ranked])
        )
    sweep = threshold_sweep(results, np.round(np.arange(0.0, 1.0001, 0.05), 2))
    return {
        "answers": len(answers),
        "questions": len(questions),
        "paraphrases": len(results),
        "unanswerable": sum(r.expected is None for r in results),
        "recall@1": recall_at(results, 1),
        "recall@3": recall_at(results, 3),
        "mrr": mean_reciprocal_rank(results),
        "sweep": sweep,
    }


def plot(sweep: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = [row["threshold"] for row in sweep]
    figure, axis = plt.subplots(figsize=(7, 4))
    for key, label in (("correct", "answered correctly"), ("wrong", "answered wrongly"), ("deferred", "deferred")):
        axis.plot(thresholds, [row[key] for row in sweep], marker="o", markersize=3, label=label)
    axis.set_xlabel("answer threshold (cosine score of the best candidate)")
    axis.set_ylabel("share of held-out paraphrases")
    axis.set_title("FAQ retrieval: threshold sweep")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--knowledge-base", type=Path, default=Path("data/faq.yml"))
    parser.add_argument("--paraphrases", type=Path, default=Path("bot/faq_paraphrases.yml"))
    parser.add_argument("--index-type", default="flat", choices=["flat", "hnsw", "ivf"])
    parser.add_argument("--model", default=None, help="sentence encoder folder (default: packaged MiniLM)")
    parser.add_argument("--plot", type=Path, default=None, help="write the threshold sweep as a PNG")
    parser.add_argument("--json", type=Path, default=None, help="write all numbers as JSON")
    args = parser.parse_args()
    report = evaluate(args.knowledge_base, args.paraphrases, args.index_type, args.model)
    print(
        f"{report['paraphrases']} paraphrases ({report['unanswerable']} unanswerable) against "
        f"{report['answers']} answers / {report['questions']} questions"
    )
    print(f"recall@1 {report['recall@1']:.3f}   recall@3 {report['recall@3']:.3f}   MRR {report['mrr']:.3f}")
    print("threshold  correct  wrong  deferred")
    for row in report["sweep"]:
        print(f"{row['threshold']:>9.2f}  {row['correct']:>7.3f}  {row['wrong']:>5.3f}  {row['deferred']:>8.3f}")
    if args.plot:
        plot(report["sweep"], args.plot)
        print(f"plot written to {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
