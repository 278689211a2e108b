"""Checks for component configuration that fail early with messages a bot author can act on.

Rasa passes a component its defaults updated with whatever the user wrote in ``config.yml``.
A typo such as ``epoch: 5`` would silently train with the default, so unknown keys are
refused with a suggestion, and every value is checked before any model is loaded.
"""

import difflib
from typing import Any, Collection, Dict, Optional, Text

from rasa.shared.exceptions import InvalidConfigException

# Keys Rasa itself adds to component configs (`rasa train --finetune`, graph schema).
RASA_INJECTED_KEYS = frozenset({"finetuning_epoch_fraction", "name", "class"})


def _example(component: Text, key: Text, example_value: Any) -> Text:
    return (
        "For example, in config.yml:\n"
        "  pipeline:\n"
        f"  - name: {component}\n"
        f"    {key}: {example_value}"
    )


def check_unknown_keys(
    component: Text, config: Dict[Text, Any], known_keys: Collection[Text]
) -> None:
    """Raises when the config holds a key the component does not read."""
    for key in config:
        if key in known_keys or key in RASA_INJECTED_KEYS:
            continue
        close = difflib.get_close_matches(key, list(known_keys), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise InvalidConfigException(
            f"{component} got the unknown config key `{key}`.{hint} "
            f"Known keys are: {', '.join(sorted(known_keys))}. "
            f"Remove or rename the key in config.yml."
        )


def check_choice(
    component: Text, key: Text, value: Any, allowed: Collection[Any]
) -> None:
    """Raises unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        choices = ", ".join(repr(choice) for choice in allowed)
        raise InvalidConfigException(
            f"{component}: `{key}` must be one of {choices}, got {value!r}. "
            + _example(component, key, next(iter(allowed)))
        )


def check_number(
    component: Text,
    key: Text,
    value: Any,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    integer: bool = False,
    minimum_inclusive: bool = True,
    example: Any = None,
) -> None:
    """Raises unless ``value`` is a number (an integer if asked) inside the given range."""
    expected = "an integer" if integer else "a number"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (integer and not isinstance(value, int)):
        raise InvalidConfigException(
            f"{component}: `{key}` must be {expected}, got {value!r}. "
            + _example(component, key, example if example is not None else minimum)
        )
    below = minimum is not None and (
        value < minimum if minimum_inclusive else value <= minimum
    )
    above = maximum is not None and value > maximum
    if below or above:
        low = "" if minimum is None else f"{'>=' if minimum_inclusive else '>'} {minimum}"
        high = "" if maximum is None else f"<= {maximum}"
        bounds = " and ".join(part for part in (low, high) if part)
        raise InvalidConfigException(
            f"{component}: `{key}` must be {expected} {bounds}, got {value!r}. "
            + _example(component, key, example if example is not None else minimum)
        )


def check_string_list(component: Text, key: Text, value: Any, example: Any) -> None:
    """Raises unless ``value`` is a non-empty list of strings."""
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise InvalidConfigException(
            f"{component}: `{key}` must be a non-empty list of names, got {value!r}. "
            + _example(component, key, example)
        )


def check_text(component: Text, key: Text, value: Any, example: Any) -> None:
    """Raises unless ``value`` is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidConfigException(
            f"{component}: `{key}` must be a non-empty text, got {value!r}. "
            + _example(component, key, example)
        )
