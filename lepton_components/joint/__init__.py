"""One encoder pass per message for intents, entities and knowledge-base search.

Import the component module (`joint_nlu_component`) directly: this package stays torch-free.
"""
