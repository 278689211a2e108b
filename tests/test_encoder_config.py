"""How many epochs the encoder components train for a data size."""

import pytest
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.encoder_config import EncoderConfig, default_encoder_config


def settings(**override) -> EncoderConfig:
    return EncoderConfig.from_component_config("Encoder", {**default_encoder_config(), **override})


def test_large_data_trains_fewer_epochs_small_data_all_of_them() -> None:
    defaults = settings()
    assert defaults.epochs_for(600) == 20  # the demo: `epochs`
    assert defaults.epochs_for(9000) == 4  # BANKING77's training part
    assert defaults.epochs_for(1_000_000) == 3  # never fewer than 3
    assert settings(epochs=2).epochs_for(1_000_000) == 2  # nor more than asked for
    assert settings(max_examples_seen=None).epochs_for(9000) == 20


def test_a_bad_budget_names_the_key() -> None:
    with pytest.raises(InvalidConfigException, match="max_examples_seen"):
        settings(max_examples_seen=0)


def test_small_data_trains_on_everything_large_data_holds_out_for_early_stopping() -> None:
    defaults = settings()
    assert defaults.validation_fraction_for(900) == 0.0  # the demo: 90 held out would be noise
    assert defaults.validation_fraction_for(9000) == 0.1  # BANKING77: 900 held out
    assert settings(min_held_out_examples=1).validation_fraction_for(40) == 0.1
