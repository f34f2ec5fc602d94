"""The errors a user can meet, in one place. Each kind has its own exit code; every command prints
the message as one line (through the redaction point) and never a traceback.

Messages are written for an operator to read as they are. Never put a credential in one.
The worker's control flow (retry later, the deadline, a poison message) is not here: those are
not errors a user meets (``worker/control.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "CatalogError",
    "ConfigError",
    "CredentialsError",
    "GranuleError",
    "InputError",
    "RunError",
    "ShardQueueError",
    "StackError",
    "StoreError",
    "StoreRefusedError",
    "EXIT_FAILED_SHARDS",
    "EXIT_INTERRUPTED",
    "EXIT_PARTIAL_SHARDS",
    "outcome_code",
    "run_command",
]

EXIT_INTERRUPTED = 130  # what a shell reports for Ctrl-C
# Commands whose work finished report how it ended (``status``, ``python -m worker --catalog``):
EXIT_FAILED_SHARDS = 1  # some shards FAILED (or were dead-lettered)
EXIT_PARTIAL_SHARDS = 7  # none FAILED, but some PARTIAL: a granule could not be read


def outcome_code(failed: int, partial: int) -> int:
    """The exit code of finished work: 0, or which kind of shard needs the operator's eye."""
    return EXIT_FAILED_SHARDS if failed else EXIT_PARTIAL_SHARDS if partial else 0


class ShardQueueError(Exception):
    """Base class: the message is meant to be read by an operator as it is."""

    exit_code = 1


class InputError(ShardQueueError):
    """What the command was given is wrong: an option, a file, a run id that does not exist."""

    exit_code = 2


class CatalogError(InputError):
    """The shard map is missing, malformed or built for another grid."""


class ConfigError(InputError):
    """The pipeline configuration is invalid."""


class CredentialsError(ShardQueueError):
    """Credentials are missing, malformed, expired or refused: refresh them and redrive."""

    exit_code = 3


class StackError(ShardQueueError):
    """The stack (on AWS or embedded) cannot be found, reached, deployed or started."""

    exit_code = 4


class StoreError(ShardQueueError):
    """The output store cannot be created, opened or written."""

    exit_code = 5


class StoreRefusedError(StoreError):
    """The output store refused the credentials it was written with."""


class RunError(ShardQueueError):
    """A run could not be carried through: messages unsent, its queue gone mid-run."""

    exit_code = 6


class GranuleError(ShardQueueError):
    """One granule could not be read; recorded per granule, never swallowed."""


def run_command(command: Callable[[Any], int], args: Any) -> int:
    """Run a CLI command: an error becomes one line on stderr and its kind's exit code."""
    from shared.redaction import redact

    try:
        return command(args)
    except ShardQueueError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `status RUN | head`: the reader has gone, nothing more to say
        sys.stderr.close()
        return 0
