"""The one redaction point: every text bound for a run record, a log line, a DLQ attribute or a
CLI message passes through :func:`redact`, which removes every credential value this process holds.

Credentials are registered where they enter the process (:class:`shared.credentials.S3Credentials`,
boto3's default chain in :func:`shared.credentials.obstore_s3_config`); the role's keys in the
environment are read at each call. Error texts we do not write ourselves (an S3 error body echoes
the access key id and the session token) are the reason this exists: they are redacted, whatever
they say.
"""

from __future__ import annotations

import os
import threading

MASK = "[redacted]"
# Shorter values are not credentials (AWS key ids have 16+ characters) and masking them would
# garble ordinary words: tests and emulators use keys like "testing".
MIN_SECRET_LENGTH = 12
_ENV_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

_secrets: set[str] = set()
_lock = threading.Lock()


def register(*values: str | None) -> None:
    """Remember credential values so that :func:`redact` removes them from any text."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    """``text`` with every known credential value replaced by :data:`MASK`."""
    with _lock:
        secrets = set(_secrets)
    secrets.update(v for k in _ENV_SECRETS if len(v := os.environ.get(k, "")) >= MIN_SECRET_LENGTH)
    for secret in sorted(secrets, key=len, reverse=True):  # a token may contain a shorter key
        if secret in text:
            text = text.replace(secret, MASK)
    return text
