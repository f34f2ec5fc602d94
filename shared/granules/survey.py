"""What the offline catalog reads of a granule: its whole coordinates once, then where the chunks
of every dataset over a shard's index ranges are stored (the records workers read by)."""

from __future__ import annotations

import numpy as np

from shared.catalog import DatasetChunks, GranuleRef
from shared.config import PipelineConfig
from shared.granules.h5coro_adapter import H5File
from shared.granules.io import ReadContext
from shared.granules.points import dataset_names, time_span, valid_coordinates


class GranuleSurvey:
    """One granule, opened through its metadata for the catalog builder (a context manager)."""

    def __init__(self, granule: GranuleRef, config: PipelineConfig, context: ReadContext):
        self.config = config
        self.file = H5File(granule.id, granule.location, context)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> GranuleSurvey:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def coordinates(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every present beam's whole latitude and longitude, and where they are valid
        coordinates (:func:`~shared.granules.points.valid_coordinates`)."""
        cfg, f = self.config, self.file
        paths = {b: (cfg.dataset_path(b, cfg.latitude), cfg.dataset_path(b, cfg.longitude)) for b in cfg.beams}
        f.walk([p for pair in paths.values() for p in pair])
        present = [b for b in cfg.beams if f.exists(paths[b][0])]
        whole = {p: (p, 0, f.storage(p).length if f.exists(p) else 0) for b in present for p in paths[b]}
        got = f.read(list(whole.values()))  # an absent longitude is CORRUPT
        out = {}
        for beam in present:
            lat, lon = (got[whole[p]] for p in paths[beam])
            out[beam] = (lat, lon, valid_coordinates(lat, lon, *(f.fill(p) for p in paths[beam])))
        return out

    def time_spans(self, beams: list[str]) -> dict[str, tuple[float, float]]:
        """Per beam, the earliest and the latest time (``config.time``) over its whole length, for
        the beams whose every time is data (:func:`~shared.granules.points.time_span`)."""
        cfg, f = self.config, self.file
        paths = {b: cfg.dataset_path(b, cfg.time) for b in beams}
        f.walk(list(paths.values()))
        whole = {b: (p, 0, f.storage(p).length) for b, p in paths.items() if f.exists(p)}
        got = f.read(list(whole.values()))
        spans = {b: time_span(got[w], f.fill(w[0])) for b, w in whole.items()}
        return {b: span for b, span in spans.items() if span is not None}

    def chunk_records(self, segments: dict[str, tuple[int, int]]) -> dict[str, dict[str, DatasetChunks]]:
        """Per beam, where every dataset's chunks holding the beam's segment range are stored and
        how they are encoded. A beam with a dataset that cannot be described so is left out
        (workers then read it through the metadata)."""
        cfg, f = self.config, self.file
        names = dataset_names(cfg)
        f.walk([cfg.dataset_path(b, n) for b in segments for n in names])
        out = {}
        for beam, (start, stop) in segments.items():
            described = {n: f.chunk_record(cfg.dataset_path(beam, n), start, stop) for n in names}
            if all(d is not None for d in described.values()):
                out[beam] = described
        return out
