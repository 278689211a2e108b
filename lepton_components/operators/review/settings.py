"""The `review` settings of the console's credentials entry, checked at start-up.

    lepton_components.operators.console.OperatorConsoleInput:
      review:
        low_confidence: 0.6             # intent confidence below this flags a turn
        nlu_file: data/reviewed/nlu.yml # where intent annotations are written
        cluster_distance: 0.35          # cosine distance that still joins two questions

The review and analytics parts both read them: the turn log flags low confidence with
`low_confidence`, the analytics page groups unanswered questions with `cluster_distance`.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Text

from rasa.shared.exceptions import InvalidConfigException

from lepton_components.operators.settings import CREDENTIALS_KEY

KNOWN_KEYS = ("low_confidence", "nlu_file", "cluster_distance")


def _problem(message: Text) -> InvalidConfigException:
    return InvalidConfigException(f"{CREDENTIALS_KEY} in credentials.yml, `review`: {message}")


def _fraction(values: Dict[Text, Any], key: Text, default: float, example: float) -> float:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise _problem(f"`{key}` must be a number between 0 and 1 (exclusive), e.g. `{key}: {example}`; got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class ReviewSettings:
    """What review and analytics need to know beyond the model."""

    low_confidence: float = 0.6
    nlu_file: Path = Path("data/reviewed/nlu.yml")
    cluster_distance: float = 0.35

    @classmethod
    def from_dict(cls, values: Optional[Dict[Text, Any]]) -> "ReviewSettings":
        values = dict(values or {})
        unknown = sorted(set(values) - set(KNOWN_KEYS))
        if unknown:
            raise _problem(f"unknown keys {unknown}; the keys are {list(KNOWN_KEYS)} (docs/operators.md).")
        nlu_file = values.get("nlu_file", str(cls.nlu_file))
        if not isinstance(nlu_file, str) or not nlu_file.strip() or not nlu_file.endswith((".yml", ".yaml")):
            raise _problem(
                "`nlu_file` must be the path of a .yml file inside the training data folder, e.g. "
                f"`nlu_file: data/reviewed/nlu.yml` (so `rasa train --data data` reads it); got {nlu_file!r}."
            )
        return cls(
            low_confidence=_fraction(values, "low_confidence", cls.low_confidence, 0.6),
            nlu_file=Path(nlu_file.strip()),
            cluster_distance=_fraction(values, "cluster_distance", cls.cluster_distance, 0.35),
        )
