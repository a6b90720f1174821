"""dagbroker: a Redis-streams workflow broker."""

__version__ = "0.1.0"
