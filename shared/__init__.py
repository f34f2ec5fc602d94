"""The contracts the producer and the worker both import. It imports neither of them.

One module per fact: the grid (orders, cells), the mission (ICESat-2 constants), the pipeline
configuration, the reducers, the catalog (shard map), the SQS message, the run table, the
credentials parameter, the stack's names and outputs, the output store, the error family and
the one redaction point, reading the dead-letter queue; ``shared.granules`` is the read layer.
"""

__all__ = [
    "catalog",
    "config",
    "credentials",
    "deadletters",
    "deployed",
    "errors",
    "granules",
    "grid",
    "messages",
    "mission",
    "redaction",
    "reducers",
    "results",
    "runstatus",
    "settings",
    "store",
]
