"""The operator console: the people behind the bot.

Agents take over conversations the bot hands off (`handoff`), bot owners review what the
bot failed at and turn it into training data (`review`), and both see how the bot does
(`analytics`). Everyone logs in first (`access`). One `credentials.yml` entry turns it on
(`console.OperatorConsoleInput`); its state lives in the tracker store's SQL database
(`database`), so it survives restarts and is shared by every replica.
"""
