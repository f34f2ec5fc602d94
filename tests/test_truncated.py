"""A granule shorter than its metadata says is CORRUPT at once, on S3 and on disk; the shard keeps the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from producer.stack import upload_granules
from shared.catalog import GranuleRef
from shared.granules.io import GranuleReadError, LocalFileSource, ReadContext, S3RangeReader, S3Source
from shared.results import FailureKind, ShardStatus
from tests.pipeline import assemble_native
from tests.read_paths import READ_PATHS, as_read, cataloged, process

BUCKET = "truncated-granules"
STEM = "ATL06_20190101001723_00540210_209_01"


@pytest.fixture(scope="module")
def granules(data_dir, tmp_path_factory) -> dict[str, Path]:
    """A whole granule and its first half (the truncated one), and two good granules over the same
    ground: the whole one's beams split in two."""
    folder = tmp_path_factory.mktemp("granules")
    flat = {p.stem.rsplit("_", 1)[-1]: p for p in (data_dir / "atl06-flat-antarctic").glob(f"{STEM}_gt*.h5")}
    whole = assemble_native(list(flat.values()), folder / f"{STEM}.h5")
    truncated = folder / f"{STEM}_cut.h5"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return {
        "whole": whole,
        "truncated": truncated,
        "left": assemble_native([flat["gt1l"], flat["gt1r"]], folder / f"{STEM}_left.h5"),
        "right": assemble_native([flat["gt2l"], flat["gt3r"]], folder / f"{STEM}_right.h5"),
    }


@pytest.fixture(scope="module")
def shard(granules) -> tuple[int, dict[str, GranuleRef]]:
    """The shard the whole granule crosses with every beam and most segments, and the catalog entry
    of each granule there (the truncated one's was made before it was cut)."""
    whole = cataloged(granules["whole"])
    key = max(whole, key=lambda k: (len(whole[k].segments), sum(b - a for a, b in whole[k].segments.values())))
    refs = {
        "truncated": whole[key].model_copy(
            update={"id": granules["truncated"].name, "path": str(granules["truncated"])}
        )
    }
    for name in ("left", "right"):
        refs[name] = cataloged(granules[name])[key]
    return key, refs


def on_s3(ref: GranuleRef) -> GranuleRef:
    return ref.model_copy(update={"s3": f"s3://{BUCKET}/atl06/{ref.id}", "path": None})


def assert_partial_with_the_good_granules(key: int, refs: dict[str, GranuleRef], context=ReadContext) -> None:
    """The truncated granule fails as CORRUPT, naming itself; the shard is PARTIAL with statistics
    equal to those of the good granules alone."""
    result, stats = process(key, [refs["truncated"], refs["left"], refs["right"]], context())
    assert result.status == ShardStatus.PARTIAL and result.granules_read == 2, result.summary()
    (failure,) = result.granules_failed
    assert failure.granule == refs["truncated"].id and failure.kind == FailureKind.CORRUPT
    assert (
        refs["truncated"].id in failure.reason and "truncated: " in failure.reason and "shorter than" in failure.reason
    )
    alone, expected = process(key, [refs["left"], refs["right"]], context())
    assert alone.status == ShardStatus.SUCCEEDED and result.observations == alone.observations > 0
    assert sum(result.strategies.values()) == result.granules_read and result.strategies == alone.strategies
    assert stats.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(stats[name], expected[name], err_msg=name)


@pytest.mark.parametrize("how", READ_PATHS)
def test_local_truncated_granule_is_corrupt_and_the_shard_partial(shard, how):
    key, refs = shard
    assert_partial_with_the_good_granules(key, {name: as_read(ref, how) for name, ref in refs.items()})


@pytest.mark.integration
@pytest.mark.parametrize("how", READ_PATHS)
def test_s3_truncated_granule_is_corrupt_and_the_shard_partial(granules, shard, stack_env, how):
    key, refs = shard
    upload_granules([granules[name] for name in ("truncated", "left", "right")], BUCKET, "atl06/")
    s3_refs = {name: on_s3(as_read(ref, how)) for name, ref in refs.items()}
    assert_partial_with_the_good_granules(key, s3_refs, lambda: ReadContext(s3=S3RangeReader()))


def assert_truncated(read, pos: int, size: int) -> None:
    with pytest.raises(GranuleReadError) as info:
        read(pos, size)
    assert info.value.kind == FailureKind.CORRUPT and "truncated" in info.value.reason


def drivers_read_like_files(driver, size: int) -> None:
    """A range that runs past the end comes back short (h5coro's cache lines need it), a range that
    starts past it is CORRUPT, and an exact read that ends short is CORRUPT."""
    from shared.granules.io import read_exact

    assert len(driver.read(size - 10, 100)) == 10
    assert_truncated(driver.read, size, 100)
    assert_truncated(driver.read, size + 5000, 1)
    assert len(read_exact(driver, size - 10, 10)) == 10
    assert_truncated(lambda pos, n: read_exact(driver, pos, n), size - 10, 11)
    # many ranges in one call (obstore's get_ranges on S3): every byte of each, or CORRUPT
    assert [bytes(b) for b in driver.read_ranges([(0, 8), (size - 10, size)])] == [
        driver.read(0, 8),
        driver.read(size - 10, 10),
    ]
    assert_truncated(lambda pos, n: driver.read_ranges([(0, 8), (pos, pos + n)]), size - 10, 11)  # runs past the end
    assert_truncated(lambda pos, n: driver.read_ranges([(0, 8), (pos, pos + n)]), size + 5000, 1)  # starts past it


def test_local_driver_reads_like_a_file(granules):
    path = granules["truncated"]
    drivers_read_like_files(LocalFileSource(str(path), ReadContext()), path.stat().st_size)


@pytest.mark.integration
def test_s3_driver_reads_like_a_file(granules, stack_env):
    path = granules["truncated"]
    upload_granules([path], BUCKET, "atl06/")
    driver = S3Source(f"s3://{BUCKET}/atl06/{path.name}", ReadContext(s3=S3RangeReader()))
    drivers_read_like_files(driver, path.stat().st_size)
