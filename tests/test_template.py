"""template.yaml: lint-clean, translates offline, deploys in moto, and has the settings the design needs.

Where moto 5.2.5 does not create or report something from CloudFormation, the check reads the
translated template instead and says so: the DLQ's RedriveAllowPolicy (not returned by
GetQueueAttributes), the function's Architectures (moto's CloudFormation create ignores it),
the table's TimeToLiveSpecification, the bucket's public access block / ownership / lifecycle,
the bucket policy and the CloudWatch alarm (resource types moto's CloudFormation skips).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import boto3
import pytest
from moto import mock_aws

from producer.stack import deploy
from shared import settings

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
REGION = "us-west-2"
STACK = "shards-test"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024

OUTPUT_NAMES = {
    settings.OUTPUT_QUEUE_URL,
    settings.OUTPUT_QUEUE_ARN,
    settings.OUTPUT_DLQ_URL,
    settings.OUTPUT_DLQ_ARN,
    settings.OUTPUT_TABLE,
    settings.OUTPUT_BUCKET,
    settings.OUTPUT_PREFIX,
    settings.OUTPUT_PARAMETER_PREFIX,
    settings.OUTPUT_FUNCTION,
    settings.OUTPUT_FUNCTION_MEMORY,
    settings.OUTPUT_FUNCTION_TIMEOUT,
    settings.OUTPUT_INDEX_QUEUE_URL,
    settings.OUTPUT_INDEX_QUEUE_ARN,
    settings.OUTPUT_INDEX_DLQ_URL,
    settings.OUTPUT_INDEX_DLQ_ARN,
    settings.OUTPUT_INDEX_FUNCTION,
    settings.OUTPUT_INDEX_PREFIX,
}
ENV_NAMES = {
    settings.ENV_RUN_TABLE,
    settings.ENV_OUTPUT_BUCKET,
    settings.ENV_OUTPUT_PREFIX,
    settings.ENV_PARAMETER_PREFIX,
    settings.ENV_DEADLINE_MARGIN,
    settings.ENV_DLQ_URL,
    settings.ENV_MAX_RECEIVE_COUNT,
}


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam_template() -> dict:
    return deploy.load_template(TEMPLATE)


@pytest.fixture(scope="module")
def aws():
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    with mock.patch.dict(os.environ, env), mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


@pytest.fixture(scope="module")
def translated(aws) -> dict:
    code_uri = deploy.package_code(aws("s3"), "local-code")
    return deploy.translate_template(TEMPLATE, code_uri=code_uri, region=REGION)


@pytest.fixture(scope="module")
def outputs(aws, translated) -> dict[str, str]:
    with warnings.catch_warnings():
        # moto announces the resource types its CloudFormation skips (bucket policy, alarm).
        warnings.filterwarnings("ignore", message="Tried to parse AWS::")
        return deploy.deploy_stack(aws("cloudformation"), STACK, translated)


@pytest.fixture(scope="module")
def function_config(aws, outputs) -> dict:
    return aws("lambda").get_function_configuration(FunctionName=outputs[settings.OUTPUT_FUNCTION])


def _resources(template: dict, type_: str) -> dict[str, dict]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == type_}


def _sub(value, outputs_account: str, stack: str = STACK) -> str:
    """Render a Fn::Sub of pseudo parameters only, as CloudFormation would in moto's account."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return (
        text.replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", REGION)
        .replace("${AWS::AccountId}", outputs_account)
        .replace("${AWS::StackName}", stack)
    )


# -- the template itself ----------------------------------------------------------------------------


def test_cfn_lint_clean():
    from cfnlint.api import lint_file

    matches = lint_file(TEMPLATE)
    assert not matches, "\n".join(str(match) for match in matches)


def test_visibility_timeout_is_six_times_every_allowed_function_timeout(sam_template):
    """CloudFormation has no arithmetic: the template maps each allowed WorkerTimeout to 6x it."""
    allowed = sam_template["Parameters"]["WorkerTimeout"]["AllowedValues"]
    mapping = sam_template["Mappings"]["QueueVisibilityBySeconds"]
    assert sam_template["Parameters"]["WorkerTimeout"]["Default"] in allowed
    assert {str(value) for value in allowed} == set(mapping)
    for seconds, entry in mapping.items():
        assert entry["VisibilityTimeout"] >= 6 * int(seconds)
        assert entry["VisibilityTimeout"] <= 43_200  # SQS maximum (12 h)
    for seconds in allowed:
        assert seconds <= 900  # Lambda maximum


def test_parameter_bounds(sam_template):
    params = sam_template["Parameters"]
    assert params["MaxReceiveCount"]["MinValue"] >= 5 and params["MaxReceiveCount"]["Default"] >= 5
    assert params["MaximumConcurrency"]["MinValue"] == 2 and params["MaximumConcurrency"]["MaxValue"] == 1000
    assert params["MaximumConcurrency"]["Default"] <= params["ReservedConcurrency"]["Default"]
    assert params["WorkerMemorySize"]["Default"] == 2048 and params["WorkerTimeout"]["Default"] == 720
    assert re.fullmatch(params["OutputPrefix"]["AllowedPattern"], params["OutputPrefix"]["Default"])
    for bad in ("", "atl06", "/atl06/", "a//b/", "*/", "atl06/*/"):
        assert not re.fullmatch(params["OutputPrefix"]["AllowedPattern"], bad)


def test_template_outputs_are_the_shared_names(sam_template):
    assert set(sam_template["Outputs"]) == OUTPUT_NAMES


@pytest.mark.parametrize(
    "function, handler",
    [("WorkerFunction", "worker.handler.lambda_handler"), ("IndexFunction", "worker.index_handler.lambda_handler")],
)
def test_function_environment_uses_the_shared_names(sam_template, function, handler):
    props = sam_template["Resources"][function]["Properties"]
    variables = props["Environment"]["Variables"]
    assert ENV_NAMES <= set(variables)
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(variables)
    assert props["Handler"] == handler
    module, _, name = handler.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))
    assert props["Runtime"] == "python3.12" and props["Architectures"] == ["arm64"]


def test_table_definition_uses_the_shared_names(sam_template):
    table = sam_template["Resources"]["RunTable"]["Properties"]
    # moto's CloudFormation ignores TimeToLiveSpecification: checked here, not in the deployed table.
    assert table["TimeToLiveSpecification"] == {"AttributeName": settings.TABLE_TTL, "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"


@pytest.mark.parametrize("function", ["WorkerFunction", "IndexFunction"])
def test_function_is_built_by_the_makefile_target(sam_template, function):
    assert sam_template["Resources"][function]["Metadata"]["BuildMethod"] == "makefile"
    assert re.search(rf"^build-{function}:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_translation_is_plain_cloudformation(translated):
    assert "Transform" not in translated
    assert not [name for name, res in translated["Resources"].items() if res["Type"].startswith("AWS::Serverless::")]
    function = translated["Resources"]["WorkerFunction"]["Properties"]
    assert function["Code"] == {"S3Bucket": "local-code", "S3Key": "WorkerFunction.zip"}
    assert function["Architectures"] == ["arm64"]  # moto's Lambda reports x86_64: checked here
    mappings = _resources(translated, "AWS::Lambda::EventSourceMapping")
    assert sorted(m["Properties"]["FunctionName"]["Ref"] for m in mappings.values()) == [
        "IndexFunction",
        "WorkerFunction",
    ]


def test_resolve_parameter_mappings_follows_parameters(sam_template, translated):
    default = deploy.resolve_parameter_mappings(translated)
    assert default["Resources"]["ShardQueue"]["Properties"]["VisibilityTimeout"] == 4320
    longer = deploy.resolve_parameter_mappings(translated, {"WorkerTimeout": "900"})
    assert longer["Resources"]["ShardQueue"]["Properties"]["VisibilityTimeout"] == 5400
    assert "Fn::FindInMap" in json.dumps(translated)  # the input is left as it was


# -- IAM: least privilege ------------------------------------------------------------------------------


def _statements(template: dict):
    for name, res in template["Resources"].items():
        props = res.get("Properties", {})
        documents = []
        if res["Type"] == "AWS::IAM::Role":
            documents = [policy["PolicyDocument"] for policy in props.get("Policies", [])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props["PolicyDocument"]]
        for document in documents:
            for statement in document["Statement"]:
                yield name, statement


def _as_list(value):
    return value if isinstance(value, list) else [value]


def test_iam_statements_name_their_resources(translated):
    statements = list(_statements(translated))
    assert statements
    for name, statement in statements:
        actions = _as_list(statement["Action"])
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in actions), (name, actions)
        if any(action.split(":")[0] in {"ssm", "dynamodb", "s3", "sqs", "logs", "kms"} for action in actions):
            assert "*" not in _as_list(statement["Resource"]), (name, statement)


def test_worker_role_has_no_managed_policies(translated):
    # SAM's generated role would carry AWSLambdaSQSQueueExecutionRole and AWSLambdaBasicExecutionRole,
    # which grant on Resource "*"; the template gives the function an explicit role instead.
    role = translated["Resources"]["WorkerRole"]["Properties"]
    assert not role.get("ManagedPolicyArns")
    assert translated["Resources"]["WorkerFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["WorkerRole", "Arn"]}


def _by_action(translated: dict, role: str) -> dict[str, list[dict]]:
    by_action: dict[str, list[dict]] = {}
    for name, statement in _statements(translated):
        if name == role:
            for action in _as_list(statement["Action"]):
                by_action.setdefault(action, []).append(statement)
    return by_action


def test_index_role_scopes(translated):
    """The index builder polls its own queue and writes indexes, nothing else."""
    by_action = _by_action(translated, "IndexRole")
    assert by_action["sqs:ReceiveMessage"][0]["Resource"] == {"Fn::GetAtt": ["IndexQueue", "Arn"]}
    assert by_action["sqs:SendMessage"][0]["Resource"] == {"Fn::GetAtt": ["IndexDeadLetterQueue", "Arn"]}
    assert [s["Resource"] for s in by_action["s3:PutObject"]] == [{"Fn::Sub": "${OutputBucket.Arn}/${IndexPrefix}*"}]
    assert not {"s3:DeleteObject", "s3:ListBucket", "dynamodb:Scan"} & set(by_action)
    assert by_action["ssm:GetParameter"][0]["Resource"]["Fn::Sub"].endswith(":parameter/${AWS::StackName}/*")


def test_iam_scopes(translated):
    by_action = _by_action(translated, "WorkerRole")
    ssm = by_action["ssm:GetParameter"][0]["Resource"]["Fn::Sub"]
    assert ssm.endswith(":parameter/${AWS::StackName}/*")  # the ParameterPrefix, and nothing else
    assert set(by_action) >= {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    assert by_action["sqs:ReceiveMessage"][0]["Resource"] == {"Fn::GetAtt": ["ShardQueue", "Arn"]}
    assert by_action["sqs:SendMessage"][0]["Resource"] == {"Fn::GetAtt": ["ShardDeadLetterQueue", "Arn"]}
    assert by_action["kms:Decrypt"][0]["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"
    }
    writes = {
        json.dumps(s["Resource"])
        for a in ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
        for s in by_action[a]
    }
    assert writes == {json.dumps({"Fn::Sub": "${OutputBucket.Arn}/${OutputPrefix}*"})}
    reads = {json.dumps(s["Resource"]) for s in by_action["s3:GetObject"]}
    assert reads == {
        json.dumps({"Fn::Sub": "${OutputBucket.Arn}/${OutputPrefix}*"}),
        json.dumps({"Fn::Sub": "${OutputBucket.Arn}/" + settings.RUN_FILES_PREFIX + "*"}),
    }
    listing = by_action["s3:ListBucket"][0]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == {"Fn::Sub": "${OutputPrefix}*"}
    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"):
        resources = by_action[action][0]["Resource"]
        assert {"Fn::GetAtt": ["RunTable", "Arn"]} in resources
        assert {"Fn::Sub": "${RunTable.Arn}/index/*"} in resources
    assert "dynamodb:Scan" not in by_action


# -- the deployed stack (moto) ---------------------------------------------------------------------------


def test_outputs_present(outputs):
    assert set(outputs) == OUTPUT_NAMES
    assert outputs[settings.OUTPUT_PREFIX] == "atl06/"
    assert outputs[settings.OUTPUT_PARAMETER_PREFIX] == f"/{STACK}/"
    assert outputs[settings.OUTPUT_FUNCTION_MEMORY] == "2048"
    assert outputs[settings.OUTPUT_FUNCTION_TIMEOUT] == "720"
    assert all(outputs.values())


def test_event_source_mapping(aws, outputs, function_config):
    lam = aws("lambda")
    mappings = lam.list_event_source_mappings(FunctionName=outputs[settings.OUTPUT_FUNCTION])["EventSourceMappings"]
    assert len(mappings) == 1
    mapping = mappings[0]
    assert mapping["EventSourceArn"] == outputs[settings.OUTPUT_QUEUE_ARN]
    assert mapping["BatchSize"] == 1
    assert "ReportBatchItemFailures" in mapping["FunctionResponseTypes"]
    # moto returns both the mapping's ScalingConfig and the function's reserved concurrency.
    reserved = lam.get_function_concurrency(FunctionName=outputs[settings.OUTPUT_FUNCTION])
    maximum = mapping["ScalingConfig"]["MaximumConcurrency"]
    assert 2 <= maximum <= reserved["ReservedConcurrentExecutions"]


def test_queue_visibility_is_six_times_the_function_timeout(aws, outputs, function_config):
    attributes = aws("sqs").get_queue_attributes(QueueUrl=outputs[settings.OUTPUT_QUEUE_URL], AttributeNames=["All"])[
        "Attributes"
    ]
    assert function_config["Timeout"] == 720
    assert int(attributes["VisibilityTimeout"]) >= 6 * function_config["Timeout"]


def test_redrive_to_the_dead_letter_queue(aws, outputs):
    sqs = aws("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=outputs[settings.OUTPUT_QUEUE_URL], AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    policy = json.loads(attributes["RedrivePolicy"])
    assert int(policy["maxReceiveCount"]) >= 5
    assert policy["deadLetterTargetArn"] == outputs[settings.OUTPUT_DLQ_ARN]


def test_dead_letter_queue(aws, outputs, translated):
    attributes = aws("sqs").get_queue_attributes(QueueUrl=outputs[settings.OUTPUT_DLQ_URL], AttributeNames=["All"])[
        "Attributes"
    ]
    assert int(attributes["MessageRetentionPeriod"]) == 14 * 24 * 3600
    # moto does not return RedriveAllowPolicy: check the template's, rendered for this stack.
    allow = translated["Resources"]["ShardDeadLetterQueue"]["Properties"]["RedriveAllowPolicy"]
    account = outputs[settings.OUTPUT_QUEUE_ARN].split(":")[4]
    assert allow["redrivePermission"] == "byQueue"
    assert [_sub(arn, account) for arn in allow["sourceQueueArns"]] == [outputs[settings.OUTPUT_QUEUE_ARN]]


def test_function_configuration(outputs, function_config):
    assert function_config["Runtime"] == "python3.12"
    assert function_config["Handler"] == "worker.handler.lambda_handler"
    assert function_config["MemorySize"] == 2048
    variables = {k: str(v) for k, v in function_config["Environment"]["Variables"].items()}
    assert variables[settings.ENV_RUN_TABLE] == outputs[settings.OUTPUT_TABLE]
    assert variables[settings.ENV_OUTPUT_BUCKET] == outputs[settings.OUTPUT_BUCKET]
    assert variables[settings.ENV_OUTPUT_PREFIX] == outputs[settings.OUTPUT_PREFIX]
    assert variables[settings.ENV_PARAMETER_PREFIX] == outputs[settings.OUTPUT_PARAMETER_PREFIX]
    assert float(variables[settings.ENV_DEADLINE_MARGIN]) > 0
    assert variables[settings.ENV_DLQ_URL] == outputs[settings.OUTPUT_DLQ_URL]
    assert int(variables[settings.ENV_MAX_RECEIVE_COUNT]) == 5
    with mock.patch.dict(os.environ, variables):
        worker_settings = settings.WorkerSettings.from_env()
    store = f"s3://{outputs[settings.OUTPUT_BUCKET]}/{outputs[settings.OUTPUT_PREFIX]}run-1/shards.zarr"
    assert worker_settings.allows_store(store)


def test_run_table(aws, outputs):
    table = aws("dynamodb").describe_table(TableName=outputs[settings.OUTPUT_TABLE])["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [
        {"AttributeName": settings.TABLE_PK, "KeyType": "HASH"},
        {"AttributeName": settings.TABLE_SK, "KeyType": "RANGE"},
    ]
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {
        settings.TABLE_PK: "S",
        settings.TABLE_SK: "S",
        settings.TABLE_GSI_PK: "S",
        settings.TABLE_GSI_SK: "S",
    }
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == settings.TABLE_GSI
    assert index["KeySchema"] == [
        {"AttributeName": settings.TABLE_GSI_PK, "KeyType": "HASH"},
        {"AttributeName": settings.TABLE_GSI_SK, "KeyType": "RANGE"},
    ]
    assert index["Projection"]["ProjectionType"] == "ALL"


def test_output_bucket(aws, outputs, translated):
    s3 = aws("s3")
    rules = s3.get_bucket_encryption(Bucket=outputs[settings.OUTPUT_BUCKET])["ServerSideEncryptionConfiguration"][
        "Rules"
    ]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # moto's CloudFormation does not apply these: checked in the template.
    props = translated["Resources"]["OutputBucket"]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    lifecycle = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    assert lifecycle["expire-run-files"]["Prefix"] == settings.RUN_FILES_PREFIX


def test_dead_letter_alarms(translated):
    # moto's CloudFormation skips AWS::CloudWatch::Alarm: checked in the template.
    alarms = _resources(translated, "AWS::CloudWatch::Alarm").values()
    watched = set()
    for alarm in alarms:
        props = alarm["Properties"]
        assert props["Namespace"] == "AWS/SQS" and props["MetricName"] == "ApproximateNumberOfMessagesVisible"
        (dimension,) = props["Dimensions"]
        watched.add(dimension["Value"]["Fn::GetAtt"][0])
        assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] == 0
    assert watched == {"ShardDeadLetterQueue", "IndexDeadLetterQueue"}
    assert translated["Resources"]["AlarmTopic"]["Condition"] == "HasAlarmEmail"


def test_deployed_role_policy_matches_the_template(aws, outputs, function_config):
    iam = aws("iam")
    role = function_config["Role"].rsplit("/", 1)[1]
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(document, str):  # moto stores a CloudFormation-made inline policy as a Python repr
        document = ast.literal_eval(document)
    resources = [r for s in document["Statement"] for r in _as_list(s["Resource"])]
    assert "*" not in resources
    assert f"arn:aws:ssm:{REGION}:{outputs[settings.OUTPUT_QUEUE_ARN].split(':')[4]}:parameter/{STACK}/*" in resources


# -- deploy_stack behaviour --------------------------------------------------------------------------------


def test_deploy_again_leaves_or_updates_the_stack(aws, outputs, translated):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tried to parse AWS::")
        again = deploy.deploy_stack(aws("cloudformation"), STACK, translated)
    assert again == outputs
    assert deploy.stack_outputs(aws("cloudformation"), STACK) == outputs


def test_disable_emulated_event_sources_keeps_settings(aws, translated):
    """A second stack: moto would otherwise receive each sent message once itself (see deploy.py)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tried to parse AWS::")
        out = deploy.deploy_stack(
            aws("cloudformation"), "shards-emulated", translated, {"ReservedConcurrency": 4, "MaximumConcurrency": 3}
        )
    (mapping,) = deploy.disable_emulated_event_sources(aws("lambda"), out[settings.OUTPUT_FUNCTION])
    assert mapping["State"] == "Disabled"
    assert mapping["BatchSize"] == 1 and mapping["ScalingConfig"] == {"MaximumConcurrency": 3}
    sqs = aws("sqs")
    sqs.send_message(QueueUrl=out[settings.OUTPUT_QUEUE_URL], MessageBody="{}")
    (message,) = sqs.receive_message(
        QueueUrl=out[settings.OUTPUT_QUEUE_URL], MessageSystemAttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"


class _FakeCloudFormation:
    """Just enough of a CloudFormation client to drive deploy_stack into a failed create."""

    def __init__(self):
        self.status = None

    def describe_stacks(self, StackName):  # noqa: N803 - boto3's spelling
        from botocore.exceptions import ClientError

        if self.status is None:
            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": f"Stack with id {StackName} does not exist"}},
                "DescribeStacks",
            )
        return {"Stacks": [{"StackName": StackName, "StackStatus": self.status}]}

    def create_stack(self, **request):
        self.status = "ROLLBACK_COMPLETE"

    def describe_stack_events(self, StackName):  # noqa: N803
        return {
            "StackEvents": [
                {
                    "LogicalResourceId": "WorkerFunction",
                    "ResourceType": "AWS::Lambda::Function",
                    "ResourceStatus": "CREATE_FAILED",
                    "ResourceStatusReason": "Code not found",
                }
            ]
        }


def test_deploy_failure_names_the_failing_resource(translated):
    with pytest.raises(deploy.StackDeployError, match=r"ROLLBACK_COMPLETE.*\n.*WorkerFunction.*Code not found"):
        deploy.deploy_stack(_FakeCloudFormation(), "broken", translated, poll_seconds=0.01)


# -- package size -----------------------------------------------------------------------------------------


def _package_size_module():
    spec = importlib.util.spec_from_file_location("package_size", ROOT / "bench" / "package_size.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_worker_package_under_lambda_limit():
    """Builds the package with uv's cache only (UV_OFFLINE): skipped when the wheels are not cached."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    package_size = _package_size_module()
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "package"
        target.mkdir()
        try:
            package_size.build_package(target, offline=True)
        except package_size.BuildError as error:
            pytest.skip(
                f"aarch64 wheels not in uv's cache (run `python bench/package_size.py` online once): "
                f"{str(error).splitlines()[0]}"
            )
        total, parts = package_size.measure(target)
        names = {name for name, _ in parts}
        assert {"worker", "shared", "numpy", "zarr", "h5coro", "mortie"} <= names
        assert not names & {"boto3", "botocore", "xarray", "pandas", "earthaccess", "producer", "tests"}
        assert total < LAMBDA_UNZIPPED_LIMIT, f"{total / 2**20:.1f} MiB"


def test_index_queue_mapping_and_dead_letter_queue(aws, outputs):
    """Index building is queue work of its own: batch size 1, a throttle, a DLQ after the same receives."""
    lam, sqs = aws("lambda"), aws("sqs")
    function = outputs[settings.OUTPUT_INDEX_FUNCTION]
    (mapping,) = lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    assert mapping["EventSourceArn"] == outputs[settings.OUTPUT_INDEX_QUEUE_ARN]
    assert mapping["BatchSize"] == 1 and "ReportBatchItemFailures" in mapping["FunctionResponseTypes"]
    reserved = lam.get_function_concurrency(FunctionName=function)["ReservedConcurrentExecutions"]
    assert 2 <= mapping["ScalingConfig"]["MaximumConcurrency"] <= reserved
    attributes = sqs.get_queue_attributes(QueueUrl=outputs[settings.OUTPUT_INDEX_QUEUE_URL], AttributeNames=["All"])[
        "Attributes"
    ]
    policy = json.loads(attributes["RedrivePolicy"])
    assert (
        policy["deadLetterTargetArn"] == outputs[settings.OUTPUT_INDEX_DLQ_ARN] and int(policy["maxReceiveCount"]) >= 5
    )
    timeout = lam.get_function(FunctionName=function)["Configuration"]["Timeout"]
    assert int(attributes["VisibilityTimeout"]) >= 6 * timeout
    environment = lam.get_function(FunctionName=function)["Configuration"]["Environment"]["Variables"]
    assert environment[settings.ENV_DLQ_URL] == outputs[settings.OUTPUT_INDEX_DLQ_URL]
    assert environment[settings.ENV_OUTPUT_PREFIX] == outputs[settings.OUTPUT_INDEX_PREFIX]
