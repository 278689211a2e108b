"""Dialogue policies, and the featurizer Rasa's memoizing policies can use.

Importing the featurizer registers its type, so a trained model that names it loads
whenever a Lepton policy is part of the bot.
"""

from lepton_components.policies import incremental_states  # noqa: F401  (registers the featurizer type)
