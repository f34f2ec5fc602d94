"""Build a shard map from NASA CMR: `python -m producer catalog ...`.

search (earthaccess query, paged, retried) -> UMM-G granules -> keep one cycle by the granules'
own cycle number -> footprint -> order-6 shards (mortie, spherical) -> only shards in the
region -> ``ShardMap.build`` (the one writer) with provenance.

earthaccess builds the query (no login is needed to search); the transport is ours because
earthaccess pages without retrying. Anything with ``get(url, headers=, params=, timeout=)``
returning a ``requests.Response`` can stand in for the session, which is how the paging and
retry paths are tested offline.

Over 400 lines: the query, paging, UMM-G parsing and footprint coverage are one pipeline with
one caller; each step is a function of its own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

import mortie
import numpy as np
import requests
from earthaccess.search import DataGranules

from producer.cycles import cycle_search_window, day_end, day_start, nominal_cycle_dates, parse_granule_name
from producer.regions import BBox, Polygon, Region, Ring, box_polygons, load_region, polygon_shards, shards_of
from shared.catalog import GranuleRef, ShardMap
from shared.errors import CatalogError
from shared.grid import DEFAULT_GRID, PARENT_ORDER

DEFAULT_VERSION = "006"
PROVIDER = "NSIDC_CPRD"  # NSIDC's cloud provider: the copies with s3:// links the workers read
PAGE_SIZE = 2000  # CMR's maximum
CLIENT_ID = "icesat2-shard-queue"  # CMR asks clients to identify themselves
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
DATA_LINK_TYPES = frozenset({"GET DATA", "GET DATA VIA DIRECT ACCESS"})


# -- the query ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchSpec:
    short_name: str
    version: str
    start: datetime
    end: datetime
    box: BBox
    provider: str = PROVIDER
    cycle: int | None = None

    def query(self) -> DataGranules:
        q = DataGranules().short_name(self.short_name).version(self.version).provider(self.provider)
        return q.temporal(_iso(self.start), _iso(self.end)).bounding_box(*self.box)

    @property
    def url(self) -> str:
        return self.query()._build_url()


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the transport: paging with retries --------------------------------------------------------
@dataclass(frozen=True)
class Retry:
    attempts: int = 5
    backoff: float = 1.0  # seconds before the first retry, doubled for each next one
    max_delay: float = 30.0
    timeout: float = 60.0  # per request

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_delay)
        return min(self.backoff * 2 ** (attempt - 1), self.max_delay)


@dataclass
class SearchResult:
    items: list[dict[str, Any]]
    hits: int
    pages: int


def fetch_granules(
    url: str,
    session: Any = None,
    page_size: int = PAGE_SIZE,
    retry: Retry = Retry(),
    sleep: Callable[[float], None] = time.sleep,
) -> SearchResult:
    """Every UMM-G item the search matches, following CMR-Search-After from page to page."""
    session = requests.Session() if session is None else session
    headers = {"Client-Id": CLIENT_ID}
    items: list[dict[str, Any]] = []
    hits, pages = 0, 0
    while True:
        response = _get(session, url, headers, {"page_size": page_size}, retry, sleep)
        body = _json(response)
        page = body.get("items") or []
        if pages == 0:  # the total as of the first page; later pages page through that snapshot
            hits = int(body.get("hits", response.headers.get("CMR-Hits", 0)))
        items.extend(page)
        pages += 1
        after = response.headers.get("CMR-Search-After")
        if not page or len(items) >= hits or not after:
            break
        headers["CMR-Search-After"] = after
    if len(items) < hits:
        raise CatalogError(
            f"CMR reported {hits} granules but paging stopped after {len(items)} ({pages} pages); try again"
        )
    return SearchResult(items, hits, pages)


def _get(session: Any, url: str, headers: dict, params: dict, retry: Retry, sleep: Callable[[float], None]) -> Any:
    """One page, retrying connection failures, timeouts, 429 and 5xx with exponential backoff."""
    host = urlsplit(url).netloc
    for attempt in range(1, retry.attempts + 1):
        retry_after = None
        try:
            response = session.get(url, headers=dict(headers), params=params, timeout=retry.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = f"{type(exc).__name__}: {_root_cause(exc)}"
        else:
            if response.status_code < 400:
                return response
            if response.status_code not in TRANSIENT_STATUS:
                raise CatalogError(f"CMR rejected the search (HTTP {response.status_code}): {_cmr_errors(response)}")
            reason = f"HTTP {response.status_code}"
            retry_after = response.headers.get("Retry-After")
        if attempt < retry.attempts:
            sleep(retry.delay(attempt, retry_after))
    raise CatalogError(
        f"cannot reach NASA CMR at {host} after {retry.attempts} attempts (last: {reason}); check the network"
    )


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise CatalogError("CMR answered with something that is not JSON; try again") from None
    if not isinstance(body, dict):
        raise CatalogError("CMR answered with an unexpected JSON document (no 'items')")
    return body


def _cmr_errors(response: Any) -> str:
    try:
        return "; ".join(str(e) for e in response.json().get("errors", [])) or response.text[:200]
    except ValueError:
        return response.text[:200]


def _root_cause(exc: Exception) -> str:
    """urllib3's innermost reason without its connection-pool preamble, e.g. "Failed to resolve 'host'"."""
    inner = exc.args[0] if exc.args else exc
    text = str(getattr(inner, "reason", inner))
    return text.split("): ", 1)[-1].splitlines()[0][:200]


# -- UMM-G --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Footprint:
    """A granule's HorizontalSpatialDomain.Geometry; edges are great circles (GEODETIC)."""

    polygons: tuple[Polygon, ...] = ()
    lines: tuple[Ring, ...] = ()
    boxes: tuple[BBox, ...] = ()
    points: tuple[tuple[float, float], ...] = ()  # (lat, lon)

    def __bool__(self) -> bool:
        return bool(self.polygons or self.lines or self.boxes or self.points)


@dataclass(frozen=True)
class Granule:
    name: str
    concept_id: str | None
    cycle: int | None
    s3: str | None
    https: str | None
    footprint: Footprint = field(default_factory=Footprint)

    def ref(self) -> GranuleRef:
        return GranuleRef(id=self.name, s3=self.s3, https=self.https)


def parse_granule(item: dict[str, Any]) -> Granule:
    """One ``{"meta": ..., "umm": ...}`` item of a CMR umm_json response."""
    umm, meta = item.get("umm") or {}, item.get("meta") or {}
    name = umm.get("GranuleUR") or meta.get("native-id")
    if not name:
        raise CatalogError(f"CMR granule {meta.get('concept-id', '?')} has no GranuleUR")
    domain = (umm.get("SpatialExtent") or {}).get("HorizontalSpatialDomain") or {}
    s3, https = data_links(umm.get("RelatedUrls") or [], name)
    try:
        footprint = parse_footprint(domain.get("Geometry") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"CMR granule {name}: malformed footprint ({type(exc).__name__}: {exc})") from None
    return Granule(
        name=name,
        concept_id=meta.get("concept-id"),
        cycle=granule_cycle(name, domain),
        s3=s3,
        https=https,
        footprint=footprint,
    )


def granule_cycle(name: str, domain: dict[str, Any]) -> int | None:
    """The cycle from the name (``_ttttccrr_``), else from UMM-G's Track.Cycle."""
    parsed = parse_granule_name(name)
    if parsed:
        return parsed.cycle
    cycle = (domain.get("Track") or {}).get("Cycle")
    return int(cycle) if cycle is not None else None


def data_links(related_urls: Iterable[dict[str, Any]], name: str) -> tuple[str | None, str | None]:
    """(s3, https) of the granule file itself: not its metadata, browse images or OPeNDAP."""
    s3 = https = None
    for link in related_urls:
        url = link.get("URL", "")
        if link.get("Type") not in DATA_LINK_TYPES or "OPENDAP" in (link.get("Subtype") or "").upper():
            continue
        if url.rsplit("/", 1)[-1] != name and not url.endswith(".h5"):
            continue
        if url.startswith("s3://"):
            s3 = s3 or url
        elif url.startswith("https://"):
            https = https or url
    return s3, https


def parse_footprint(geometry: dict[str, Any]) -> Footprint:
    return Footprint(
        polygons=tuple(_gpolygon(g) for g in geometry.get("GPolygons") or []),
        lines=tuple(_points(line["Points"]) for line in geometry.get("Lines") or []),
        boxes=tuple(
            BBox(
                r["WestBoundingCoordinate"],
                r["SouthBoundingCoordinate"],
                r["EastBoundingCoordinate"],
                r["NorthBoundingCoordinate"],
            )
            for r in geometry.get("BoundingRectangles") or []
        ),
        points=tuple((p["Latitude"], p["Longitude"]) for p in geometry.get("Points") or []),
    )


def _gpolygon(g: dict[str, Any]) -> Polygon:
    holes = (g.get("ExclusiveZone") or {}).get("Boundaries") or []
    return (_points(g["Boundary"]["Points"]),) + tuple(_points(h["Points"]) for h in holes)


def _points(points: list[dict[str, Any]]) -> Ring:
    lats = np.array([p["Latitude"] for p in points], dtype=np.float64)
    lons = np.array([p["Longitude"] for p in points], dtype=np.float64)
    if lats.size > 1 and lats[0] == lats[-1] and lons[0] == lons[-1]:
        lats, lons = lats[:-1], lons[:-1]  # UMM-G closes polygon rings
    return lats, lons


def footprint_shards(footprint: Footprint, order: int = PARENT_ORDER) -> np.ndarray:
    """Every cell at ``order`` the footprint touches (spherical coverage: antimeridian- and pole-safe)."""
    covers = [polygon_shards(p, order) for p in footprint.polygons]
    covers += [_line_shards(lats, lons, order) for lats, lons in footprint.lines]
    covers += [shards_of(box_polygons(b), order) for b in footprint.boxes if b.west != b.east]
    if footprint.points:
        lats, lons = np.array(footprint.points, dtype=np.float64).T
        covers.append(np.atleast_1d(mortie.geo2mort(lats, lons, order=order)))
    return np.unique(np.concatenate(covers)).astype(np.uint64) if covers else np.empty(0, np.uint64)


def _line_shards(lats: np.ndarray, lons: np.ndarray, order: int) -> np.ndarray:
    if lats.size == 1:
        return np.atleast_1d(mortie.geo2mort(lats, lons, order=order))
    return np.asarray(mortie.linestring_coverage(lats, lons, order=order))


# -- selection and the shard map ----------------------------------------------------------------
@dataclass
class Counts:
    cmr_hits: int = 0
    received: int = 0
    duplicates: int = 0
    other_cycle: int = 0
    unknown_cycle: int = 0
    no_data_link: int = 0
    no_footprint: int = 0
    outside_region: int = 0
    kept: int = 0


def unique_granules(granules: Iterable[Granule], counts: Counts) -> list[Granule]:
    """One record per granule name, preferring one with an S3 link (the same file can be listed twice)."""
    by_name: dict[str, Granule] = {}
    for g in granules:
        if g.name in by_name:
            counts.duplicates += 1
            if by_name[g.name].s3 or not g.s3:
                continue
        by_name[g.name] = g
    return list(by_name.values())


def select_cycle(granules: Iterable[Granule], cycle: int | None, counts: Counts) -> list[Granule]:
    """Keep the granules of ``cycle`` by their own cycle number (all of them when no cycle is asked)."""
    if cycle is None:
        return list(granules)
    kept = []
    for g in granules:
        if g.cycle == cycle:
            kept.append(g)
        elif g.cycle is None:
            counts.unknown_cycle += 1
        else:
            counts.other_cycle += 1
    return kept


def assign_shards(
    granules: Iterable[Granule], region_shards: np.ndarray, counts: Counts, order: int = PARENT_ORDER
) -> dict[int, list[GranuleRef]]:
    """Shard key -> granules whose footprint touches it, for shards in the region only."""
    shards: dict[int, list[GranuleRef]] = {}
    for g in granules:
        if not (g.s3 or g.https):
            counts.no_data_link += 1
            continue
        if not g.footprint:
            counts.no_footprint += 1
            continue
        try:
            touched = footprint_shards(g.footprint, order)
        except ValueError as exc:  # mortie refuses degenerate rings (fewer than 3 vertices, NaN)
            raise CatalogError(f"granule {g.name}: cannot cover its footprint: {exc}") from None
        inside = np.intersect1d(touched, region_shards, assume_unique=True)
        if inside.size == 0:
            counts.outside_region += 1
            continue
        counts.kept += 1
        ref = g.ref()
        for key in inside.tolist():
            shards.setdefault(int(key), []).append(ref)
    return shards


# -- the command --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchPlan:
    spec: SearchSpec
    region: Region
    region_shards: np.ndarray


def plan(args: Any) -> SearchPlan:
    """Validate the command line and work out the search: window, region, box."""
    cycle, start_date, end_date = _cycle(args.cycle), args.start_date, args.end_date
    if cycle is not None and (start_date or end_date):
        raise CatalogError("give either --cycle or --start-date/--end-date, not both")
    if cycle is not None:
        start, end = cycle_search_window(cycle)
    elif start_date and end_date:
        start, end = _when(start_date, day_start), _when(end_date, day_end)
        if start > end:
            raise CatalogError(f"--start-date {start_date} is after --end-date {end_date}")
    else:
        raise CatalogError("give --cycle N, or both --start-date and --end-date")
    region = load_region(polygon=args.polygon, bbox=args.bbox)
    try:
        region_shards = region.shards()
    except ValueError as exc:  # mortie refuses degenerate rings
        raise CatalogError(f"region {region.name}: cannot cover it: {exc}") from None
    if region_shards.size == 0:
        raise CatalogError(f"region {region.name} covers no order-{PARENT_ORDER} shard")
    spec = SearchSpec(
        short_name=args.short_name or "ATL06",
        version=_version(args.version),
        start=start,
        end=end,
        box=region.search_box(region_shards),
        provider=getattr(args, "provider", None) or PROVIDER,
        cycle=cycle,
    )
    return SearchPlan(spec, region, region_shards)


def _cycle(value: str | int | None) -> int | None:
    if value is None:
        return None
    try:
        cycle = int(value)
    except ValueError:
        raise CatalogError(f"--cycle must be a whole number, not {value!r}") from None
    if cycle < 1:
        raise CatalogError(f"--cycle must be 1 or more, not {value}")
    return cycle


def _when(value: str | date | datetime, at: Callable[[date], datetime]) -> datetime:
    """A date (whole day) or a date-time (taken as UTC when naive)."""
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, date):
        return at(value)
    else:
        try:
            if len(value) == 10:
                return at(date.fromisoformat(value))
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise CatalogError(f"cannot read date {value!r}: use YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _version(version: str | int | None) -> str:
    """CMR versions are strings: ATL06 release 6 is '006'."""
    text = str(version or DEFAULT_VERSION)
    return text.zfill(3) if text.isdigit() else text


def describe(p: SearchPlan, output: str | None) -> str:
    """What a search would do, for --dry-run."""
    s = p.spec
    lines = [
        "CMR granule search (dry run: nothing fetched, nothing written)",
        f"  GET {s.url}&page_size={PAGE_SIZE}",
        "      then page by page with the CMR-Search-After header",
        f"  date window: {_iso(s.start)} .. {_iso(s.end)}",
    ]
    if s.cycle is not None:
        first, last = nominal_cycle_dates(s.cycle)
        lines.append(
            f"  cycle {s.cycle}: nominal {first} .. {last}; window padded, granules kept by their own cycle number"
        )
    lines += [
        f"  region: {p.region.name} ({p.region_shards.size} order-{PARENT_ORDER} shards), search box W,S,E,N = {s.box}",
        f"  output: {output or '(none)'}",
    ]
    return "\n".join(lines)


def build_catalog(p: SearchPlan, result: SearchResult, started: float) -> tuple[ShardMap, Counts]:
    counts = Counts(cmr_hits=result.hits, received=len(result.items))
    granules = unique_granules((parse_granule(item) for item in result.items), counts)
    granules = select_cycle(granules, p.spec.cycle, counts)
    shards = assign_shards(granules, p.region_shards, counts)
    s = p.spec
    metadata = {
        "source": "cmr",
        "short_name": s.short_name,
        "version": s.version,
        "cycle": s.cycle,
        "start_date": s.start.date().isoformat(),
        "end_date": s.end.date().isoformat(),
        "region": p.region.name,
        "region_shards": int(p.region_shards.size),
        "query": {
            "url": s.url,
            "provider": s.provider,
            "temporal": [_iso(s.start), _iso(s.end)],
            "bounding_box": str(s.box),
            "page_size": PAGE_SIZE,
            "pages": result.pages,
        },
        "counts": vars(counts),
        "build_seconds": round(time.monotonic() - started, 2),
    }
    return ShardMap.build(shards, metadata, DEFAULT_GRID), counts


def summary(shard_map: ShardMap, counts: Counts, output: str, region: str) -> str:
    sizes = np.array([len(v) for v in shard_map.shards.values()])
    totals = shard_map.metadata.totals
    dropped = {
        "duplicates": counts.duplicates,
        "of another cycle": counts.other_cycle,
        "of unknown cycle": counts.unknown_cycle,
        "without a data link": counts.no_data_link,
        "without a footprint": counts.no_footprint,
        f"outside {region}": counts.outside_region,
    }
    dropped_text = ", ".join(f"{n} {why}" for why, n in dropped.items() if n) or "none"
    return "\n".join(
        [
            f"wrote {output}: {totals.shards} shards, {totals.granules} granules, "
            f"{totals.granule_shard_pairs} granule-shard pairs",
            f"granules per shard: min {sizes.min()}, mean {sizes.mean():.1f}, max {sizes.max()}",
            f"CMR: {counts.cmr_hits} hits, {counts.received} received; dropped: {dropped_text}",
        ]
    )


def main(
    args: Any, *, session: Any = None, sleep: Callable[[float], None] = time.sleep, out: TextIO | None = None
) -> int:
    """`catalog` subcommand. Errors are CatalogError with a one-line message."""
    out = out or sys.stdout
    started = time.monotonic()
    p = plan(args)
    if args.dry_run:
        print(describe(p, args.output), file=out)
        return 0
    if not args.output:
        raise CatalogError("--output is required (or use --dry-run)")
    result = fetch_granules(p.spec.url, session=session, sleep=sleep)
    shard_map, counts = build_catalog(p, result, started)
    if not shard_map.shard_keys:
        raise CatalogError(
            f"no {p.spec.short_name} granules matched (CMR returned {counts.received}; "
            f"{counts.other_cycle} of another cycle, {counts.outside_region} outside {p.region.name}); nothing written"
        )
    shard_map.save(args.output)
    print(summary(shard_map, counts, args.output, p.region.name), file=out)
    return 0
