"""Training-time warnings about data a bot owner should decide on, not errors that stop training.

Two mistakes make a support bot answer wrongly without failing anything:

* the same question is both an intent example and a knowledge-base question variant,
  so the intent and the approved answer compete for it (the owner must pick one);
* an intent has too few examples to be learnt reliably.

Both are reported through Rasa's `raise_warning`, so they show up in `rasa train` output
beside Rasa's own data warnings, naming the intent, the answer id and the text.
"""

import re
from collections import Counter
from typing import Dict, Iterable, List, Sequence, Text, Tuple

from rasa.shared.utils.io import raise_warning

# Below this many examples an intent is flagged (Rasa's own docs advise 5 to 10 at least).
MIN_EXAMPLES_PER_INTENT = 5
# Warnings listed one by one before the rest are summarised as a count.
MAX_LISTED = 20
_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = " \t?!.,;:'\"()"


def comparable(text: Text) -> Text:
    """A text as a customer would consider it the same question: case, spacing and end punctuation aside."""
    return _SPACES.sub(" ", text.casefold()).strip(_EDGE_PUNCTUATION)


def small_intents(intent_of_each_example: Iterable[Text], minimum: int = MIN_EXAMPLES_PER_INTENT) -> List[Tuple[Text, int]]:
    """The intents with fewer than `minimum` examples, with their counts, fewest first."""
    counts = Counter(intent_of_each_example)
    return sorted(((intent, count) for intent, count in counts.items() if count < minimum), key=lambda item: (item[1], item[0]))


def warn_small_intents(intent_of_each_example: Iterable[Text], minimum: int = MIN_EXAMPLES_PER_INTENT) -> List[Tuple[Text, int]]:
    """Warns about each intent with fewer than `minimum` examples; returns them."""
    found = small_intents(intent_of_each_example, minimum)
    if found:
        listed = ", ".join(f"'{intent}' ({count})" for intent, count in found[:MAX_LISTED])
        more = f" and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
        raise_warning(
            f"These intents have fewer than {minimum} training examples: {listed}{more}. The classifier "
            f"cannot learn them reliably; add at least {minimum} varied examples each to your NLU data "
            "(e.g. data/nlu.yml), or merge them into related intents."
        )
    return found


def shared_questions(
    intent_examples: Sequence[Tuple[Text, Text]], answer_questions: Sequence[Tuple[Text, Text]]
) -> List[Tuple[Text, Text, Text]]:
    """(text, intent, answer id) for each knowledge-base question that is also an intent example.

    `intent_examples` are (text, intent) pairs, `answer_questions` (text, answer id) pairs.
    One pass over each list: linear in the data.
    """
    intents_by_text: Dict[Text, Text] = {}
    for text, intent in intent_examples:
        intents_by_text.setdefault(comparable(text), intent)
    found = []
    for text, answer_id in answer_questions:
        intent = intents_by_text.get(comparable(text))
        if intent is not None:
            found.append((text, intent, answer_id))
    return found


def warn_shared_questions(
    intent_examples: Sequence[Tuple[Text, Text]], answer_questions: Sequence[Tuple[Text, Text]], knowledge_base: Text
) -> List[Tuple[Text, Text, Text]]:
    """Warns once per question that is both an intent example and a knowledge-base question."""
    found = shared_questions(intent_examples, answer_questions)
    if found:
        listed = "; ".join(
            f"'{text}' is an example of intent '{intent}' and a question of answer '{answer_id}'"
            for text, intent, answer_id in found[:MAX_LISTED]
        )
        more = f"; and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
        raise_warning(
            f"{len(found)} question(s) are both intent examples and knowledge-base questions "
            f"({knowledge_base}), so the intent and the approved answer compete for them: {listed}{more}. "
            "Decide which one should answer and remove the question from the other (the NLU data or the "
            "answer's `questions`)."
        )
    return found
