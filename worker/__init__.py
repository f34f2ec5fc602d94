"""The Lambda side: ``handler`` (SQS records) -> ``service`` (one message) -> ``shard`` (read ->
``aggregate`` -> write), with ``control`` for its control flow; ``local`` processes a catalog on
this machine and ``runner`` stands in for the SQS event source mapping. It never imports the
producer."""

__all__ = ["aggregate", "control", "handler", "local", "runner", "service", "shard"]
