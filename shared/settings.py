"""Names that tie the template, the producer and the worker together: one place for each.

The worker reads its settings from the environment the template gives the function; the producer
reads the stack's outputs. Both sides import the names from here.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

# -- worker function environment (template.yaml: WorkerFunction.Environment.Variables) ------------
ENV_RUN_TABLE = "RUN_TABLE"
ENV_OUTPUT_BUCKET = "OUTPUT_BUCKET"
ENV_OUTPUT_PREFIX = "OUTPUT_PREFIX"  # the worker writes nowhere but s3://OUTPUT_BUCKET/OUTPUT_PREFIX...
ENV_PARAMETER_PREFIX = "PARAMETER_PREFIX"  # SSM names the worker may read start with this
ENV_DEADLINE_MARGIN = "DEADLINE_MARGIN_SECONDS"  # stop this long before the Lambda deadline

# -- stack outputs (template.yaml: Outputs) ----------------------------------------------------
OUTPUT_QUEUE_URL = "ShardQueueUrl"
OUTPUT_QUEUE_ARN = "ShardQueueArn"
OUTPUT_DLQ_URL = "DeadLetterQueueUrl"
OUTPUT_DLQ_ARN = "DeadLetterQueueArn"
OUTPUT_TABLE = "RunTableName"
OUTPUT_BUCKET = "OutputBucketName"
OUTPUT_PREFIX = "OutputPrefix"
OUTPUT_PARAMETER_PREFIX = "ParameterPrefix"
OUTPUT_FUNCTION = "WorkerFunctionName"
OUTPUT_FUNCTION_MEMORY = "WorkerMemorySize"
OUTPUT_FUNCTION_TIMEOUT = "WorkerTimeout"

# -- queue settings -------------------------------------------------------------------------------
SQS_MAX_MESSAGE_BYTES = 256 * 1024
SQS_SEND_BATCH = 10
# Granule lists larger than this go to S3 and the message carries a pointer.
INLINE_GRANULES_MAX_BYTES = 200 * 1024
# Under the stack's bucket: granule lists of large shards, per run.
RUN_FILES_PREFIX = "runs/"

# -- DynamoDB run table ---------------------------------------------------------------------------
TABLE_PK = "pk"  # "RUN#<run id>"
TABLE_SK = "sk"  # "RUN" for the run item, "SHARD#<20-digit shard key>" for a shard
TABLE_GSI = "gsi1"  # overloaded index: shards by run+status, runs by creation time
TABLE_GSI_PK = "gsi1pk"  # "<run id>#<STATUS>" for shards, "RUNS" for runs
TABLE_GSI_SK = "gsi1sk"  # shard sk for shards, created time for runs
TABLE_TTL = "expires_at"


class WorkerSettings(BaseModel):
    """The worker's deployment settings, from its function environment."""

    model_config = ConfigDict(frozen=True)

    run_table: str
    output_bucket: str
    output_prefix: str = ""
    parameter_prefix: str
    deadline_margin_seconds: float = 30.0

    @classmethod
    def from_env(cls) -> "WorkerSettings":
        return cls(
            run_table=os.environ[ENV_RUN_TABLE],
            output_bucket=os.environ[ENV_OUTPUT_BUCKET],
            output_prefix=os.environ.get(ENV_OUTPUT_PREFIX, ""),
            parameter_prefix=os.environ[ENV_PARAMETER_PREFIX],
            deadline_margin_seconds=float(os.environ.get(ENV_DEADLINE_MARGIN, "30")),
        )

    def allows_store(self, store: str) -> bool:
        """True when ``store`` lies under the output location the stack was deployed with."""
        root = f"s3://{self.output_bucket}/{self.output_prefix}"
        return store.startswith(root if root.endswith("/") or not self.output_prefix else root + "/") or store.rstrip("/") == root.rstrip("/")
