"""Exceptions that carry an operator-facing message. Never put a credential in one."""


class ShardQueueError(Exception):
    """Base class: the message is meant to be read by an operator as it is."""


class CatalogError(ShardQueueError):
    """The shard map is missing, malformed or built for another grid."""


class ConfigError(ShardQueueError):
    """The pipeline configuration is invalid."""


class StoreError(ShardQueueError):
    """The output store cannot be created, opened or written."""


class StoreRefusedError(StoreError):
    """The output store refused the credentials it was written with."""


class GranuleError(ShardQueueError):
    """One granule could not be read; recorded per granule, never swallowed."""


def run_command(command, args) -> int:
    """Run a CLI command: an operator-facing error becomes one line on stderr and exit code 2."""
    import sys

    from shared.redaction import redact

    try:
        return command(args)
    except ShardQueueError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
