"""``make bench`` / ``python -m bench``: the project's reader against the original system's strategy.

One dense shard (by default 50 full-length synthetic granules that all pass near one point, seeded
and cached under bench/.cache/) is served from the embedded emulator's S3 (moto on loopback, the
same stack ``python -m producer stack up`` starts) and processed by three strategies, each in a
process of its own, one after the other, on the same input:

  baseline        the original system: every beam's whole latitude/longitude, then a hyperslice
                  of the values (h5coro with its default 4 MiB cache lines)
  reader          the project's worker with a catalog that has no per-beam segments (e.g. CMR)
  reader_segments the project's worker with the per-beam segments the offline catalog step records
  reader_catalog  the same, with the chunks the catalog step records too (no HDF5 metadata read)
  reader_index    the worker with a catalog without segments (CMR's) plus a reference to each
                  granule's index (shared.granules.index), built beforehand by the index step

Figures per strategy: wall and CPU time of the shard's processing (read + aggregate), peak
memory (peak resident set, VmHWM, of the strategy's own process: interpreter, imports and the
work; "before work" is the same after the imports), S3 GET
requests and bytes fetched (counted by the drivers' ReadStats), observations per second, and the
emulator's CPU while serving it. "Minimum" is the compressed size of the chunks that hold the
shard's points (from the HDF5 chunk index). The statistics of every strategy are compared cell
by cell; the last line printed is a JSON object with every figure.

    python -m bench                    # 50 full-length granules
    python -m bench --quick            # 3 short granules: a smoke test of the machinery
    python -m bench --granules 80 --strategies baseline,reader_catalog
    python -m bench --granules 20 --strategies baseline,reader,reader_index
    python -m bench --s3-latency-ms 20 --s3-first-byte-ms 100 --s3-bandwidth-mbps 90   # S3's latency

Over 400 lines: most of it is the report, which prints every figure with what it means.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.data import CACHE_DIR, InputSpec, granules
from bench.measures import emit, process_cpu_s
from bench.minimum import shard_minimum
from bench.run import STRATEGIES
from producer.stack import upload_granules
from producer.stack.emulator import add_s3_delay_options, s3_delays_of
from producer.synthetic.cli import glue_negative_value

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-granules"
INDEX_ROOT = f"s3://{BUCKET}/indexes/"  # beside the granules (on AWS: the run's output bucket)
QUICK = dict(n_granules=3, n_segments=40_000)
TARGETS = {"bytes_vs_baseline": 1 / 5, "bytes_vs_minimum": 2.0, "wall_vs_baseline": 1 / 3, "peak_rss_mb": 1024}
# The CMR path with granule indexes: a fifth of the original's wall time, at both latencies.
STRATEGY_TARGETS = {"reader_index": {"wall_vs_baseline": 1 / 5}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--granules", type=int, default=InputSpec.n_granules, help="granules in the shard (default 50)")
    p.add_argument(
        "--segments", type=int, default=InputSpec.n_segments, help="segments per beam (default 142000: full length)"
    )
    p.add_argument(
        "--seed", type=int, default=InputSpec.seed, help=f"seed of the synthetic granules (default {InputSpec.seed})"
    )
    p.add_argument(
        "--through",
        default=",".join(map(str, InputSpec.through)),
        metavar="LAT,LON",
        help="the point every granule passes near; its order-6 cell is the shard",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke test: {QUICK['n_granules']} granules of {QUICK['n_segments']} segments",
    )
    p.add_argument(
        "--strategies", default=",".join(STRATEGIES), help=f"comma-separated subset of {','.join(STRATEGIES)}"
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=CACHE_DIR,
        help="where generated granules are kept between runs (default %(default)s)",
    )
    p.add_argument(
        "--no-local",
        dest="local",
        action="store_false",
        help="skip the second pass over local files (the same strategies without the emulator)",
    )
    p.add_argument("--json", type=Path, help="also write the final JSON object to this file")
    add_s3_delay_options(
        p.add_argument_group(
            "S3 latency (the emulator answers in ~1 ms on loopback; S3's first byte takes tens of milliseconds)"
        )
    )
    args = p.parse_args(glue_negative_value(list(sys.argv[1:] if argv is None else argv), "--through"))
    if args.quick:
        args.granules, args.segments = QUICK["n_granules"], QUICK["n_segments"]
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = set(args.strategies) - set(STRATEGIES)
    if unknown:
        p.error(f"unknown strategies {sorted(unknown)}; choose from {', '.join(STRATEGIES)}")
    lat, lon = (float(v) for v in args.through.split(","))
    args.spec = InputSpec(n_granules=args.granules, n_segments=args.segments, through=(lat, lon), seed=args.seed)
    return args


# -- the emulator -------------------------------------------------------------------------------
def upload(paths: list[Path], env: dict[str, str]) -> str:
    """Put the granules into a bucket of the emulator's S3; returns the s3:// prefix."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    return upload_granules(paths, BUCKET, "atl06/", s3)


# -- the catalog step ----------------------------------------------------------------------------
def build_catalog(prefix: str, shard_key: int, config, grid, out: Path) -> dict:
    """Run the offline catalog step over the granules on S3 (what a run does once, before any
    shard) and keep the one shard benchmarked. Returns the step's cost."""
    from producer.granule_catalog import granule_shards, list_granules
    from shared.catalog import ShardMap
    from shared.granules import ReadContext, S3RangeReader

    locations = list_granules(prefix)
    context = ReadContext(s3=S3RangeReader())
    wall0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=context.granules_in_flight) as pool:
        touched = list(pool.map(lambda loc: granule_shards(loc, config, grid, context), locations))
    wall = time.perf_counter() - wall0
    refs = [shards[shard_key] for shards in touched if shard_key in shards]
    ShardMap.build({shard_key: refs}, {"source": "granules", "granule_source": prefix}, grid).save(out)
    return {
        "wall_s": wall,
        "requests": context.stats.requests,
        "bytes": context.stats.bytes,
        "granules_scanned": len(locations),
        "shards_found": len({k for t in touched for k in t}),
        "granules_in_shard": len(refs),
    }


# -- the index step --------------------------------------------------------------------------------
def build_indexes(source: str, config, grid, root: str) -> dict:
    """Build and write every granule's index under ``root`` (what a run does once per granule, for
    all shards and runs), ``granules_in_flight`` at a time. Returns the step's cost, in all and
    per granule (indexes written to the same emulator; their PUTs are not counted as reads)."""
    from producer.granule_catalog import list_granules
    from shared.granules import ReadContext, S3RangeReader, build_index, index_location, write_index

    locations = list_granules(source)
    reader = S3RangeReader() if source.startswith("s3://") or root.startswith("s3://") else None
    context = ReadContext(s3=reader)
    written = ReadContext(s3=reader)  # the writes, apart from the granule reads

    def one(location: str) -> tuple[int, float]:
        began = time.perf_counter()
        name = location.rsplit("/", 1)[-1]
        index = build_index(location, name, config, grid, context)
        write_index(index, index_location(root, name), written)
        return len(index.to_bytes()), time.perf_counter() - began

    wall0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=context.granules_in_flight) as pool:
        built = list(pool.map(one, locations))
    wall = time.perf_counter() - wall0
    n = max(1, len(locations))
    return {
        "granules": len(locations),
        "wall_s": wall,
        "requests": context.stats.requests,
        "bytes": context.stats.bytes,
        "wall_s_per_granule": sum(seconds for _, seconds in built) / n,  # each build's own time, built side by side
        "requests_per_granule": context.stats.requests / n,
        "bytes_per_granule": context.stats.bytes / n,
        "index_bytes_per_granule": sum(size for size, _ in built) / n,
        "in_flight": context.granules_in_flight,
    }


# -- one strategy ------------------------------------------------------------------------------
def run_strategy(
    strategy: str,
    catalog: Path,
    shard_key: int,
    stats: Path,
    env: dict[str, str],
    emulator_pid: int,
    local_dir: Path | None = None,
    index_root: str | None = None,
) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        "--strategy",
        strategy,
        "--catalog",
        str(catalog),
        "--shard",
        str(shard_key),
        "--stats",
        str(stats),
    ]
    if local_dir is not None:
        cmd += ["--local-dir", str(local_dir)]
    if index_root is not None:
        cmd += ["--index-root", index_root]
    served0 = process_cpu_s(emulator_pid)
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    served = process_cpu_s(emulator_pid) - served0
    if done.returncode != 0:
        raise SystemExit(f"strategy {strategy} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["emulator_cpu_s"] = served
    return figures


def index_step_line(cost: dict) -> str:
    return (
        f"index step (once per granule, all shards and runs): {cost['granules']} granules in {cost['wall_s']:.1f} s "
        f"({cost['in_flight']} at a time: {cost['wall_s_per_granule']:.2f} s each), "
        f"{cost['requests_per_granule']:.1f} GETs and {cost['bytes_per_granule'] / 1e6:.1f} MB per granule; "
        f"{cost['index_bytes_per_granule'] / 1e3:.1f} kB of index per granule"
    )


def same_statistics(a: Path, b: Path) -> tuple[bool, str]:
    """Every statistic equal in every cell (bit for bit; NaN where the other has NaN)."""
    with np.load(a) as x, np.load(b) as y:
        if set(x.files) != set(y.files):
            return False, f"different statistics: {sorted(x.files)} vs {sorted(y.files)}"
        for name in x.files:
            u, v = x[name], y[name]
            if u.dtype != v.dtype or u.shape != v.shape:
                return False, f"{name}: {u.dtype}{u.shape} vs {v.dtype}{v.shape}"
            if not np.array_equal(u, v, equal_nan=u.dtype.kind == "f"):
                differ = (
                    int(np.sum(~((u == v) | (np.isnan(u) & np.isnan(v)))))
                    if u.dtype.kind == "f"
                    else int(np.sum(u != v))
                )
                return False, f"{name}: {differ} cells differ"
    return True, "identical"


# -- report ------------------------------------------------------------------------------------
def table(results: dict[str, dict], minimum_bytes: int) -> str:
    rows = [
        ("wall time (s)", "wall_s", "{:.2f}"),
        ("CPU time (s)", "cpu_s", "{:.2f}"),
        ("emulator CPU (s)", "emulator_cpu_s", "{:.2f}"),
        ("peak memory (MB, VmHWM)", "peak_rss_mb", "{:.0f}"),
        ("  of which before work (MB)", "rss_before_work_mb", "{:.0f}"),
        ("S3 GETs (local: reads)", "requests", "{:,}"),
        ("bytes fetched (MB)", "bytes", None),
        ("bytes / minimum", "bytes", None),
        ("observations", "observations", "{:,}"),
        ("observations per second", "observations_per_s", "{:,.0f}"),
    ]
    names = list(results)
    width = 30
    lines = [f"{'':{width}}" + "".join(f"{n:>16}" for n in names)]
    for label, key, fmt in rows:
        cells = []
        for n in names:
            v = results[n].get(key)
            if label.startswith("bytes fetched"):
                cells.append(f"{v / 1e6:,.1f}")
            elif label.startswith("bytes / minimum"):
                cells.append(f"{v / minimum_bytes:.2f}" if minimum_bytes else "-")
            else:
                cells.append("-" if v is None else fmt.format(v))
        lines.append(f"{label:{width}}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def ratios(results: dict[str, dict], minimum_bytes: int) -> dict[str, dict]:
    base = results.get("baseline")
    out = {}
    for name, r in results.items():
        if name == "baseline":
            continue
        out[name] = {
            "bytes_vs_minimum": r["bytes"] / minimum_bytes if minimum_bytes else None,
            "peak_rss_mb": r["peak_rss_mb"],
        }
        if base:
            out[name].update(
                {
                    "bytes_vs_baseline": r["bytes"] / base["bytes"],
                    "requests_vs_baseline": r["requests"] / base["requests"],
                    "wall_vs_baseline": r["wall_s"] / base["wall_s"],
                    "cpu_vs_baseline": r["cpu_s"] / base["cpu_s"],
                    "speedup": base["wall_s"] / r["wall_s"],
                }
            )
    if base:
        out["baseline"] = {"bytes_vs_minimum": base["bytes"] / minimum_bytes if minimum_bytes else None}
    return out


def emulator_floor(results: dict[str, dict], minimum: dict) -> dict:
    """What the emulator alone costs a reader that fetches exactly the minimum: one request per
    run of adjacent chunks, at the emulator's CPU per request measured for the project's reader
    (the emulator is one process that answers requests one CPU at a time)."""
    readers = [r for n, r in results.items() if n != "baseline" and r["requests"]]
    if not readers or not minimum.get("runs"):
        return {}
    ms = min(r["emulator_cpu_s"] / r["requests"] for r in readers) * 1000
    floor = {"requests": minimum["runs"], "ms_per_request": ms, "seconds": minimum["runs"] * ms / 1000}
    if "baseline" in results:
        floor["vs_baseline_wall"] = floor["seconds"] / results["baseline"]["wall_s"]
    return floor


def verdicts(r: dict, strategy: str) -> list[str]:
    checks = []
    for key, limit in (TARGETS | STRATEGY_TARGETS.get(strategy, {})).items():
        value = r.get(key)
        if value is None:
            continue
        checks.append(
            f"{key} {value:.3g} {'<=' if value <= limit else '>'} {limit:.3g} {'ok' if value <= limit else 'MISSED'}"
        )
    return checks


def time_aggregation(config, n_points: int = 1_000_000, windows: int = 4, repeats: int = 3) -> dict:
    """The configured statistics on random points over one shard (best of a few runs: CPU of the
    process, every thread's, and wall time: levels are grouped side by side), three ways on the
    same points: order 12 alone in one window (what a shard computed before time windows and
    overviews), every level (12 down to 6) in one window, and every level in ``windows`` windows."""
    from shared.grid import DEFAULT_GRID
    from worker.aggregate import aggregate, aggregate_levels

    grid = DEFAULT_GRID
    rng = np.random.default_rng(0)
    cell = rng.integers(0, grid.children_per_shard, n_points)
    h = rng.normal(1500.0, 300.0, n_points).astype(np.float32).astype(np.float64)
    sigma = rng.uniform(0.02, 1.0, n_points).astype(np.float32).astype(np.float64)
    several = rng.integers(0, windows, n_points)
    runs = {
        "order12_one_window": lambda: aggregate(cell, h, sigma, config, grid.children_per_shard),
        "levels_one_window": lambda: aggregate_levels(cell, h, sigma, np.zeros_like(cell), config, grid, 1),
        f"levels_{windows}_windows": lambda: aggregate_levels(cell, h, sigma, several, config, grid, windows),
    }
    cpu, wall = {}, {}
    for name, run in runs.items():
        cpu[name] = wall[name] = float("inf")
        for _ in range(repeats):
            began, began_cpu = time.perf_counter(), time.process_time()
            run()
            cpu[name] = min(cpu[name], time.process_time() - began_cpu)
            wall[name] = min(wall[name], time.perf_counter() - began)
    base = cpu["order12_one_window"]
    return {
        "points": n_points,
        "cells": grid.children_per_shard,
        "levels": list(grid.levels),
        "windows": windows,
        "statistics": list(config.statistics),
        "cpu_s": base,
        "cpu_s_by_layout": cpu,
        "wall_s_by_layout": wall,
        "vs_order12_one_window": {name: value / base for name, value in cpu.items()},
    }


def aggregation_table(aggregation: dict) -> str:
    """Before (order 12, one window) and after (overviews, several windows) on the same points."""
    levels = f"levels {aggregation['levels'][0]}..{aggregation['levels'][-1]}"
    labels = {
        "order12_one_window": "before: order 12 alone, one window",
        "levels_one_window": f"after: {levels}, one window",
        f"levels_{aggregation['windows']}_windows": f"after: {levels}, {aggregation['windows']} windows",
    }
    return "\n".join(
        f"  {labels[name]:<42} {cpu:7.3f} s CPU  {aggregation['vs_order12_one_window'][name]:5.2f} x"
        f"  {aggregation['wall_s_by_layout'][name]:7.3f} s wall"
        for name, cpu in aggregation["cpu_s_by_layout"].items()
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from producer import stack
    from shared.config import load_config
    from shared.granules import ShardGeometry
    from shared.grid import DEFAULT_GRID, shard_keys_of

    config, grid = load_config(), DEFAULT_GRID
    lat, lon = args.spec.through
    shard_key = int(shard_keys_of(np.array([lat]), np.array([lon]), grid.parent_order)[0])
    paths = granules(args.spec, args.cache_dir)
    size = sum(p.stat().st_size for p in paths)
    print(
        f"input: {len(paths)} granules, {size / 1e6:,.0f} MB ({args.spec.key}); shard {shard_key} (the "
        f"order-6 cell of {lat:g},{lon:g})"
    )

    minimum_file = args.cache_dir / f"minimum-{args.spec.key}-{shard_key}.json"
    if minimum_file.exists():
        minimum = json.loads(minimum_file.read_text())
    else:
        m = shard_minimum(paths, ShardGeometry.of(shard_key, grid), config)
        minimum = {"bytes": m.bytes, "chunks": m.chunks, "runs": m.runs, "points": m.points}
        minimum_file.write_text(json.dumps(minimum))
    print(
        f"minimum: {minimum['bytes'] / 1e6:,.1f} MB in {minimum['chunks']:,} chunks ({minimum['runs']:,} "
        "runs adjacent in the files) "
        f"holding the shard's {minimum['points']:,} points"
    )

    indexed = "reader_index" in args.strategies
    index_cost: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmp = Path(tmp)
        began = time.perf_counter()
        state = stack.up(tmp / "stack", "bench-stack", s3_delays=s3_delays_of(args))
        try:
            env = state.environment()
            prefix = upload(paths, env)
            print(
                f"emulator: {state.endpoint} (pid {state.pid}), stack deployed and granules uploaded in "
                f"{time.perf_counter() - began:.1f} s"
            )
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                catalog_cost = build_catalog(prefix, shard_key, config, grid, tmp / "catalog.json")
                index_cost = build_indexes(prefix, config, grid, INDEX_ROOT) if indexed else {}
            finally:
                for k, v in saved.items():
                    os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
            print(
                f"catalog step (once per run, all shards): {catalog_cost['granules_scanned']} granules scanned in "
                f"{catalog_cost['wall_s']:.1f} s, {catalog_cost['requests']:,} GETs, "
                f"{catalog_cost['bytes'] / 1e6:,.0f} MB; "
                f"{catalog_cost['shards_found']} shards, {catalog_cost['granules_in_shard']} granules in this one"
            )
            if index_cost:
                print(index_step_line(index_cost))
            results = {}
            for strategy in args.strategies:
                print(f"running {strategy} ...", flush=True)
                results[strategy] = run_strategy(
                    strategy, tmp / "catalog.json", shard_key, tmp / f"{strategy}.npz", env, state.pid, None, INDEX_ROOT
                )
        finally:
            stack.down(tmp / "stack")
        local = {}
        folder = paths[0].parent if len({p.parent for p in paths}) == 1 else None  # cached granules share one
        local_indexes = str(tmp / "indexes")  # a local file's identity is its mtime, not the S3 ETag
        if args.local and folder and indexed:
            build_indexes(str(folder), config, grid, local_indexes)
        for strategy in args.strategies if args.local and folder else []:
            print(f"running {strategy} on local files ...", flush=True)
            local[strategy] = run_strategy(
                strategy,
                tmp / "catalog.json",
                shard_key,
                tmp / f"{strategy}-local.npz",
                {},
                os.getpid(),
                folder,
                local_indexes,
            )
            local[strategy].pop("emulator_cpu_s", None)
        reference = args.strategies[0]
        identical = {}
        for strategy in args.strategies[1:]:
            same, why = same_statistics(tmp / f"{reference}.npz", tmp / f"{strategy}.npz")
            identical[strategy] = same
            print(f"statistics {strategy} vs {reference}: {why}")
        for strategy in local:
            same, why = same_statistics(tmp / f"{reference}.npz", tmp / f"{strategy}-local.npz")
            identical[f"{strategy} (local files)"] = same
            print(f"statistics {strategy} on local files vs {reference}: {why}")

    print()
    delays = " ".join(s3_delays_of(args).argv())
    print(
        f"through the emulator's S3 (moto on loopback{'; ' + delays if delays else ''}; {len(paths)} granules, "
        f"one shard, {args.spec.n_segments:,} segments per beam):"
    )
    print(table(results, minimum["bytes"]))
    summary = ratios(results, minimum["bytes"])
    for name, r in results.items():
        if r.get("read_by"):
            print(f"{name}: granules read by " + ", ".join(f"{k} {v}" for k, v in sorted(r["read_by"].items())))
    for name, r in summary.items():
        if name == "baseline":
            continue
        print(f"{name}: " + "; ".join(verdicts(r, name)))
    print(
        "emulator CPU per request ("
        + " / ".join(results)
        + "): "
        + " / ".join(f"{r['emulator_cpu_s'] / r['requests'] * 1000:.1f} ms" for r in results.values())
    )
    floor = emulator_floor(results, minimum)
    if floor:
        print(
            f"emulator-bound floor: fetching just the minimum takes >= {minimum['runs']:,} requests (one per "
            "run of adjacent "
            f"chunks), >= {floor['seconds']:.1f} s of the emulator's CPU at {floor['ms_per_request']:.1f} ms a request"
            + (f" = {floor['vs_baseline_wall']:.2f} x the baseline's wall time" if "vs_baseline_wall" in floor else "")
        )
    local_summary = {}
    if local:
        print()
        print("the same strategies on local files (no emulator, no HTTP: the client-side work alone):")
        print(table(local, minimum["bytes"]))
        local_summary = ratios(local, minimum["bytes"])
        for name, r in local_summary.items():
            if name != "baseline" and "wall_vs_baseline" in r:
                print(f"{name}: wall {r['wall_vs_baseline']:.3g} x baseline, CPU {r['cpu_vs_baseline']:.3g} x baseline")
    aggregation = time_aggregation(config)
    print(
        f"aggregation: {aggregation['points']:,} observations over {aggregation['cells']:,} cells, "
        f"{len(aggregation['statistics'])} statistics ({', '.join(aggregation['statistics'])}): "
        f"{aggregation['cpu_s']:.3f} s CPU (order 12, one window)"
    )
    print(aggregation_table(aggregation))
    report = {
        "input": {
            "granules": len(paths),
            "segments_per_beam": args.spec.n_segments,
            "bytes": size,
            "shard_key": shard_key,
            "through": [lat, lon],
            "seed": args.spec.seed,
        },
        "s3_delays": dataclasses.asdict(s3_delays_of(args)),
        "minimum": minimum,
        "catalog_step": catalog_cost,
        "index_step": index_cost,
        "emulator_floor": emulator_floor(results, minimum),
        "aggregation": aggregation,
        "strategies": results,
        "ratios": summary,
        "local_files": {"strategies": local, "ratios": local_summary},
        "identical_to_" + reference: identical,
        "all_identical": all(identical.values()),
        "memory_measure": "peak resident set (VmHWM) of each strategy's own process",
    }
    emit(report, args.json)
    return 0 if all(identical.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
