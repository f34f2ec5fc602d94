"""The synthetic ATL06 generator: real layout, readable by h5coro, deterministic, plausible tracks."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
from h5coro import filedriver, h5coro

from producer import synthetic
from producer.synthetic import FILL_F32, generate, simulate_granule, write_granule
from producer.synthetic.orbit import EARTH_RADIUS_M
from shared.grid import shard_keys_of
from shared.mission import ATLAS_EPOCH, ATLAS_SDP_GPS_EPOCH, BEAMS

FIELDS = {
    "latitude": np.float64,
    "longitude": np.float64,
    "h_li": np.float32,
    "h_li_sigma": np.float32,
    "atl06_quality_summary": np.int8,
    "segment_id": np.int32,
    "delta_time": np.float64,
}
NAME = re.compile(r"^ATL06_(\d{14})_(\d{4})(\d{2})(\d{2})_006_01\.h5$")
TINY = dict(n_segments=2000, spacing_m=500.0)  # ~1,000 km: crosses several ~100 km shards
POINT = (-75.5, 120.0)


def distance_m(lat1, lon1, lat2, lon2):
    """Great-circle distance on the generator's sphere (haversine)."""
    p1, l1, p2, l2 = (np.radians(v) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))


def read_beams(path: Path) -> dict[str, dict[str, np.ndarray]]:
    with h5py.File(path, "r") as f:
        return {b: {n: f[f"{b}/land_ice_segments/{n}"][:] for n in FIELDS} for b in BEAMS}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_granule(tmp_path_factory.mktemp("tiny"), rgt=1234, cycle=14, region=10, seed=7, **TINY)


def test_layout_matches_the_real_product(tiny):
    with h5py.File(tiny, "r") as f:
        assert f.attrs["short_name"] == b"ATL06"
        assert f.attrs["level"] == b"3A"
        assert b"SYNTHETIC" in f.attrs["description"]
        assert f["orbit_info/rgt"][0] == 1234 and f["orbit_info/rgt"].dtype == np.int16
        assert f["orbit_info/cycle_number"][0] == 14 and f["orbit_info/cycle_number"].dtype == np.int8
        assert f["ancillary_data/start_region"][0] == 10
        assert f["ancillary_data/atlas_sdp_gps_epoch"][0] == pytest.approx(1198800018.0)
        assert f["ancillary_data/release"][0] == b"006"
        for beam in BEAMS:
            assert f[beam].attrs["atlas_beam_type"] == (b"weak" if beam.endswith("l") else b"strong")
            group = f[f"{beam}/land_ice_segments"]
            assert set(FIELDS) <= set(group)
            for name, dtype in FIELDS.items():
                ds = group[name]
                assert ds.dtype == dtype, name
                assert ds.shape == (2000,)
                assert ds.chunks == (10_000,), name  # like NASA's, even when shorter
                assert ds.maxshape == (None,)
                assert (ds.compression, ds.compression_opts) == ("gzip", 6)
                # NASA shuffles only the integer datasets.
                assert ds.shuffle == (ds.dtype.kind == "i"), name
            for name in ("h_li", "h_li_sigma"):
                assert group[name].attrs["_FillValue"] == FILL_F32
                assert group[name].attrs["_FillValue"].dtype == np.float32
                assert group[name].fillvalue == np.float32(3.4028235e38)
            assert group["atl06_quality_summary"].attrs["_FillValue"] == 127
            assert group["atl06_quality_summary"].fillvalue == 127
            assert group["h_li"].dims[0][0].name.endswith("delta_time")


def test_h5coro_reads_every_dataset(tiny):
    names = [f"/{b}/land_ice_segments/{n}" for b in BEAMS for n in FIELDS]
    reader = h5coro.H5Coro(str(tiny), filedriver.FileDriver, errorChecking=True, verbose=False)
    promise = reader.readDatasets(names, block=True)
    expected = read_beams(tiny)
    for name in names:
        beam, _, field = name.strip("/").split("/")
        values = promise[name]
        assert values.dtype == FIELDS[field]
        np.testing.assert_array_equal(values, expected[beam][field], err_msg=name)


def test_same_seed_same_bytes_other_seed_other_values(tmp_path):
    kwargs = dict(rgt=321, cycle=5, region=11, n_segments=3000, spacing_m=100.0)
    a = write_granule(tmp_path / "a.h5", seed=3, **kwargs)
    b = write_granule(tmp_path / "b.h5", seed=3, **kwargs)
    c = write_granule(tmp_path / "c.h5", seed=4, **kwargs)
    assert a.read_bytes() == b.read_bytes()
    assert read_beams(a)["gt1l"]["h_li"].tolist() != read_beams(c)["gt1l"]["h_li"].tolist()


def test_generate_is_deterministic_with_distinct_names(tmp_path):
    first = generate(tmp_path / "1", n_granules=4, n_segments=500, spacing_m=500.0, seed=11)
    again = generate(tmp_path / "2", n_granules=4, n_segments=500, spacing_m=500.0, seed=11)
    assert [p.name for p in first] == [p.name for p in again]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(first, again, strict=True))
    rgts = [NAME.match(p.name).group(2) for p in first]
    assert len(set(rgts)) == 4
    assert len({p.name for p in first}) == 4
    fewer = generate(tmp_path / "3", n_granules=2, n_segments=500, spacing_m=500.0, seed=11)
    assert [p.name for p in fewer] == [p.name for p in first[:2]]  # a bigger set extends a smaller one


def test_file_name_encodes_rgt_cycle_region_and_start(tmp_path):
    start = datetime(2022, 1, 2, 3, 4, 5, tzinfo=UTC)
    path = write_granule(tmp_path, rgt=7, cycle=14, region=12, n_segments=100, seed=0, start=start)
    assert path.parent == tmp_path
    assert path.name == "ATL06_20220102030405_00071412_006_01.h5"
    with h5py.File(path, "r") as f:
        assert f["gt2r/land_ice_segments/delta_time"][0] == pytest.approx((start - ATLAS_EPOCH).total_seconds())
        assert f["ancillary_data/end_rgt"][0] == 7


def test_default_time_follows_the_rgt_and_cycle(tiny):
    stamp, rgt, cycle, region = NAME.match(tiny.name).groups()
    assert (int(rgt), int(cycle), int(region)) == (1234, 14, 10)
    # Cycle 14 ran from 2021-12-22 to 2022-03-23.
    assert "20211222" <= stamp[:8] <= "20220323"


def test_tracks_are_antarctic_great_circles_with_the_beam_layout(tiny):
    beams = read_beams(tiny)
    for b in beams.values():
        lat, lon = b["latitude"], b["longitude"]
        assert lat.max() <= -60.0 and lat.min() >= -88.0
        assert lon.min() >= -180.0 and lon.max() < 180.0
        step = distance_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
        np.testing.assert_allclose(step, 500.0, rtol=0.01)  # Earth rotation adds < 1 %
        assert np.all(np.diff(b["delta_time"]) > 0)
        assert np.all(np.diff(b["segment_id"]) == 25)  # 500 m in 20 m steps

    def across(a, b):
        return distance_m(beams[a]["latitude"], beams[a]["longitude"], beams[b]["latitude"], beams[b]["longitude"])

    np.testing.assert_allclose(across("gt1l", "gt1r"), 90.0, rtol=1e-3)
    np.testing.assert_allclose(across("gt1r", "gt2r"), 3300.0, rtol=1e-3)
    np.testing.assert_allclose(across("gt2l", "gt3l"), 3300.0, rtol=1e-3)


def test_full_length_granule_spans_2840_km_south_of_60s():
    g = simulate_granule(rgt=900, cycle=14, region=11, n_segments=142_000, seed=1)
    lat, lon = g.beams["gt2l"]["latitude"], g.beams["gt2l"]["longitude"]
    assert lat.max() <= -60.0
    # The RGT turns at 88S; a beam 3.3 km on the pole side of it goes 0.03 degrees further.
    assert min(b["latitude"].min() for b in g.beams.values()) >= -88.035
    assert distance_m(lat[:-1], lon[:-1], lat[1:], lon[1:]).sum() == pytest.approx(142_000 * 20.0, rel=0.01)


def test_tiny_granule_crosses_several_shards(tiny):
    b = read_beams(tiny)["gt2l"]
    assert len(np.unique(shard_keys_of(b["latitude"], b["longitude"]))) >= 5


def test_through_every_granule_reaches_the_shard_of_the_point(tmp_path):
    paths = generate(tmp_path, n_granules=6, seed=5, through=POINT, **TINY)
    shard = shard_keys_of(np.array([POINT[0]]), np.array([POINT[1]]))[0]
    names = [NAME.match(p.name) for p in paths]
    assert len({m.group(2) for m in names}) == 6
    azimuths = set()
    for path in paths:
        beams = read_beams(path)
        inside = sum(int((shard_keys_of(b["latitude"], b["longitude"]) == shard).sum()) for b in beams.values())
        assert inside > 6 * 50, path.name  # each beam crosses ~100 km of the shard
        centre_lat = (beams["gt2l"]["latitude"] + beams["gt2r"]["latitude"]) / 2
        centre_lon = (beams["gt2l"]["longitude"] + beams["gt2r"]["longitude"]) / 2
        assert distance_m(centre_lat, centre_lon, *POINT).min() < 2100.0  # within 2 km + half a step
        azimuths.add(bool(beams["gt2l"]["latitude"][-1] > beams["gt2l"]["latitude"][0]))  # ascending?
    assert azimuths == {True, False}  # both branches of the orbit cross the point


def test_heights_quality_and_fill_values_look_real():
    g = simulate_granule(rgt=100, cycle=14, region=11, n_segments=60_000, seed=2)
    for beam, b in g.beams.items():
        missing = b["h_li"] == FILL_F32
        assert 0 < missing.mean() < 0.02, beam
        assert np.all(b["h_li_sigma"][missing] == FILL_F32)
        assert np.all(b["atl06_quality_summary"][missing] == 1)
        # A few short runs, not scattered points.
        assert np.count_nonzero(np.diff(missing.astype(np.int8)) == 1) <= 20
        flagged = b["atl06_quality_summary"].mean()
        assert 0.08 <= flagged <= 0.22, (beam, flagged)
        assert set(np.unique(b["atl06_quality_summary"])) == {0, 1}
        h, s = b["h_li"][~missing], b["h_li_sigma"][~missing]
        assert 0.0 < h.min() and h.max() < 4000.0
        assert np.mean((s >= 0.02) & (s <= 0.5)) > 0.8
    h = g.beams["gt1r"]["h_li"]
    h = h[h != FILL_F32]
    assert h.max() - h.min() > 100.0  # a surface, not a plane
    assert np.median(np.abs(np.diff(h))) < 2.0  # smooth along track at 20 m


def test_synthetic_rgt_54_follows_the_real_one(data_dir):
    real = data_dir / "atl06-flat-antarctic" / "ATL06_20190101001723_00540210_209_01_gt2l.h5"
    with h5py.File(real, "r") as f:
        lat, lon = f["lat"][::500], f["lon"][::500]
        t = f["t_sec"][::500] - ATLAS_SDP_GPS_EPOCH
    g = simulate_granule(rgt=54, cycle=2, region=10, n_segments=30_000, spacing_m=100.0, seed=0)
    b = g.beams["gt2l"]
    south = lat < -61.0  # the synthetic granule stops at 60S
    for la, lo, ti in zip(lat[south], lon[south], t[south], strict=True):
        i = np.argmin(np.abs(b["latitude"] - la))
        assert distance_m(la, lo, b["latitude"][i], b["longitude"][i]) < 5_000.0
        assert abs(b["delta_time"][i] - ti) < 20.0


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="rgt"):
        simulate_granule(rgt=0, cycle=1, region=10, n_segments=10, seed=0)
    with pytest.raises(ValueError, match="spacing"):
        simulate_granule(rgt=1, cycle=1, region=10, n_segments=10, spacing_m=0.0, seed=0)
    with pytest.raises(ValueError, match="through"):
        simulate_granule(rgt=1, cycle=1, region=10, n_segments=10, seed=0, through=(-89.5, 0.0))


def test_cli_writes_and_reports(tmp_path, capsys):
    rc = synthetic.main(
        ["--output", str(tmp_path), "--granules", "2", "--segments", "300", "--spacing", "500", "--through", "-80,10"]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    assert len(lines) == 3
    assert all(Path(line).is_file() and NAME.match(Path(line).name) for line in lines[:2])
    assert lines[2].startswith("wrote 2 granules")


@pytest.mark.parametrize(
    "args",
    [
        ["--granules", "1", "--segments", "10"],
        ["--output", "X", "--granules", "0", "--segments", "10"],
        ["--output", "X", "--granules", "1", "--segments", "ten"],
        ["--output", "X", "--granules", "1", "--segments", "10", "--spacing", "-5"],
        ["--output", "X", "--granules", "1", "--segments", "10", "--through", "-95,0"],
        ["--output", "X", "--granules", "1", "--segments", "10", "--through", "south"],
        ["--output", "X", "--granules", "2", "--segments", "10", "--cycle", "100"],
    ],
)
def test_cli_bad_arguments_give_one_line(tmp_path, capsys, args):
    args = [str(tmp_path / "out") if a == "X" else a for a in args]
    try:
        rc = synthetic.main(args)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc != 0
    assert len(err.strip().splitlines()) == 1 and "error" in err and "Traceback" not in err


def test_module_runs_with_help():
    out = subprocess.run(
        [sys.executable, "-m", "producer.synthetic", "--help"], capture_output=True, text=True, check=True
    )
    assert "--through" in out.stdout
