"""The embedded stack's AWS emulator: moto's server app, served the way AWS endpoints behave.

    python -m producer.stack.emulator -H 127.0.0.1 -p PORT      (what ``stack up`` starts)

``python -m moto.server`` serves moto's app with werkzeug's development server, which closes
the connection after every response (and starts a thread for each): every boto3 call and every
ranged read of a granule pays a new TCP connection at both ends, where AWS endpoints keep
connections alive. Here the same app is served by waitress (a production WSGI server:
keep-alive connections, a pool of threads), with response buffers large enough that a
multi-megabyte read is not spooled through a temporary file.

Stock moto 5 also answers a ranged GET by reading the whole object (from a temporary file, for
objects over 5 MB) and cutting the range from it, and looks through its package folders on
every request to find the service addressed. For a 19 MB granule that is ~4 ms of the
emulator's CPU per request whatever the range, so a reader that fetches a few kilobytes pays as
much per request as one that fetches megabytes, unlike S3 where a request's cost does not grow
with the object's size. Two fixes, applied only where moto has the shape they expect (otherwise
moto runs as shipped, slower but the same):

* objects stay in memory and a GET takes their stored bytes without copying them, so only the
  range is copied;
* the list of moto's service modules is computed once.

moto also answers each request on a thread of its own without isolating one request from
another. Its DynamoDB transaction checks its conditions, writes, and on a failed condition
restores a copy of the whole table taken when it began: measured here, two concurrent
transactions on one item both applied, and a cancelled one erased writes made meanwhile by others
(a run counted shards twice, or lost them). Its SQS receive tests a message's visibility and
marks it received in two steps, and a delete rebuilds the queue's list of messages while a send
may be appending to it. So requests to DynamoDB, and to SQS, run one at a time per service (S3,
the hot path, stays concurrent); a long-polling receive gives SQS's turn up while it waits, as
it holds no message then.

Nothing else changes: the same moto app, the same responses.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
import threading
from typing import Any, Callable, Iterable, Iterator

# Objects up to this size are kept in memory by moto (its default spools objects over 5 MB to disk).
IN_MEMORY_OBJECT_BYTES = 2**31
# waitress: threads answering requests, open connections allowed (every worker pools up to 64),
# and response bytes held in memory before spooling to a temporary file (its default is 1 MB).
SERVER_THREADS = 16
CONNECTION_LIMIT = 1000
OUTPUT_BUFFER_BYTES = 256 * 2**20

log = logging.getLogger(__name__)


def _service_modules_once() -> bool:
    import moto.backends

    listing = getattr(moto.backends, "list_of_moto_modules", None)
    if listing is None or hasattr(listing, "cache_info"):
        return False
    moto.backends.list_of_moto_modules = functools.cache(lambda: list(listing()))
    return True


def _object_bytes_without_copy() -> bool:
    from moto.s3.models import FakeKey

    stock = getattr(FakeKey, "value", None)
    if not isinstance(stock, property) or stock.fset is None:
        return False

    def value(self) -> bytes:
        spooled = getattr(self, "_value_buffer", None)
        in_memory = getattr(spooled, "_file", None)
        if getattr(spooled, "_rolled", True) or not hasattr(in_memory, "getvalue"):
            return stock.fget(self)
        with self.lock:
            return in_memory.getvalue()  # bytes are immutable: the caller cannot alter the object

    FakeKey.value = property(value, stock.fset)
    return True


class ServiceLock:
    """One service's turn: a lock that the thread holding it can give up while it waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mine = threading.local()

    def __enter__(self) -> None:
        self._lock.acquire()
        self._mine.held = True

    def __exit__(self, *exc: object) -> None:
        self._mine.held = False
        self._lock.release()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Let other requests in meanwhile, if this thread holds the lock (else do nothing)."""
        if not getattr(self._mine, "held", False):
            yield
            return
        self.__exit__()
        try:
            yield
        finally:
            self.__enter__()


# X-Amz-Target prefixes of the JSON protocols (DynamoDB Streams is "DynamoDBStreams_...").
TARGET_SERVICES = {"DynamoDB_": "dynamodb", "AmazonSQS.": "sqs"}
SERVICE_LOCKS = {"dynamodb": ServiceLock(), "sqs": ServiceLock()}


def service_of(environ: dict[str, Any]) -> str | None:
    """The AWS service a request addresses: its X-Amz-Target, else its SigV4 credential scope."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    for prefix, service in TARGET_SERVICES.items():
        if target.startswith(prefix):
            return service
    auth = environ.get("HTTP_AUTHORIZATION", "")
    credential = auth.partition("Credential=")[2].split(",", 1)[0]
    scope = credential.split("/")  # key id / date / region / service / aws4_request
    return scope[3] if len(scope) == 5 else None


class Isolation:
    """WSGI middleware: requests to the given services run one at a time per service."""

    def __init__(self, app: Callable, services: Iterable[str]) -> None:
        self.app = app
        self.locks = {s: SERVICE_LOCKS.setdefault(s, ServiceLock()) for s in services}

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        lock = self.locks.get(service_of(environ))
        if lock is None:
            return self.app(environ, start_response)
        with lock:  # the whole response is produced under the lock: moto may work while it is iterated
            response = self.app(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                if hasattr(response, "close"):
                    response.close()


def _sqs_long_poll_gives_way() -> bool:
    """A receive waiting for messages releases SQS's turn (otherwise no send could wake it)."""
    from moto.sqs.models import Queue

    stock = getattr(Queue, "wait_for_messages", None)
    if stock is None:
        return False
    if getattr(stock, "gives_way", False):  # applied already
        return True

    def wait_for_messages(self: Any, timeout: int) -> None:
        with SERVICE_LOCKS["sqs"].released():
            stock(self, timeout)

    wait_for_messages.gives_way = True  # type: ignore[attr-defined]
    Queue.wait_for_messages = wait_for_messages
    return True


def isolated_services() -> list[str]:
    """DynamoDB always; SQS only where its long poll can give way (moto's shape as expected)."""
    try:
        return ["dynamodb", "sqs"] if _sqs_long_poll_gives_way() else ["dynamodb"]
    except ImportError as exc:
        log.warning("SQS requests not isolated: %s", exc)
        return ["dynamodb"]


def apply_fixes() -> list[str]:
    """Apply what this moto allows; returns the names of the fixes applied."""
    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(IN_MEMORY_OBJECT_BYTES))
    applied = []
    for fix in (_service_modules_once, _object_bytes_without_copy):
        try:
            if fix():
                applied.append(fix.__name__.lstrip("_"))
        except (ImportError, AttributeError) as exc:  # a moto of another shape: run it as shipped
            log.warning("emulator fix %s not applied: %s", fix.__name__, exc)
    return applied


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m producer.stack.emulator", description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto writes it into URLs it hands out (queue URLs)
    applied = apply_fixes()
    services = isolated_services()
    import waitress
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    print(f"moto on http://{args.host}:{args.port} (waitress); fixes applied: {', '.join(applied) or 'none'}; "
          f"requests isolated per service: {', '.join(services)}", file=sys.stderr, flush=True)
    waitress.serve(
        Isolation(DomainDispatcherApplication(create_backend_app), services), host=args.host, port=args.port,
        threads=SERVER_THREADS,
        connection_limit=CONNECTION_LIMIT, outbuf_overflow=OUTPUT_BUFFER_BYTES, outbuf_high_watermark=OUTPUT_BUFFER_BYTES,
        asyncore_use_poll=True, _quiet=True,
    )


if __name__ == "__main__":
    main()
