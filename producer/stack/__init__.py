"""The embedded stack: everything that runs this repository's ``template.yaml`` on one machine,
apart from the operator's commands.

- ``emulator``: moto's server app served the way AWS endpoints behave (``python -m producer.stack.emulator``).
- ``deploy``: ``template.yaml`` -> samtranslator -> CloudFormation in the emulator.
- ``lifecycle``: ``python -m producer stack up|down|status|env``, the state file, granule uploads.
"""

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
