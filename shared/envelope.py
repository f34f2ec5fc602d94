"""What can be read of any message body, valid or not, and what a dead-lettered one carries.

Light on purpose (no models, no numpy): the DLQ sweep, ``status`` and the runner read it.
"""

from __future__ import annotations

import json

# Message attributes of a dead-lettered message: why, and whether its shard record says FAILED.
FAILURE_REASON = "failure_reason"
RECORDED = "shard_record_failed"

# The key of a run's item in either kind of message.
ITEM_KEYS = ("shard_key", "granule_key")


def peek_ids(body: str) -> tuple[str | None, int | None]:
    """Run id and item key (shard or granule) of a message body that may not validate, each
    where it can be read."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    run_id = str(doc["run_id"]) if "run_id" in doc else None
    key = next((doc[name] for name in ITEM_KEYS if name in doc), None)
    try:
        item_key = int(key) if key is not None else None
    except (TypeError, ValueError):
        item_key = None
    return run_id, item_key
