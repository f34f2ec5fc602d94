"""``python -m bench.s3_get``: the embedded emulator's CPU per ranged S3 GET.

Starts a bare emulator (``python -m producer.stack.emulator``, nothing deployed), puts one object
of a granule's size (19 MB) and reads ranges of it as the granule readers do (``S3RangeReader``:
obstore, one GET a range, a pooled connection), one after the other; the emulator's CPU time is
read from ``/proc/PID/stat`` before and after, so it counts the emulator's work alone (waitress
and moto), not the client's. Every range read is checked against the bytes put.

    python -m bench.s3_get                      # 600 GETs of 64 kB
    python -m bench.s3_get --compare            # first without the fast path for plain GETs (the "before")
    python -m bench.s3_get --gets 2000 --range-kb 16 --json out.json

The last line printed is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from bench.measures import add_emulator_options, emit, per_emulator, process_cpu_s

FAST_GET_FIX = "s3_gets_answered_directly"  # the emulator's fix that answers plain GETs from moto's backend
OBJECT_BYTES = 19 * 2**20  # a full-length ATL06 granule
WARM_UP = 20  # GETs before the measured ones: connections open, moto's apps built


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.s3_get", description=__doc__.split("\n\n")[0])
    p.add_argument("--gets", type=int, default=600, help="ranged GETs measured (default 600)")
    p.add_argument("--range-kb", type=int, default=64, help="kilobytes per range (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the object's bytes and the ranges' offsets")
    p.add_argument(
        "--compare",
        action="store_true",
        help=f"run twice: first with the emulator's {FAST_GET_FIX} left out (moto answers every GET), then with it",
    )
    add_emulator_options(p)
    args = p.parse_args(argv)
    if args.gets < 1 or not 0 < args.range_kb * 1024 < OBJECT_BYTES:
        p.error("--gets must be positive and --range-kb within the object")
    return args


def read(endpoint: str, pid: int, gets: int, range_bytes: int, seed: int) -> dict:
    """Put the object, then time ``gets`` ranged GETs of it (after a warm-up)."""
    import boto3

    from shared.granules.io import S3RangeReader

    keys = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-west-2", **keys)
    s3.create_bucket(Bucket="bench-gets", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    rng = random.Random(seed)
    data = rng.randbytes(OBJECT_BYTES)
    s3.put_object(Bucket="bench-gets", Key="granule.h5", Body=data)
    reader = S3RangeReader({"accessKeyId": "bench", "secretAccessKey": "bench", "endpointUrl": endpoint})
    starts = [rng.randrange(0, OBJECT_BYTES - range_bytes) for _ in range(WARM_UP + gets)]

    def get(start: int) -> None:
        if reader.get("bench-gets", "granule.h5", start, start + range_bytes) != data[start : start + range_bytes]:
            raise SystemExit(f"GET of bytes {start}-{start + range_bytes - 1}: not the bytes put")

    for start in starts[:WARM_UP]:
        get(start)
    cpu_before, began = process_cpu_s(pid), time.perf_counter()
    for start in starts[WARM_UP:]:
        get(start)
    cpu, wall = process_cpu_s(pid) - cpu_before, time.perf_counter() - began
    return {
        "gets": gets,
        "range_bytes": range_bytes,
        "object_bytes": OBJECT_BYTES,
        "emulator_cpu_s": cpu,
        "emulator_cpu_ms_per_get": cpu / gets * 1000,
        "wall_ms_per_get": wall / gets * 1000,
    }


def report(name: str, r: dict) -> str:
    return (
        f"{name:<16} {r['gets']} GETs of {r['range_bytes'] // 1024} kB from {r['object_bytes'] / 2**20:.0f} MB:"
        f" emulator CPU {r['emulator_cpu_ms_per_get']:.3f} ms a GET ({r['emulator_cpu_s']:.2f} s),"
        f" wall {r['wall_ms_per_get']:.3f} ms a GET"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = {"moto's GET": [*args.without_fix, FAST_GET_FIX]} if args.compare else {}
    runs["emulator"] = args.without_fix
    results = per_emulator(
        runs, lambda endpoint, pid: read(endpoint, pid, args.gets, args.range_kb * 1024, args.seed), report
    )
    emit({"moto_get" if name != "emulator" else name: r for name, r in results.items()}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
