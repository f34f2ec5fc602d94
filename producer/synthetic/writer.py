"""The HDF5 writer: lays a granule out as ATL06 does, byte for byte the same for the same granule.

The only I/O of the generator.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from producer.synthetic.attributes import (
    BEAM_ATTRS,
    ISO_UTC,
    RELEASE,
    SEGMENT_DATASETS,
    SEGMENTS_ATTRS,
    VERSION,
    file_attrs,
)
from producer.synthetic.simulate import SimulatedGranule
from shared.mission import ATLAS_SDP_GPS_EPOCH, RGT_COUNT

__all__ = ["CHUNK", "write_h5"]

CHUNK = 10_000  # ATL06's chunk length, even for datasets shorter than that


def _group(parent: h5py.Group, name: str) -> h5py.Group:
    """A group without a modification time, so that files are byte-identical between runs."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


def _dataset(group: h5py.Group, name: str, data: np.ndarray, dtype: np.dtype, fill: object) -> h5py.Dataset:
    # The real product compresses with gzip 6 and shuffles only its integer datasets.
    return group.create_dataset(
        name,
        data=data.astype(dtype, copy=False),
        chunks=(CHUNK,),
        maxshape=(None,),
        compression="gzip",
        compression_opts=6,
        shuffle=dtype.kind in "iu",
        fillvalue=fill,
        track_times=False,
    )


def _scalar(group: h5py.Group, name: str, value: object, dtype: str | None = None) -> None:
    data = np.array([value], dtype=dtype) if dtype else np.array([np.bytes_(value)])
    group.create_dataset(name, data=data, track_times=False)


def write_h5(path: Path, g: SimulatedGranule) -> None:
    """Write ``g`` to ``path`` (replacing any file there)."""
    t0 = min(b["delta_time"][0] for b in g.beams.values())
    t1 = max(b["delta_time"][-1] for b in g.beams.values())

    # Fixed format bounds: the earliest format (as NASA's files) and no newer features, so a
    # newer HDF5 library writes the same bytes. Groups are created with the time tracking off.
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_V110)
    fid = h5py.h5f.create(str(path).encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
    with h5py.File(fid) as f:
        f.attrs.update(file_attrs(g, t0, t1))

        orbit = _group(f, "orbit_info")
        _scalar(orbit, "rgt", g.rgt, "i2")
        _scalar(orbit, "cycle_number", g.cycle, "i1")
        _scalar(orbit, "lan", g.node_lon, "f8")
        _scalar(orbit, "crossing_time", g.node_time, "f8")
        _scalar(orbit, "orbit_number", ((g.cycle - 1) * RGT_COUNT + g.rgt) % 65536, "u2")
        _scalar(orbit, "sc_orient", 1, "i1")  # forward

        anc = _group(f, "ancillary_data")
        _scalar(anc, "atlas_sdp_gps_epoch", ATLAS_SDP_GPS_EPOCH, "f8")
        for edge in ("start", "end"):
            _scalar(anc, f"{edge}_rgt", g.rgt, "i4")
            _scalar(anc, f"{edge}_cycle", g.cycle, "i4")
            _scalar(anc, f"{edge}_region", g.region, "i4")
        _scalar(anc, "start_delta_time", t0, "f8")
        _scalar(anc, "end_delta_time", t1, "f8")
        for kind in ("granule", "data"):
            _scalar(anc, f"{kind}_start_utc", g.start.strftime(ISO_UTC))
            _scalar(anc, f"{kind}_end_utc", g.end.strftime(ISO_UTC))
        _scalar(anc, "release", RELEASE)
        _scalar(anc, "version", VERSION)

        for beam, arrays in g.beams.items():
            track = _group(f, beam)
            track.attrs.update(BEAM_ATTRS[beam])
            segments = _group(track, "land_ice_segments")
            segments.attrs.update(SEGMENTS_ATTRS)
            written = {}
            for name, (dtype, fill, attrs) in SEGMENT_DATASETS.items():
                written[name] = _dataset(segments, name, arrays[name], dtype, fill)
                written[name].attrs.update(attrs)
            # delta_time is the dimension scale of every segment variable, as in the real product.
            written["delta_time"].make_scale()
            for name, ds in written.items():
                if name != "delta_time":
                    ds.dims[0].attach_scale(written["delta_time"])
