"""The embedded stack: everything that runs this repository's ``template.yaml`` on one machine,
apart from the operator's commands.

- ``emulator``: moto's server app served the way AWS endpoints behave (``python -m producer.stack.emulator``).
- ``deploy``: ``template.yaml`` -> samtranslator -> CloudFormation in the emulator.
- ``lifecycle``: ``python -m producer stack up|down|status|env``, the state file, granule uploads.

The names below are imported from ``lifecycle`` when first used, so that importing ``emulator``
(standard library only: the CLI's parser uses its options) does not import boto3 and pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producer.stack.lifecycle import (
        EmbeddedStackError,
        StackState,
        down,
        read_state,
        stack_command,
        up,
        upload_granules,
    )

__all__ = ["EmbeddedStackError", "StackState", "down", "read_state", "stack_command", "up", "upload_granules"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("producer.stack.lifecycle"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
