"""The CMR catalog builder, offline: UMM-G fixtures served by a fake session."""

from __future__ import annotations

import copy
import io
import json
import re
from argparse import Namespace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import mortie
import numpy as np
import pytest
import requests
from requests.structures import CaseInsensitiveDict

from producer import cmr
from producer.cycles import (
    DATA_START,
    cycle_search_window,
    nominal_cycle_dates,
    parse_granule_name,
)
from producer.regions import BASINS, read_geojson
from shared.catalog import load_catalog
from shared.errors import CatalogError

FIXTURES = Path(__file__).parent / "fixtures" / "cmr"
URL = "https://cmr.earthdata.nasa.gov/search/granules.umm_json?short_name=ATL06&version=006"
ANTIMERIDIAN = "ATL06_20220103031244_01861412_006_01.h5"
POLAR = "ATL06_20220105153508_02241411_006_01.h5"
MULTIPOLYGON = "ATL06_20220110112231_02981410_006_01.h5"
CYCLE_13 = "ATL06_20211220070142_13871310_006_01.h5"
GREENLAND = "ATL06_20220111204407_03191403_006_01.h5"


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def response(status=200, body=None, headers=None):
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body if body is not None else {}).encode()
    r.headers = CaseInsensitiveDict({"Content-Type": "application/vnd.nasa.cmr.umm_results+json", **(headers or {})})
    return r


class FakeCMR:
    """Serves pages by the CMR-Search-After token, like CMR; failures can be queued in front."""

    def __init__(self, pages, failures=()):
        self.pages = pages
        self.failures = list(failures)
        self.requests = []

    @classmethod
    def two_pages(cls, **kw):
        return cls([fixture("atl06_page_1.json"), fixture("atl06_page_2.json")], **kw)

    def get(self, url, headers=None, params=None, timeout=None):
        self.requests.append({"url": url, "headers": dict(headers or {}), "params": dict(params or {})})
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        token = (headers or {}).get("CMR-Search-After")
        index = 0 if token is None else int(json.loads(token)[0])
        body = self.pages[index]
        more = {"CMR-Search-After": json.dumps([index + 1, "G-token"])} if index + 1 < len(self.pages) else {}
        return response(200, body, {"CMR-Hits": str(body["hits"]), **more})


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def items():
    return fixture("atl06_page_1.json")["items"] + fixture("atl06_page_2.json")["items"]


def granule(name):
    return next(cmr.parse_granule(i) for i in items() if i["umm"]["GranuleUR"] == name)


def args(**kw):
    base = dict(
        short_name="ATL06",
        version="006",
        cycle=14,
        start_date=None,
        end_date=None,
        polygon=BASINS,
        bbox=None,
        output=None,
        dry_run=False,
    )
    return Namespace(**{**base, **kw})


# -- paging and retries -------------------------------------------------------------------------
def test_pages_follow_cmr_search_after():
    session = FakeCMR.two_pages()
    result = cmr.fetch_granules(URL, session=session, sleep=Sleeps())
    assert (result.hits, result.pages, len(result.items)) == (5, 2, 5)
    assert [r["headers"].get("CMR-Search-After") for r in session.requests] == [None, json.dumps([1, "G-token"])]
    assert all(r["params"] == {"page_size": cmr.PAGE_SIZE} and r["url"] == URL for r in session.requests)
    assert session.requests[0]["headers"]["Client-Id"] == cmr.CLIENT_ID


def test_an_empty_result_is_one_request_and_no_items():
    session = FakeCMR([fixture("atl06_empty.json")])
    result = cmr.fetch_granules(URL, session=session, sleep=Sleeps())
    assert (result.hits, result.pages, result.items) == (0, 1, [])


def test_a_transient_failure_is_retried_with_backoff():
    sleeps = Sleeps()
    session = FakeCMR.two_pages(
        failures=[response(503, {"errors": ["busy"]}), requests.ConnectionError("reset by peer")]
    )
    result = cmr.fetch_granules(URL, session=session, sleep=sleeps)
    assert len(result.items) == 5 and len(session.requests) == 4
    assert sleeps == [1.0, 2.0]


def test_retry_after_is_honoured():
    sleeps = Sleeps()
    session = FakeCMR.two_pages(failures=[response(429, {"errors": ["slow down"]}, {"Retry-After": "7"})])
    cmr.fetch_granules(URL, session=session, sleep=sleeps)
    assert sleeps == [7.0]


def test_cmr_that_stays_down_is_a_clear_error():
    sleeps = Sleeps()
    session = FakeCMR.two_pages(failures=[requests.ConnectionError("Name or service not known")] * 5)
    with pytest.raises(
        CatalogError, match=r"cannot reach NASA CMR at cmr\.earthdata\.nasa\.gov after 5 attempts .*ConnectionError"
    ):
        cmr.fetch_granules(URL, session=session, sleep=sleeps)
    assert len(session.requests) == 5 and sleeps == [1.0, 2.0, 4.0, 8.0]


def test_an_unreachable_host_through_the_real_transport_is_a_clear_error():
    url = "https://cmr.invalid/search/granules.umm_json?short_name=ATL06"
    with pytest.raises(CatalogError, match=r"cannot reach NASA CMR at cmr\.invalid after 2 attempts"):
        cmr.fetch_granules(url, retry=cmr.Retry(attempts=2, timeout=5), sleep=Sleeps())


def test_a_rejected_query_is_not_retried():
    session = FakeCMR.two_pages(failures=[response(400, {"errors": ["Parameter [bogus] was not recognized."]})])
    with pytest.raises(CatalogError, match=r"HTTP 400\): Parameter \[bogus\] was not recognized"):
        cmr.fetch_granules(URL, session=session, sleep=Sleeps())
    assert len(session.requests) == 1


def test_paging_that_ends_early_is_not_a_silent_partial_catalog():
    page = fixture("atl06_page_1.json")
    session = FakeCMR([{**page, "hits": 9}])  # no CMR-Search-After although 6 more are due
    with pytest.raises(CatalogError, match="reported 9 granules but paging stopped after 3"):
        cmr.fetch_granules(URL, session=session, sleep=Sleeps())


# -- UMM-G --------------------------------------------------------------------------------------
def test_granule_fields_and_links():
    g = granule(ANTIMERIDIAN)
    assert g.name == ANTIMERIDIAN and g.concept_id == "G2272415001-NSIDC_CPRD" and g.cycle == 14
    assert g.s3 == f"s3://nsidc-cumulus-prod-protected/ATLAS/ATL06/006/2022/01/03/{ANTIMERIDIAN}"
    assert (
        g.https
        == f"https://data.nsidc.earthdatacloud.nasa.gov/nsidc-cumulus-prod-protected/ATLAS/ATL06/006/2022/01/03/{ANTIMERIDIAN}"
    )
    ref = g.ref()
    assert (ref.id, ref.s3, ref.https) == (g.name, g.s3, g.https)


def test_cycle_comes_from_the_name_then_from_track():
    item = copy.deepcopy(items()[0])
    item["umm"]["GranuleUR"] = "SC:ATL06.006:250000001"  # not the ICESat-2 naming convention
    item["umm"]["SpatialExtent"]["HorizontalSpatialDomain"]["Track"]["Cycle"] = 15
    assert cmr.parse_granule(item).cycle == 15
    del item["umm"]["SpatialExtent"]["HorizontalSpatialDomain"]["Track"]
    assert cmr.parse_granule(item).cycle is None


def test_parse_granule_name():
    n = parse_granule_name("ATL06_20220101003510_01531405_006_01.h5")
    assert (n.rgt, n.cycle, n.region, n.release, n.revision) == (153, 14, 5, "006", "01")
    assert n.start == datetime(2022, 1, 1, 0, 35, 10, tzinfo=UTC)
    assert parse_granule_name("s3://bucket/path/ATL06_20181013230000_02340101_006_01.h5").rgt == 234
    assert parse_granule_name("MOD09A1.A2000185.h11v05.h5") is None


def test_footprint_shapes():
    geometry = {
        "GPolygons": [
            {
                "Boundary": {
                    "Points": [
                        {"Longitude": 0, "Latitude": 40},
                        {"Longitude": 12, "Latitude": 40},
                        {"Longitude": 12, "Latitude": 52},
                        {"Longitude": 0, "Latitude": 52},
                        {"Longitude": 0, "Latitude": 40},
                    ]
                },
                "ExclusiveZone": {
                    "Boundaries": [
                        {
                            "Points": [
                                {"Longitude": 3, "Latitude": 43},
                                {"Longitude": 3, "Latitude": 49},
                                {"Longitude": 9, "Latitude": 49},
                                {"Longitude": 9, "Latitude": 43},
                                {"Longitude": 3, "Latitude": 43},
                            ]
                        }
                    ]
                },
            }
        ],
        "Lines": [{"Points": [{"Longitude": 179.5, "Latitude": -70}, {"Longitude": -179.5, "Latitude": -71}]}],
        "BoundingRectangles": [
            {
                "WestBoundingCoordinate": 179,
                "NorthBoundingCoordinate": 10,
                "EastBoundingCoordinate": -179,
                "SouthBoundingCoordinate": 9,
            }
        ],
        "Points": [{"Longitude": 30, "Latitude": 60}],
    }
    fp = cmr.parse_footprint(geometry)
    assert len(fp.polygons) == 1 and len(fp.polygons[0]) == 2 and fp.polygons[0][0][0].size == 4
    shards = set(cmr.footprint_shards(fp))

    def cell(lat, lon):
        return int(mortie.geo2mort(np.array([lat], float), np.array([lon], float), order=6)[0])

    assert cell(41, 1) in shards and cell(46, 6) not in shards  # the exclusive zone is a hole
    assert cell(-70.5, 180) in shards and cell(-70.5, 0) not in shards  # the line goes the short way
    assert cell(9.5, 179.9) in shards and cell(9.5, -179.9) in shards and cell(9.5, 0) not in shards
    assert cell(60, 30) in shards
    assert not cmr.parse_footprint({})


def track_cells(g, n=4000):
    """Brute force: cells of points densely spread over the footprint strip (both edges and between)."""
    cells = []
    for outer, *_ in g.footprint.polygons:
        xyz = _unit(*outer)
        half = len(xyz) // 2
        right, left = xyz[:half], xyz[half:][::-1]
        for w in np.linspace(0, 1, 5):
            side = (1 - w) * right + w * left
            t = np.linspace(0, len(side) - 1, n)
            i = np.minimum(t.astype(int), len(side) - 2)
            f = (t - i)[:, None]
            p = (1 - f) * side[i] + f * side[i + 1]
            p /= np.linalg.norm(p, axis=1)[:, None]
            cells.append(
                mortie.geo2mort(np.degrees(np.arcsin(p[:, 2])), np.degrees(np.arctan2(p[:, 1], p[:, 0])), order=6)
            )
    return np.unique(np.concatenate(cells))


def _unit(lats, lons):
    la, lo = np.radians(lats), np.radians(lons)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)


@pytest.mark.parametrize("name", [ANTIMERIDIAN, POLAR, MULTIPOLYGON])
def test_footprint_coverage_is_what_the_strip_touches(name):
    g = granule(name)
    shards = cmr.footprint_shards(g.footprint)
    brute = track_cells(g)
    assert set(brute) <= set(shards)
    assert len(shards) - len(brute) <= 2  # at most a corner-touching cell or two beyond the sampled points


def test_antimeridian_granule_is_covered_on_both_sides_only():
    shards = cmr.footprint_shards(granule(ANTIMERIDIAN).footprint)
    lat, lon = mortie.mort2geo(shards)
    lon = (np.asarray(lon) + 180) % 360 - 180
    assert (lon > 170).any() and (lon < -170).any()
    assert len(shards) < 40, "a planar reading would cover a band around the Earth"


def test_polar_granule_reaches_88_south():
    shards = cmr.footprint_shards(granule(POLAR).footprint)
    lat, _ = mortie.mort2geo(shards)
    assert np.min(lat) < -87.5 and len(shards) < 60


def test_multipolygon_footprint_is_the_union_of_its_parts():
    fp = granule(MULTIPOLYGON).footprint
    assert len(fp.polygons) == 2
    parts = [set(cmr.footprint_shards(cmr.Footprint(polygons=(p,)))) for p in fp.polygons]
    assert set(cmr.footprint_shards(fp)) == parts[0] | parts[1]
    assert parts[0] - parts[1] and parts[1] - parts[0]


# -- selection ----------------------------------------------------------------------------------
def test_cycle_selection_uses_the_granules_own_cycle():
    counts = cmr.Counts()
    granules = [cmr.parse_granule(i) for i in items()]
    kept = cmr.select_cycle(granules, 14, counts)
    assert CYCLE_13 not in {g.name for g in kept} and len(kept) == 4 and counts.other_cycle == 1
    assert len(cmr.select_cycle(granules, None, cmr.Counts())) == 5


def test_duplicates_keep_the_record_with_s3():
    g = granule(POLAR)
    https_only = cmr.Granule(g.name, "G1-NSIDC_ECS", g.cycle, None, g.https, g.footprint)
    counts = cmr.Counts()
    [kept] = cmr.unique_granules([https_only, g], counts)
    assert kept.s3 == g.s3 and counts.duplicates == 1


def test_granules_without_a_data_link_or_footprint_are_counted_not_lost_silently():
    g = granule(POLAR)
    counts = cmr.Counts()
    shards = cmr.assign_shards(
        [cmr.Granule("a", None, 14, None, None, g.footprint), cmr.Granule("b", None, 14, g.s3, None, cmr.Footprint())],
        np.array([], np.uint64),
        counts,
    )
    assert shards == {} and (counts.no_data_link, counts.no_footprint) == (1, 1)


def test_a_malformed_footprint_names_the_granule():
    item = copy.deepcopy(items()[0])
    geometry = item["umm"]["SpatialExtent"]["HorizontalSpatialDomain"]["Geometry"]
    geometry["GPolygons"] = [{"Points": []}]  # no Boundary
    with pytest.raises(CatalogError, match=f"CMR granule {ANTIMERIDIAN}: malformed footprint"):
        cmr.parse_granule(item)
    geometry["GPolygons"] = [
        {"Boundary": {"Points": [{"Longitude": 0, "Latitude": 0}, {"Longitude": 1, "Latitude": 1}]}}
    ]
    g = cmr.parse_granule(item)
    with pytest.raises(CatalogError, match=f"granule {ANTIMERIDIAN}: cannot cover its footprint"):
        cmr.assign_shards([g], np.array([], np.uint64), cmr.Counts())


# -- cycles -------------------------------------------------------------------------------------
def test_cycle_14_window_contains_the_published_cycle():
    start, end = cycle_search_window(14)
    assert start <= datetime(2021, 12, 22, tzinfo=UTC) and end >= datetime(2022, 3, 23, 23, 59, 59, tzinfo=UTC)
    naive = date(2018, 10, 13) + timedelta(days=91 * 13)
    assert naive > date(2021, 12, 22) + timedelta(days=15), "the naive formula really is ~17 days late"


def test_every_cycle_window_holds_its_nominal_cycle_and_no_data_before_launch():
    for cycle in range(1, 40):
        first, last = nominal_cycle_dates(cycle)
        start, end = cycle_search_window(cycle)
        assert start.date() <= max(first, DATA_START) and end.date() >= last and start.date() >= DATA_START
    assert nominal_cycle_dates(2)[0] - nominal_cycle_dates(1)[0] == timedelta(days=91)


# -- the command --------------------------------------------------------------------------------
class Offline:
    def get(self, *a, **kw):
        raise AssertionError("a dry run must not talk to CMR")


def test_dry_run_cycle_14_prints_a_window_that_contains_the_cycle():
    out = io.StringIO()
    assert cmr.main(args(dry_run=True, output="catalog.json"), session=Offline(), out=out) == 0
    text = out.getvalue()
    start, end = re.search(r"date window: (\S+) \.\. (\S+)", text).groups()
    assert start[:10] <= "2021-12-22" and end[:10] >= "2022-03-23"
    assert "short_name=ATL06" in text and "version=006" in text and "temporal[]=" in text and "bounding_box=" in text
    assert f"region: {BASINS} (1344 order-6 shards)" in text


def test_dry_run_with_dates_and_a_box(tmp_path):
    out = io.StringIO()
    cmr.main(
        args(
            cycle=None,
            start_date="2022-01-01",
            end_date="2022-01-31",
            polygon=None,
            bbox="170,-80,-170,-60",
            dry_run=True,
        ),
        out=out,
    )
    text = out.getvalue()
    assert (
        "temporal[]=2022-01-01T00:00:00Z,2022-01-31T23:59:59Z" in text
        and "bounding_box=170.0,-80.0,-170.0,-60.0" in text
    )
    assert "cycle" not in text.split("date window")[1].splitlines()[1]


def test_catalog_from_cmr_for_the_antarctic_basins(tmp_path):
    output = tmp_path / "catalog.json"
    out = io.StringIO()
    assert cmr.main(args(output=str(output)), session=FakeCMR.two_pages(), sleep=Sleeps(), out=out) == 0
    catalog = load_catalog(output)
    basins = set(read_geojson(BASINS).shards().tolist())
    assert catalog.shard_keys and set(catalog.shard_keys) <= basins
    names = {g.id for refs in catalog.shards.values() for g in refs}
    assert names == {ANTIMERIDIAN, POLAR, MULTIPOLYGON}  # cycle 13 and Greenland dropped
    for name in names:
        want = set(cmr.footprint_shards(granule(name).footprint).tolist()) & basins
        assert {k for k, refs in catalog.shards.items() if name in {g.id for g in refs}} == want
    m = catalog.metadata.model_dump()
    assert (m["source"], m["short_name"], m["version"], m["cycle"], m["region"]) == ("cmr", "ATL06", "006", 14, BASINS)
    assert m["start_date"] <= "2021-12-22" and m["end_date"] >= "2022-03-23"
    assert m["query"]["url"].startswith("https://cmr.earthdata.nasa.gov/search/granules.umm_json?short_name=ATL06")
    assert m["query"]["pages"] == 2 and m["created"] and "build_seconds" in m
    assert m["counts"] == {
        "cmr_hits": 5,
        "received": 5,
        "duplicates": 0,
        "other_cycle": 1,
        "unknown_cycle": 0,
        "no_data_link": 0,
        "no_footprint": 0,
        "outside_region": 1,
        "kept": 3,
    }
    text = out.getvalue()
    sizes = [len(v) for v in catalog.shards.values()]
    assert f"{len(catalog.shard_keys)} shards, 3 granules" in text
    assert f"granules per shard: min {min(sizes)}, mean {np.mean(sizes):.1f}, max {max(sizes)}" in text
    raw = json.loads(output.read_text())
    assert all(isinstance(k, int) and k > 2**63 for k in raw["shard_keys"]), "morton words stay unsigned"


def test_catalog_for_a_polar_box_keeps_the_polar_granule_whole(tmp_path):
    output = tmp_path / "catalog.json"
    cmr.main(
        args(polygon=None, bbox="-180,-90,180,-60", output=str(output)),
        session=FakeCMR.two_pages(),
        sleep=Sleeps(),
        out=io.StringIO(),
    )
    catalog = load_catalog(output)
    polar = {k for k, refs in catalog.shards.items() if POLAR in {g.id for g in refs}}
    assert polar == set(cmr.footprint_shards(granule(POLAR).footprint).tolist())


def test_no_granules_is_an_error_and_writes_nothing(tmp_path):
    output = tmp_path / "catalog.json"
    with pytest.raises(CatalogError, match="no ATL06 granules matched .*nothing written"):
        cmr.main(
            args(output=str(output)), session=FakeCMR([fixture("atl06_empty.json")]), sleep=Sleeps(), out=io.StringIO()
        )
    assert not output.exists()


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(start_date="2022-01-01"), "either --cycle or --start-date"),
        (dict(cycle=None), "give --cycle N, or both"),
        (dict(cycle=None, start_date="2022-02-01", end_date="2022-01-01"), "is after"),
        (dict(cycle=None, start_date="01/02/2022", end_date="2022-03-01"), "cannot read date"),
        (dict(cycle=0), "1 or more"),
        (dict(cycle="x"), "whole number"),
        (dict(bbox="0,0,1,1"), "exactly one region"),
        (dict(output=None), "--output is required"),
    ],
)
def test_bad_arguments_are_one_line_errors(bad, message):
    with pytest.raises(CatalogError, match=message) as err:
        cmr.main(args(**{"output": "x.json", **bad}), session=Offline(), out=io.StringIO())
    assert "\n" not in str(err.value)


def test_version_is_cmr_s_string():
    assert (
        cmr._version(None) == "006"
        and cmr._version("6") == "006"
        and cmr._version(6) == "006"
        and cmr._version("V1") == "V1"
    )
