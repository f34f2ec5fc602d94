"""What a store holds complete: per shard and window, the content hash it was written from.

Kept in the run table, one item per (store, shard, window), apart from any run: a later run into
the same store compares its own hashes with these and sends only the shards that changed or never
finished (:mod:`shared.contenthash`). A worker forgets a shard's windows before it writes them and
records them once the shard finished complete (SUCCEEDED or EMPTY), so a record always describes
chunks that are in the store whole; a shard that was PARTIAL, FAILED or interrupted has none.
"""

from __future__ import annotations

from typing import Any

import boto3

from shared.runstatus import BATCH_WRITE, now_iso
from shared.settings import TABLE_PK, TABLE_SK

HASH = "content_hash"


def store_pk(store: str) -> str:
    return f"STORE#{store}"


def window_sk(shard_key: int, window_index: int) -> str:
    return f"SHARD#{shard_key:020d}#WINDOW#{window_index:05d}"


class WrittenShards:
    """The records of one store, in the run table."""

    def __init__(self, table: str, store: str, client: Any = None):
        self.table = table
        self.store = store
        self.client = client or boto3.client("dynamodb")

    def hashes(self) -> dict[tuple[int, int], str]:
        """(shard key, window index) -> content hash, for every window the store holds complete."""
        found = {}
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": TABLE_PK, "#sk": TABLE_SK, "#h": HASH},
            ExpressionAttributeValues={":pk": {"S": store_pk(self.store)}},
            ProjectionExpression="#sk, #h",
        )
        for page in pages:
            for item in page["Items"]:
                _, key, _, window = item[TABLE_SK]["S"].split("#")
                found[int(key), int(window)] = item[HASH]["S"]
        return found

    def forget(self, shard_key: int, window_indices: list[int]) -> None:
        """Before a shard's chunks are written again: until it finishes, they are not complete."""
        self._batch([{"DeleteRequest": {"Key": self._key(shard_key, index)}} for index in window_indices])

    def record(self, shard_key: int, hashes: dict[int, str], run_id: str) -> None:
        """After the shard finished complete: window index -> the content hash it was written from."""
        written = now_iso()
        self._batch(
            [
                {
                    "PutRequest": {
                        "Item": {
                            **self._key(shard_key, index),
                            HASH: {"S": digest},
                            "run_id": {"S": run_id},
                            "written_at": {"S": written},
                        }
                    }
                }
                for index, digest in hashes.items()
            ]
        )

    def _key(self, shard_key: int, window_index: int) -> dict[str, Any]:
        return {TABLE_PK: {"S": store_pk(self.store)}, TABLE_SK: {"S": window_sk(shard_key, window_index)}}

    def _batch(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_WRITE):
            pending = {self.table: requests[start : start + BATCH_WRITE]}
            for _ in range(8):  # unprocessed items (throttling) are sent again
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise RuntimeError(f"the run table kept refusing {len(pending[self.table])} store records")
