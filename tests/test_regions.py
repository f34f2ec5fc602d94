"""Regions: GeoJSON/box loading, spherical shard coverage, the packaged Antarctic basins."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import mortie
import numpy as np
import pytest

from producer.regions import (
    BASINS,
    BBox,
    box_around,
    box_region,
    load_region,
    packaged_regions,
    parse_bbox,
    read_geojson,
    region_from_geojson,
)
from producer.regions import basins as basins_cmd
from shared.errors import CatalogError

ORDER = 6


def square(lon0, lat0, size):
    """A closed GeoJSON ring, counter-clockwise."""
    return [[lon0, lat0], [lon0 + size, lat0], [lon0 + size, lat0 + size], [lon0, lat0 + size], [lon0, lat0]]


def cells_of(lat, lon):
    return np.atleast_1d(
        mortie.geo2mort(np.atleast_1d(np.asarray(lat, float)), np.atleast_1d(np.asarray(lon, float)), order=ORDER)
    )


def centres(cells):
    lat, lon = mortie.mort2geo(np.asarray(cells, np.uint64))
    return np.asarray(lat), (np.asarray(lon) + 180) % 360 - 180


def rotated(cells, dlon):
    """The cells under a rotation by ``dlon`` (a multiple of 90 maps HEALPix onto itself)."""
    lat, lon = centres(cells)
    return np.unique(cells_of(lat, lon + dlon))


# -- GeoJSON ------------------------------------------------------------------------------------
def test_every_geojson_container_gives_the_same_region():
    poly = {"type": "Polygon", "coordinates": [square(10, 40, 5)]}
    docs = [
        poly,
        {"type": "MultiPolygon", "coordinates": [poly["coordinates"]]},
        {"type": "Feature", "properties": {}, "geometry": poly},
        {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": poly}]},
        {"type": "GeometryCollection", "geometries": [poly]},
    ]
    covers = [region_from_geojson(d, "r").shards() for d in docs]
    assert covers[0].size > 0
    for c in covers[1:]:
        np.testing.assert_array_equal(c, covers[0])


def test_a_hole_removes_the_cells_inside_it_and_keeps_its_edge():
    outer, hole = square(0, 40, 12), square(3, 43, 6)[::-1]  # RFC 7946: holes clockwise
    solid = region_from_geojson({"type": "Polygon", "coordinates": [outer]}, "solid").shards()
    donut = region_from_geojson({"type": "Polygon", "coordinates": [outer, hole]}, "donut").shards()
    assert set(donut) < set(solid)
    assert cells_of(46, 6)[0] not in donut  # the middle of the hole
    assert cells_of(43.05, 6)[0] in donut  # on the hole's edge: data there can still be in the polygon
    assert cells_of(41, 1)[0] in donut


def test_overlapping_multipolygon_parts_are_unioned_not_cancelled():
    a, b = square(0, 0, 10), square(5, 5, 10)
    multi = region_from_geojson({"type": "MultiPolygon", "coordinates": [[a], [b]]}, "m").shards()
    each = [region_from_geojson({"type": "Polygon", "coordinates": [r]}, "p").shards() for r in (a, b)]
    np.testing.assert_array_equal(multi, np.union1d(*each))
    assert cells_of(7.5, 7.5)[0] in multi


def test_a_polygon_across_the_antimeridian_is_the_short_way_round():
    ring = [[175, -60], [-170, -75], [-169.8, -75], [175.2, -60], [175, -60]]
    shards = region_from_geojson({"type": "Polygon", "coordinates": [ring]}, "a").shards()
    moved = [[lon - 90, lat] for lon, lat in ring]  # same shape, away from the antimeridian
    reference = region_from_geojson({"type": "Polygon", "coordinates": [moved]}, "b").shards()
    np.testing.assert_array_equal(shards, rotated(reference, 90))
    _, lon = centres(shards)
    assert np.all((lon > 170) | (lon < -165)), "a planar reading would wrap the other way round the Earth"


def test_a_ring_around_the_pole_covers_the_pole():
    lons = np.arange(-180, 180.1, 2.0)
    ring = [[lo, -70.0] for lo in lons] + [[180, -90], [-180, -90], [-180, -70.0]]
    shards = region_from_geojson({"type": "Polygon", "coordinates": [ring]}, "cap").shards()
    lat, _ = centres(shards)
    assert cells_of(-89.99, 0)[0] in shards and cells_of(-89.99, 135)[0] in shards
    assert lat.max() < -69


def test_bad_geojson_is_a_clear_error(tmp_path):
    path = tmp_path / "point.geojson"
    path.write_text(json.dumps({"type": "Point", "coordinates": [0, 0]}))
    with pytest.raises(CatalogError, match="unsupported geometry type 'Point'"):
        read_geojson(path)
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 95], [2, 0], [0, 0]]]}))
    with pytest.raises(CatalogError, match="latitude outside"):
        read_geojson(path)
    with pytest.raises(CatalogError, match=f"not found \\(packaged regions: .*{BASINS}"):
        read_geojson(tmp_path / "missing.geojson")


def test_load_region_wants_exactly_one_region():
    with pytest.raises(CatalogError, match="exactly one region"):
        load_region()
    with pytest.raises(CatalogError, match="exactly one region"):
        load_region(polygon=BASINS, bbox="0,0,1,1")


# -- boxes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "0,10,5,5", "0,-91,5,5", "5,0,5,1", "-200,0,5,1"])
def test_bad_bbox_is_rejected(text):
    with pytest.raises(CatalogError, match="bbox"):
        parse_bbox(text)


def sampled_box(west, south, east, north, step=0.05):
    """Brute force: the cells of a dense grid of points inside the box."""
    span = (east - west) % 360 or 360
    lat, lon = np.meshgrid(np.arange(south, north + 1e-9, step), west + np.arange(0, span + 1e-9, step))
    return np.unique(cells_of(lat.ravel(), lon.ravel()))


@pytest.mark.parametrize("text", ["-60,60,-20,70", "170,-80,-170,-60", "10,-10,30,10", "-180,-90,180,-60"])
def test_a_box_covers_what_dense_sampling_finds(text):
    """Parallels are followed (not cut short by great circles) and W > E wraps the antimeridian;
    the only extra cells are the few whose edge lies on one of the box's meridians."""
    shards = box_region(parse_bbox(text)).shards()
    brute = sampled_box(*map(float, text.split(",")), step=0.1 if text.startswith("-180") else 0.05)
    assert set(brute) <= set(shards)
    assert len(shards) - len(brute) <= 0.05 * len(shards)


def test_a_box_across_the_antimeridian_stays_near_it():
    shards = box_region(parse_bbox("170,-80,-170,-60")).shards()
    _, lon = centres(shards)
    assert np.all((lon >= 160) | (lon <= -160)), "a planar reading would go the other way round the Earth"
    assert cells_of(-70, 180)[0] in shards


def test_a_polar_cap_box_stays_south_of_its_edge():
    lat, _ = centres(box_region(parse_bbox("-180,-90,180,-60")).shards())
    assert lat.max() < -59 and lat.min() < -89


def test_search_box_of_cells_across_the_antimeridian_wraps():
    shards = box_region(parse_bbox("170,-80,-170,-60")).shards()
    box = box_around(shards)
    assert box.west > box.east  # CMR's way of saying "crosses the antimeridian"
    assert 160 <= box.west <= 170 and -170 <= box.east <= -160
    assert -82 <= box.south <= -80 and -60 <= box.north <= -58


def test_search_box_of_polar_cells_takes_every_longitude():
    box = box_around(cells_of([-89.5, -85], [10, 100]))
    assert box == BBox(-180.0, -90.0, 180.0, box.north) and box.north > -85


# -- the Antarctic basins -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def basin_shards():
    return read_geojson(BASINS).shards()


def test_basins_are_packaged(basin_shards):
    assert BASINS in packaged_regions()
    region = load_region(polygon=BASINS)
    assert region.name == BASINS and len(region.polygons) == 27
    assert basin_shards.dtype == np.uint64 and basin_shards.size == 1344
    assert np.all(np.diff(basin_shards.astype(np.float64)) > 0)


def test_basins_give_the_coverage_mortie_computes_for_its_own_basins(basin_shards):
    source = basins_cmd.mortie_source()
    if not source.is_file():
        pytest.skip("mortie's basin table is not installed")
    want = basins_cmd.reference_coverage(basins_cmd.load_basins(source), ORDER)
    np.testing.assert_array_equal(basin_shards, want)


def test_basins_search_box_is_the_antarctic_cap(basin_shards):
    box = read_geojson(BASINS).search_box(basin_shards)
    assert box.west == -180 and box.east == 180 and box.south == -90 and -62.5 < box.north < -60


def test_simplify_keeps_ends_and_stays_within_tolerance():
    t = np.linspace(0, 1, 500)
    lats, lons = -70 + 0.001 * np.sin(40 * t), -10 + 20 * t
    keep = basins_cmd.simplify(lats, lons, tolerance=0.01)
    assert keep[0] == 0 and keep[-1] == 499 and keep.size < 10
    wiggly = basins_cmd.simplify(-70 + 1.0 * np.sin(40 * t), lons, tolerance=0.01)
    assert wiggly.size > 50


def test_build_command_writes_geojson_with_mortie_s_coverage(tmp_path):
    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    rows = [
        np.column_stack([-75 + 3 * np.sin(t), 60 + 8 * np.cos(t), np.full(t.size, 1)]),
        np.column_stack([-80 + 2 * np.sin(t), 179 + 5 * np.cos(t), np.full(t.size, 2)]),
    ]  # across 180
    source = tmp_path / "basins.txt"
    np.savetxt(source, np.vstack(rows), fmt="%.7f")
    output = tmp_path / "basins.geojson"
    assert basins_cmd.main(["--source", str(source), "--output", str(output)]) == 0
    region = read_geojson(output)
    assert len(region.polygons) == 2
    np.testing.assert_array_equal(region.shards(), basins_cmd.reference_coverage(basins_cmd.load_basins(source)))


def test_the_packaged_file_says_how_to_regenerate_it():
    doc = json.loads(resources.files("producer.regions").joinpath(f"{BASINS}.geojson").read_text())
    assert "python -m producer.regions.basins" in doc["description"]
    assert Path(basins_cmd.DEFAULT_OUTPUT).name == f"{BASINS}.geojson"


def test_geojson_without_coordinates_says_what_is_missing(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text(json.dumps({"type": "Feature", "geometry": {"type": "Polygon"}}))
    with pytest.raises(
        CatalogError, match="broken.geojson: not a usable GeoJSON polygon: missing member 'coordinates'"
    ):
        read_geojson(path)
    path.write_text("{not json")
    with pytest.raises(CatalogError, match="not a usable GeoJSON polygon"):
        read_geojson(path)
