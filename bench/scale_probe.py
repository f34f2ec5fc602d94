"""The child processes of ``python -m bench.scale``: each measures one command in a process of its own.

    python -m bench.scale_probe load CATALOG
        load_catalog(CATALOG): wall time, and peak memory (VmHWM of this process: the interpreter,
        the imports and the load; "before" is the resident set after the imports). One JSON line.
    python -m bench.scale_probe calls OUT.json -- PRODUCER-ARGUMENTS...
        ``python -m producer PRODUCER-ARGUMENTS`` (its ``main``, in this process), with botocore
        hooks on boto3's default session counting every AWS call the command makes, the bytes of
        each response body and the time in each service's calls (from the call to its parsed
        answer, retries included); the counts go to OUT.json, the exit code is the command's.

Peak memory is read from /proc (VmHWM starts afresh at exec); ``ru_maxrss`` would not do, as Linux
carries the parent's peak across fork and exec.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (MB); ru_maxrss where /proc is absent."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(path: str) -> dict:
    import mortie  # noqa: F401 (imported by the first shard key validated: an import, not the load)

    from shared.catalog import load_catalog

    before = _status_mb("VmRSS")
    began = time.perf_counter()
    shard_map = load_catalog(path)
    wall = time.perf_counter() - began
    return {
        "wall_s": wall,
        "peak_rss_mb": _status_mb("VmHWM"),
        "rss_before_mb": before,
        "shards": len(shard_map.shard_keys),
        "granule_shard_pairs": sum(len(v) for v in shard_map.shards.values()),
    }


def count_calls(out: Path, argv: list[str]) -> int:
    """Run the producer's CLI here, counting its AWS calls (per service and operation) and response bytes."""
    import boto3

    calls: Counter = Counter()
    received: Counter = Counter()
    seconds: Counter = Counter()

    def began(context=None, **_) -> None:
        context["bench_began"] = time.perf_counter()

    def note(http_response=None, model=None, context=None, **_) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        calls[name] += 1
        seconds[model.service_model.service_name] += time.perf_counter() - context.get(
            "bench_began", time.perf_counter()
        )
        if http_response is not None and not model.has_streaming_output:  # reading a stream would consume it
            received[name] += len(http_response.content or b"")

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call", began)  # clients created later inherit the hooks
    boto3.DEFAULT_SESSION.events.register("after-call", note)
    from producer.cli import main

    code = 1
    try:
        code = main(argv)
    finally:
        out.write_text(
            json.dumps({"exit": code, "calls": dict(calls), "response_bytes": dict(received), "seconds": dict(seconds)})
        )
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 2 and argv[0] == "load":
        print(json.dumps(load(argv[1])))
        return 0
    if len(argv) >= 3 and argv[0] == "calls" and argv[2] == "--":
        return count_calls(Path(argv[1]), argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
