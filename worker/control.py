"""The worker's control flow: exceptions that steer one message's handling, not errors a user
meets (those are in ``shared/errors.py``)."""

from __future__ import annotations

__all__ = ["DeadlineReached", "PoisonMessage", "RetryLater"]


class PoisonMessage(Exception):
    """The message can never succeed as it is: record it and dead-letter it at once."""


class DeadlineReached(Exception):
    """Not enough time left to finish the shard: stop before writing anything; the message comes back."""


class RetryLater(Exception):
    """Raised to Powertools' batch processor to leave a record on the queue for redelivery."""
