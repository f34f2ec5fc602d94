"""``python -m producer status``: the report's counts, finished flag and progress bar, from records alone."""

from __future__ import annotations

from producer.status import progress_bar, run_report
from shared.results import ShardStatus
from shared.runstatus import RunRecord, ShardRecord

CREATED, ENDED = "2024-01-01T00:00:00+00:00", "2024-01-01T00:10:00+00:00"


class Runs:
    """What run_report reads of a RunStatusStore (a count, shards by status), and the run with its counted statuses."""

    table = "runs"

    def __init__(self, statuses: list[ShardStatus]):
        self.records = [
            ShardRecord(
                run_id="r", shard_key=i, shard_index=i, status=s, granules=1, finished_at=ENDED if s.finished else None
            )
            for i, s in enumerate(statuses)
        ]
        counts = {s: statuses.count(s) for s in ShardStatus if s.finished}
        self.run = RunRecord(
            run_id="r",
            created_at=CREATED,
            catalog="c",
            catalog_hash="h",
            config={},
            store="s",
            credentials_parameter="p",
            shards=len(statuses),
            granules=len(statuses),
            counts=counts,
            last_finished_at=ENDED if any(s.finished for s in statuses) else None,
        )

    def count(self, run_id, status):
        return sum(r.status == status for r in self.records)

    def shards(self, run_id, status=None):
        return iter([r for r in self.records if status is None or r.status == status])


def test_counts_every_status_in_order_and_finishes_when_no_shard_is_pending_or_running():
    statuses = [ShardStatus.SUCCEEDED] * 2 + [ShardStatus.EMPTY, ShardStatus.PARTIAL, ShardStatus.FAILED]
    runs = Runs(statuses)
    report = run_report(runs, runs.run)
    assert list(report["counts"]) == ["PENDING", "RUNNING", "SUCCEEDED", "EMPTY", "PARTIAL", "FAILED"]
    assert report["counts"] == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 2, "EMPTY": 1, "PARTIAL": 1, "FAILED": 1}
    assert report["finished"] and report["elapsed_s"] == 600.0
    assert progress_bar(report, width=10) == "[##########] 5/5"


def test_pending_and_running_shards_are_not_finished():
    runs = Runs([ShardStatus.PENDING, ShardStatus.RUNNING, ShardStatus.EMPTY, ShardStatus.FAILED])
    report = run_report(runs, runs.run)
    assert not report["finished"]
    assert progress_bar(report, width=8) == "[####....] 2/4"


def test_the_report_names_the_run_windows():
    from producer.status import format_report
    from shared.windows import cycle_window

    runs = Runs([ShardStatus.SUCCEEDED])
    windows = [cycle_window(c) for c in (14, 15)]
    runs.run = runs.run.model_copy(
        update={"windows": [{**w.model_dump(mode="json"), "index": i} for i, w in enumerate(windows)]}
    )
    report = run_report(runs, runs.run)
    assert report["windows"] == [w.label for w in windows]
    assert f"windows (each shard writes all of them): {windows[0].label}; {windows[1].label}" in format_report(report)
