"""Bad input through the two commands: one clear line, a non-zero exit, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shared.errors import EXIT_PARTIAL_SHARDS
from tests.conftest import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def assert_clean_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in line, line


@pytest.mark.parametrize("module", ["worker", "producer"])
def test_help(module):
    result = run("-m", module, "--help")
    assert result.returncode == 0 and "usage" in result.stdout


def test_missing_catalog(tmp_path):
    assert_clean_error(
        run("-m", "worker", "--catalog", str(tmp_path / "nope.json"), "--store", str(tmp_path / "o.zarr")),
        "cannot read catalog",
        "nope.json",
    )


def test_catalog_of_another_grid_is_refused(greenland_catalog, tmp_path):
    doc = json.loads(greenland_catalog.read_text())
    doc["grid_signature"]["child_order"] = 10
    greenland_catalog.write_text(json.dumps(doc))
    assert_clean_error(
        run("-m", "worker", "--catalog", str(greenland_catalog), "--store", str(tmp_path / "o.zarr")),
        "differs from the run's grid",
    )


def test_malformed_catalog(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"metadata": {}, "shard_keys": [-5]}')
    assert_clean_error(
        run("-m", "worker", "--catalog", str(path), "--store", str(tmp_path / "o.zarr")), "invalid catalog"
    )


def test_unreadable_granule_is_recorded_per_granule(greenland_catalog, tmp_path):
    doc = json.loads(greenland_catalog.read_text())
    key = str(doc["shard_keys"][0])
    doc["shards"][key].append({"id": "junk.h5", "path": str(tmp_path / "junk.h5")})
    (tmp_path / "junk.h5").write_bytes(b"this is not HDF5" * 100)
    doc["shards"][key].append({"id": "gone.h5", "path": str(tmp_path / "gone.h5")})
    greenland_catalog.write_text(json.dumps(doc))
    result = run(
        "-m", "worker", "--catalog", str(greenland_catalog), "--store", str(tmp_path / "o.zarr"), "--shard", key
    )
    assert result.returncode == EXIT_PARTIAL_SHARDS, (
        result.stderr
    )  # PARTIAL is not FAILED: the readable granule was written
    assert f"shard {key} PARTIAL" in result.stdout
    assert "junk.h5: corrupt: junk.h5: not a readable HDF5 file" in result.stdout
    assert "gone.h5: missing" in result.stdout


def test_only_unreadable_granules_fail_the_shard(tmp_path, greenland_catalog):
    doc = json.loads(greenland_catalog.read_text())
    key = str(doc["shard_keys"][0])
    doc["shards"][key] = [{"id": "gone.h5", "path": str(tmp_path / "gone.h5")}]
    greenland_catalog.write_text(json.dumps(doc))
    result = run(
        "-m", "worker", "--catalog", str(greenland_catalog), "--store", str(tmp_path / "o.zarr"), "--shard", key
    )
    assert result.returncode == 1
    assert f"shard {key} FAILED" in result.stdout


def test_unwritable_store(greenland_catalog, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_clean_error(
        run("-m", "worker", "--catalog", str(greenland_catalog), "--store", str(blocker / "o.zarr")),
        "cannot create store",
    )


def test_catalog_from_missing_folder(tmp_path):
    assert_clean_error(
        run("-m", "producer", "catalog", "--granules", str(tmp_path / "none"), "--output", str(tmp_path / "c.json")),
        "neither a folder",
    )


def test_each_error_kind_has_its_own_exit_code(capsys):
    from shared import errors

    kinds = [errors.InputError, errors.CredentialsError, errors.StackError, errors.StoreError, errors.RunError]
    codes = [kind.exit_code for kind in kinds]
    outcomes = {0, errors.EXIT_FAILED_SHARDS, errors.EXIT_PARTIAL_SHARDS, errors.EXIT_INTERRUPTED}
    assert len(set(codes)) == len(codes) and not outcomes & set(codes) and len(outcomes) == 4
    for kind in kinds:

        def fail(args, kind=kind):
            raise kind("what happened\n and what to do")

        assert errors.run_command(fail, None) == kind.exit_code
        err = capsys.readouterr().err
        assert err.startswith("error: what happened") and "Traceback" not in err


def test_demo_help_describes_and_runs_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "producer.demo", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--output" in result.stdout and "embedded stack" in result.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "status, says", [("BOGUS", "not a shard status"), ("SUCCEEDED", "never run again"), ("", "not a shard status")]
)
def test_resubmit_refuses_statuses_it_cannot_resubmit(status, says):
    result = run("-m", "producer", "resubmit", "some-run", "--status", status)
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr


def test_runs_table_columns_line_up():
    from producer.status import format_runs
    from shared.runstatus import RunRecord

    records = [
        RunRecord(
            run_id=run_id,
            catalog="c",
            catalog_hash="h",
            config={},
            store=f"s3://b/{run_id}.zarr",
            credentials_parameter="p",
            shards=shards,
            granules=1,
        )
        for run_id, shards in (("a" * 50, 1344), ("b", 3))
    ]
    lines = format_runs(records).splitlines()
    assert len({line.index("s3://") for line in lines[1:]}) == 1 and lines[0].index("STORE") == lines[1].index("s3://")


def test_counts_are_worded_for_one_and_many():
    from shared.results import plural

    assert (plural(1, "granule"), plural(2, "granule"), plural(1500, "cell")) == (
        "1 granule",
        "2 granules",
        "1,500 cells",
    )


def test_a_reader_that_goes_away_is_no_error():
    """`python -m producer status RUN | head -3`: the closed pipe ends the command quietly."""
    script = (
        "import sys\nfrom shared.errors import run_command\n"
        "def many(args):\n    for i in range(200000):\n        print(i)\n    return 0\n"
        "sys.exit(run_command(many, None))\n"
    )
    got = subprocess.run(
        f"{sys.executable} -c '{script}' | head -1", shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert got.stdout == "0\n" and "Traceback" not in got.stderr and "BrokenPipe" not in got.stderr
