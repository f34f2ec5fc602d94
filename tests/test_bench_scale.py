"""The scale benchmark's machinery (``python -m bench.scale``) on a tiny run; no figure is asserted
against its target here: speed is what the benchmark reports, not what a test can promise."""

from __future__ import annotations

import json

import pytest

from bench.scale import ROWS, build_catalog, item_size, main, pick, shard_keys


def test_shard_keys_are_real_distinct_order_6_cells_beyond_the_basins():
    from shared.grid import shard_order

    keys, latitude = shard_keys(1400)
    assert keys == sorted(set(keys)) and len(keys) == 1400
    assert {shard_order(k) for k in keys[:: len(keys) // 20]} == {6}
    assert (latitude < 0).any() and (latitude > 0).any(), "beyond the 1,344 basins' shards: both hemispheres"


def test_catalog_shares_each_granule_among_neighbouring_shards():
    keys, latitude = shard_keys(90)
    shard_map = build_catalog(keys, latitude, 4, segments=True, seed=1)
    shards_of: dict[str, list[int]] = {}
    for i, key in enumerate(shard_map.shard_keys):
        refs = shard_map.shards[key]
        assert len(refs) == 4 and all(
            r.segments and set(r.segments) == {"gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r"} for r in refs
        )
        for r in refs:
            assert r.id.startswith("ATL06_") and r.id.endswith("_006_01.h5") and r.s3.endswith(r.id)
            shards_of.setdefault(r.id, []).append(i)
    assert max(len(v) for v in shards_of.values()) == 30
    assert all(v == list(range(v[0], v[0] + len(v))) for v in shards_of.values()), "consecutive shards"


def test_item_size_follows_dynamodb_rule():
    item = {"pk": {"S": "RUN#a"}, "n": {"N": "12345"}, "m": {"M": {"k": {"S": "vv"}}}, "l": {"L": [{"N": "1"}]}}
    # names 2+1+1+1; values 5, 3 + 1, 3 + (1 + 2 + 1), 3 + (2 + 1)
    assert item_size(item) == 5 + 5 + 4 + 7 + 6


@pytest.mark.integration
def test_tiny_scale_benchmark_reports_every_figure(embedded_stack, tmp_path, capsys):
    out = tmp_path / "scale.json"
    argv = ["--shards", "20", "--granules-per-shard", "3", "--repeats", "1", "--transactions", "5", "--json", str(out)]
    assert main(argv, stack_state=embedded_stack) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report  # the last line printed
    figures = report["results"]["20"]
    for label, path, _, _ in ROWS:
        value = pick(figures, path)
        assert value is not None, label
        if isinstance(value, dict):
            assert all(v is not None for v in value.values()), label
    assert figures["catalog_plain"]["granule_shard_pairs"] == 60
    assert figures["submit"]["dynamodb_writes"] >= 2 and figures["submit"]["sqs_send_batches"] >= 2
    marked = figures["marked"]["counts"]
    assert figures["status"]["counts"] == {**marked, "EMPTY": 0} and figures["status"]["cli_counts_agree"]
    assert figures["status"]["problems"] == marked["FAILED"] + marked["PARTIAL"] > 0
    assert figures["status"]["dynamodb_bytes"] > 0 and figures["shard_items"]["items"] == 20
    assert {t["figure"] for t in report["targets"]} >= {"status.cli_wall_s", "status.dynamodb_bytes"}
