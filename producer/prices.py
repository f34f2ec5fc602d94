"""What Lambda compute costs, for the estimate before a run and the cost a run's status reports."""

from __future__ import annotations

# Lambda arm64 price per GB-second and per request (us-west-2).
PRICE_PER_GB_SECOND = 0.0000133334
PRICE_PER_REQUEST = 0.20 / 1_000_000


def lambda_cost(seconds: float, memory_mb: int, requests: int) -> float:
    """US dollars for ``requests`` invocations that computed ``seconds`` in all at ``memory_mb``."""
    return seconds * memory_mb / 1024 * PRICE_PER_GB_SECOND + requests * PRICE_PER_REQUEST
