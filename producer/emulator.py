"""The embedded stack's AWS emulator: moto server, with ranged S3 reads that cost what they cost S3.

    python -m producer.emulator -H 127.0.0.1 -p PORT      (what ``stack up`` starts)

Stock moto 5 answers a ranged GET by reading the whole object (from a temporary file, for
objects over 5 MB) and cutting the range from it, and looks through its package folders on
every request to find the service addressed. For a 19 MB granule that is ~4 ms of the
emulator's CPU per request whatever the range, so a reader that fetches a few kilobytes pays as
much per request as one that fetches megabytes, unlike S3 where a request's cost does not grow
with the object's size. Two fixes, applied only where moto has the shape they expect (otherwise
moto runs as shipped, slower but the same):

* objects stay in memory and a GET takes their stored bytes without copying them, so only the
  range is copied;
* the list of moto's service modules is computed once.

Nothing else changes: the same moto app, the same HTTP server, the same responses.
"""

from __future__ import annotations

import functools
import logging
import os
import sys

# Objects up to this size are kept in memory by moto (its default spools objects over 5 MB to disk).
IN_MEMORY_OBJECT_BYTES = 2**31

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
    applied = apply_fixes()
    print(f"emulator fixes applied: {', '.join(applied) or 'none'}", file=sys.stderr, flush=True)
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
