"""Lepton: fine-tuned transformer components for Rasa Open Source 3.6 support bots.

Heavy libraries (torch, transformers, peft) are imported by the component modules only,
so importing this package, its channels or its policies stays cheap.
"""

__version__ = "0.1.0"
