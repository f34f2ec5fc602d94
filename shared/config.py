"""Pipeline configuration: what to read from a granule and which statistics to compute."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.errors import ConfigError
from shared.mission import BEAMS
from shared.reducers import REDUCERS


class QualityFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    keep: tuple[int, ...] = (0,)


class Statistic(BaseModel):
    """One output variable: a named reducer and its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reducer: str
    q: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _known_reducer(self) -> Statistic:
        if self.reducer not in REDUCERS:
            raise ValueError(f"unknown reducer {self.reducer!r}; choose from {sorted(REDUCERS)}")
        if (self.reducer == "quantile") != (self.q is not None):
            raise ValueError("'q' is required by the quantile reducer and only by it")
        return self


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    product: str = "ATL06"
    beams: tuple[str, ...] = BEAMS  # a config may name fewer
    group: str
    latitude: str
    longitude: str
    value: str
    sigma: str
    time: str  # the point's time (ATL06: delta_time, GPS seconds since the ATLAS epoch): its window
    quality: QualityFilter | None = None
    statistics: dict[str, Statistic]

    @field_validator("statistics")
    @classmethod
    def _not_empty(cls, v: dict[str, Statistic]) -> dict[str, Statistic]:
        if not v:
            raise ValueError("at least one statistic is required")
        return v

    def dataset_path(self, beam: str, name: str) -> str:
        return f"/{beam}/{self.group}/{name}"


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Load a pipeline config from YAML; ``None`` gives the default ATL06 configuration."""
    try:
        if path is None:
            text = resources.files("shared.configs").joinpath("atl06.yaml").read_text()
            where = "default atl06.yaml"
        else:
            text = Path(path).read_text()
            where = str(path)
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline config {path}: {exc.strerror or exc}") from None
    try:
        return PipelineConfig.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"invalid pipeline config {where}: {_one_line(exc)}") from None


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return " ".join(str(exc).split())
