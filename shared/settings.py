"""Names that tie the template, the producer and the worker together: one place for each.

The worker reads its settings from the environment the template gives the function; the producer
reads the stack's outputs. Both sides import the names from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

# -- worker function environment (template.yaml: WorkerFunction.Environment.Variables) ------------
ENV_RUN_TABLE = "RUN_TABLE"
ENV_OUTPUT_BUCKET = "OUTPUT_BUCKET"
ENV_OUTPUT_PREFIX = "OUTPUT_PREFIX"  # the worker writes nowhere but s3://OUTPUT_BUCKET/OUTPUT_PREFIX...
ENV_PARAMETER_PREFIX = "PARAMETER_PREFIX"  # SSM names the worker may read start with this
ENV_DEADLINE_MARGIN = "DEADLINE_MARGIN_SECONDS"  # stop this long before the Lambda deadline
ENV_DLQ_URL = "DEAD_LETTER_QUEUE_URL"  # messages that can never succeed go straight here
ENV_MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"  # the queue's maxReceiveCount: the last attempt records FAILED

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
OUTPUT_INDEX_QUEUE_URL = "IndexQueueUrl"
OUTPUT_INDEX_QUEUE_ARN = "IndexQueueArn"
OUTPUT_INDEX_DLQ_URL = "IndexDeadLetterQueueUrl"
OUTPUT_INDEX_DLQ_ARN = "IndexDeadLetterQueueArn"
OUTPUT_INDEX_FUNCTION = "IndexFunctionName"
OUTPUT_INDEX_PREFIX = "IndexPrefix"

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
    dead_letter_queue_url: str
    max_receive_count: int = 5
    deadline_margin_seconds: float = 30.0

    @classmethod
    def from_env(cls, environment: Mapping[str, str] | None = None) -> WorkerSettings:
        """From the function's environment (this process's, or the deployed function's variables)."""
        env = os.environ if environment is None else environment
        return cls(
            run_table=env[ENV_RUN_TABLE],
            output_bucket=env[ENV_OUTPUT_BUCKET],
            output_prefix=env.get(ENV_OUTPUT_PREFIX, ""),
            parameter_prefix=env[ENV_PARAMETER_PREFIX],
            dead_letter_queue_url=env[ENV_DLQ_URL],
            max_receive_count=int(env.get(ENV_MAX_RECEIVE_COUNT, "5")),
            deadline_margin_seconds=float(env.get(ENV_DEADLINE_MARGIN, "30")),
        )

    @property
    def output_root(self) -> str:
        return f"s3://{self.output_bucket}/{self.output_prefix}"

    def allows_store(self, store: str) -> bool:
        """True when ``store`` lies under the output location the stack was deployed with."""
        root = self.output_root
        if not root.endswith("/"):
            root += "/"
        return store.startswith(root) and ".." not in store.split("/") and len(store) > len(root)

    def allows_parameter(self, name: str) -> bool:
        return name.startswith(self.parameter_prefix.rstrip("/") + "/")

    def allows_granule_list(self, url: str) -> bool:
        return url.startswith(f"s3://{self.output_bucket}/{RUN_FILES_PREFIX}") and ".." not in url.split("/")


# -- which stack the operator's commands talk to ------------------------------------------------
ENV_STACK_NAME = "SHARD_QUEUE_STACK"
ENV_STATE_DIR = "SHARD_QUEUE_STATE_DIR"  # where the embedded stack records itself (default: .stack in the project root)
DEFAULT_STACK_NAME = "icesat2-shard-queue"


class StackOutputs(BaseModel):
    """The deployed stack as the producer sees it (CloudFormation outputs)."""

    model_config = ConfigDict(frozen=True)

    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    run_table: str
    output_bucket: str
    output_prefix: str
    parameter_prefix: str
    function_name: str
    memory_mb: int
    timeout_s: int
    index_queue_url: str
    index_queue_arn: str
    index_dead_letter_queue_url: str
    index_dead_letter_queue_arn: str
    index_function_name: str
    index_prefix: str

    @classmethod
    def from_outputs(cls, outputs: dict[str, str]) -> StackOutputs:
        return cls(
            queue_url=outputs[OUTPUT_QUEUE_URL],
            queue_arn=outputs[OUTPUT_QUEUE_ARN],
            dead_letter_queue_url=outputs[OUTPUT_DLQ_URL],
            dead_letter_queue_arn=outputs[OUTPUT_DLQ_ARN],
            run_table=outputs[OUTPUT_TABLE],
            output_bucket=outputs[OUTPUT_BUCKET],
            output_prefix=outputs.get(OUTPUT_PREFIX, ""),
            parameter_prefix=outputs[OUTPUT_PARAMETER_PREFIX],
            function_name=outputs[OUTPUT_FUNCTION],
            memory_mb=int(outputs[OUTPUT_FUNCTION_MEMORY]),
            timeout_s=int(outputs[OUTPUT_FUNCTION_TIMEOUT]),
            index_queue_url=outputs[OUTPUT_INDEX_QUEUE_URL],
            index_queue_arn=outputs[OUTPUT_INDEX_QUEUE_ARN],
            index_dead_letter_queue_url=outputs[OUTPUT_INDEX_DLQ_URL],
            index_dead_letter_queue_arn=outputs[OUTPUT_INDEX_DLQ_ARN],
            index_function_name=outputs[OUTPUT_INDEX_FUNCTION],
            index_prefix=outputs[OUTPUT_INDEX_PREFIX],
        )

    def default_store(self, run_id: str) -> str:
        return f"s3://{self.output_bucket}/{self.output_prefix}{run_id}.zarr"

    @property
    def index_root(self) -> str:
        """Where the stack keeps granule indexes (one object per granule)."""
        return f"s3://{self.output_bucket}/{self.index_prefix}"
