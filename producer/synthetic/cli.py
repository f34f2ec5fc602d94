"""``python -m producer.synthetic``: write a set of granules from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from producer.synthetic.generate import generate
from producer.synthetic.simulate import check_through

__all__ = ["glue_negative_value", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _lat_lon(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAT,LON in degrees, e.g. -75.5,120 (got {text!r})") from None
    try:
        return check_through((lat, lon))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def glue_negative_value(argv: list[str], option: str) -> list[str]:
    """``--through -75,120`` -> ``--through=-75,120``: argparse takes a leading '-' for an option."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == option and arg.startswith("-"):
            out[-1] = f"{option}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m producer.synthetic",
        description="Write seeded synthetic ICESat-2 ATL06 granules (real layout, Antarctic tracks).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
        "  python -m producer.synthetic --output data --granules 50 --segments 142000 --through -75.5,120",
    )
    add = parser.add_argument
    add("--output", required=True, type=Path, metavar="DIR", help="directory to write into (created if missing)")
    add("--granules", required=True, type=_int_at_least(1), metavar="N", help="number of granules (distinct RGTs)")
    add("--segments", required=True, type=_int_at_least(1), metavar="N", help="segments per beam (full length: 142000)")
    add("--spacing", type=_positive_float, default=20.0, metavar="M", help="along-track spacing in m (default 20)")
    add("--seed", type=_int_at_least(0), default=0, metavar="S", help="random seed (default 0)")
    add("--cycle", type=_int_at_least(1), default=14, metavar="C", help="cycle number (default 14)")
    add("--through", type=_lat_lon, metavar="LAT,LON", help="make every granule pass within ~2 km of this point")
    args = parser.parse_args(glue_negative_value(list(sys.argv[1:] if argv is None else argv), "--through"))
    if args.output.exists() and not args.output.is_dir():
        parser.error(f"argument --output: not a directory: {args.output}")

    began = time.perf_counter()
    try:
        paths = generate(
            args.output,
            n_granules=args.granules,
            n_segments=args.segments,
            spacing_m=args.spacing,
            seed=args.seed,
            through=args.through,
            cycle=args.cycle,
        )
    except (OSError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} granules, {size / 1e6:.1f} MB, in {time.perf_counter() - began:.1f} s")
    return 0
