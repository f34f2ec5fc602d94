"""Faults injected from outside the code under test: a throttled DynamoDB, an S3 endpoint that
refuses every request and echoes the credentials in its error body (as S3 does for a bad signature)."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.awsrequest import AWSResponse

THROTTLED = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
    b'"message":"Rate of requests exceeds the allowed throughput."}'
)


class Throttle:
    """Answers the first ``times`` calls of the named DynamoDB operations with HTTP 400
    ThrottlingException, before they leave the client (botocore's own retries see it too)."""

    def __init__(self, client, operations: tuple[str, ...], times: int):
        self.remaining, self.calls = times, 0
        for op in operations:
            client.meta.events.register(f"before-send.dynamodb.{op}", self._answer)

    def _answer(self, request, **_) -> AWSResponse | None:
        self.calls += 1
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, _Raw(THROTTLED))


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_) -> Iterator[bytes]:
        yield self.body

    def read(self, *_) -> bytes:
        return self.body


class _RefusingS3(BaseHTTPRequestHandler):
    """Every request: 403 SignatureDoesNotMatch whose body quotes the access key id and the
    session token it was sent (real S3 quotes them in AWSAccessKeyId and the canonical request)."""

    def _refuse(self) -> None:
        if self.command == "PUT":
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code>'
            f"<AWSAccessKeyId>{key.group(1) if key else ''}</AWSAccessKeyId>"
            f"<CanonicalRequest>x-amz-security-token:{self.headers.get('x-amz-security-token', '')}</CanonicalRequest>"
            "</Error>"
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _refuse

    def log_message(self, *_) -> None:
        pass


@contextlib.contextmanager
def refusing_s3() -> Iterator[str]:
    """An S3 endpoint on loopback that refuses everything; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
