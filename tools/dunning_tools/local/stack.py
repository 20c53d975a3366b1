"""Deploy the real `template.yaml` as a CloudFormation stack inside moto.

What `sam deploy` does, minus Docker and AWS: the template's `Fn::ForEach` loops are expanded
(dunning_tools.local.language_extensions, as AWS::LanguageExtensions does), the SAM template is transformed with
aws-sam-translator, local code folders become zips in a moto S3 bucket, and moto's
CloudFormation creates the stack. Works with moto in-process (`mock_aws()`) and over HTTP
(`ThreadedMotoServer` with `AWS_ENDPOINT_URL`): only plain boto3 clients are used.

Workarounds applied to the translated template, for the local run only (template.yaml is
never changed):
  * moto's `AWS::Events::EventBus` has no physical ID: `!Ref` of it resolves to an object that
    breaks later calls (e.g. `GetFunctionConfiguration` of a function whose environment holds
    it), and its stack resource reports an empty ID. So every `Ref`/`${Bus}` of a bus becomes
    `Fn::GetAtt Bus.Name` (the same value in CloudFormation), and a hidden output per bus reads
    the name for `physical_id()`.
  * moto's CloudFormation ignores a table's `TimeToLiveSpecification`, so after creation the
    runner turns TTL on itself (`UpdateTimeToLive`) wherever the template enables it.
  * moto's CloudFormation leaves a list parameter's `Default` (e.g. `AllowedEventSources`) one
    string, so the runner passes each list parameter's Default explicitly when not given.
  * moto's CloudFormation builds `AWS::StepFunctions::StateMachine` from `DefinitionString` alone
    and ignores `DefinitionSubstitutions`, while SAM's translator emits the template's `Definition`
    as a `DefinitionString` (JSON lines in `Fn::Join`) with `${...}` placeholders beside
    `DefinitionSubstitutions`. So the runner joins that text itself, has the stack resolve each
    substitution's value (a hidden output: a function's ARN, a parameter) and replaces the `${key}`
    placeholders of the substitutions, and nothing else, as CloudFormation does (moto's `Fn::Sub`
    would not do: it turns the `$$` of `$$.Map.Item.Index` into `$`). `LocalStack.state_machines`
    holds the definition so rendered, which `dunning_tools.local.schedule` executes.
  * moto's EventBridge cannot deliver to Lambda targets (`PutEvents` raises NotImplementedError
    for any matching rule that has one, whatever the rule's state), so Lambda targets are
    removed from `AWS::Events::Rule` resources; `LocalStack.rule_targets` remembers them.
Moto behaviour accepted as is:
  * types moto's CloudFormation does not support are skipped (moto only warns); the runner
    leaves them out of the body it sends, since moto reads it with a slow pure-Python YAML
    parser, and lists them in `LocalStack.skipped`. With moto 5.2.5 that is
    `AWS::Scheduler::Schedule`, `AWS::CloudWatch::Alarm`, `AWS::Logs::SubscriptionFilter`,
    `AWS::SNS::Subscription`, `AWS::SNS::TopicPolicy`, `AWS::SQS::QueuePolicy` and
    `AWS::S3::BucketPolicy`: no schedule, log subscription or SNS subscription ever calls a
    function by itself here; tests and the CLI invoke functions with events/*.json shapes.
  * layers are not attached to the functions (the handlers run in this process anyway).
  * event source mappings are created but then disabled, because moto would run the mapped
    function through Docker as soon as a message arrives; `drain_queue` drives the consumer.
  * DynamoDB stream mappings are not created at all: moto ignores their `Enabled` flag, runs the
    function through Docker on every write to the table, and then empties the table's stream
    records. They stay in `LocalStack.template` (listed in `skipped`); `LocalStack.stream_mappings`
    holds each one with its stream ARN as the stack resolved it, and `drain_stream` reads the stream
    through the DynamoDB Streams API and drives the function, as Lambda's poller would.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import time
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template
from samtranslator.yaml_helper import yaml_parse

from dunning_tools.local.language_extensions import LanguageExtensionsError
from dunning_tools.local.language_extensions import expand as expand_language_extensions

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import FunctionConfigurationResponseTypeDef
    from mypy_boto3_sqs import SQSClient

REPO_ROOT = Path(__file__).resolve().parents[3]
ARTIFACT_BUCKET = "dunning-local-artifacts"
DEFAULT_REGION = "us-east-1"
# Stack outputs this module adds for itself; hidden from `LocalStack.outputs`.
_HIDDEN_OUTPUT_PREFIX = "LocalRunnerPhysicalId"
_HIDDEN_STREAM_OUTPUT_PREFIX = "LocalRunnerStreamArn"
_HIDDEN_SUBSTITUTION_OUTPUT_PREFIX = "LocalRunnerSubstitution"
_HIDDEN_ROLE_OUTPUT_PREFIX = "LocalRunnerRoleArn"
_HIDDEN_OUTPUT_PREFIXES = (
    _HIDDEN_OUTPUT_PREFIX,
    _HIDDEN_STREAM_OUTPUT_PREFIX,
    _HIDDEN_SUBSTITUTION_OUTPUT_PREFIX,
    _HIDDEN_ROLE_OUTPUT_PREFIX,
)
# Resource types whose moto stack resource has no physical ID, and the attribute that names them.
_NAME_ATTRIBUTE_OF_UNNAMED = {"AWS::Events::EventBus": "Name"}
# Folders and files never shipped in a code zip.
_SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".aws-sam"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}
_STACK_WAIT_SECONDS = 60.0


class LocalStackError(RuntimeError):
    """The template could not be deployed into moto, or a stack lookup failed."""


@dataclass(frozen=True)
class StackResource:
    """One resource of the deployed stack."""

    logical_id: str
    resource_type: str
    physical_id: str


@dataclass(frozen=True)
class StreamMapping:
    """A DynamoDB stream event source mapping of the template, driven by the local runner (see above)."""

    logical_id: str
    function_logical_id: str
    stream_arn: str  # resolved by the stack (e.g. `!GetAtt LoansTable.StreamArn`)
    properties: Mapping[str, Any] = field(repr=False)  # as translated: BatchSize, StartingPosition, ...


@dataclass(frozen=True)
class StateMachine:
    """A Step Functions state machine of the stack, with the definition as CloudFormation resolved it."""

    logical_id: str
    arn: str
    definition: str = field(repr=False)  # the template's Definition, substitutions applied (JSON text)
    role_arn: str = field(repr=False)


@dataclass(frozen=True)
class LocalStack:
    """A stack created from template.yaml in moto, and what the template says about it."""

    name: str
    region: str
    root: Path  # the template's folder; CodeUri paths are relative to it
    outputs: Mapping[str, str]
    resources: Mapping[str, StackResource]
    template: Mapping[str, Any] = field(repr=False)  # the translated template as deployed
    code_uris: Mapping[str, str] = field(repr=False)  # function logical ID -> local CodeUri
    # EventBridge rule -> functions it targets in template.yaml (detached locally, see above).
    rule_targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    # DynamoDB stream mappings (not created in moto, see above), and where `drain_stream` stopped reading.
    stream_mappings: Mapping[str, StreamMapping] = field(default_factory=dict, repr=False)
    stream_positions: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    # Step Functions state machines; `dunning_tools.local.schedule` executes them.
    state_machines: Mapping[str, StateMachine] = field(default_factory=dict, repr=False)
    # State machines registered with moto's executing Step Functions backend (see dunning_tools.local.schedule).
    executable_state_machines: set[str] = field(default_factory=set, repr=False, compare=False)

    @property
    def skipped(self) -> list[str]:
        """Translated resources moto did not create: types it does not support, or a false Condition."""
        return [logical_id for logical_id in self.template["Resources"] if logical_id not in self.resources]

    def physical_id(self, logical_id: str) -> str:
        """The resource's physical ID (name, URL or ARN: what `!Ref` gives in CloudFormation)."""
        return self._resource(logical_id).physical_id

    def function_configuration(self, logical_id: str) -> FunctionConfigurationResponseTypeDef:
        """Moto's Lambda configuration of one of the stack's functions."""
        resource = self._resource(logical_id, "AWS::Lambda::Function")
        client = lambda_client(self.region)
        return client.get_function_configuration(FunctionName=resource.physical_id)

    def function_environment(
        self, logical_id: str, configuration: FunctionConfigurationResponseTypeDef | None = None
    ) -> dict[str, str]:
        """The environment variables the stack gave the function, as Lambda would see them."""
        if configuration is None:
            configuration = self.function_configuration(logical_id)
        variables = configuration.get("Environment", {}).get("Variables", {})
        # moto hands back `Type: Number` parameters as numbers; Lambda only ever has strings.
        return {key: _as_environment_value(value) for key, value in variables.items()}

    def function_handler(self, logical_id: str) -> tuple[str, str]:
        """The handler's importable module and attribute, e.g. (`functions.plan_reminders.app`, `lambda_handler`)."""
        self._resource(logical_id, "AWS::Lambda::Function")
        code_uri = self.code_uris.get(logical_id)
        if code_uri is None:
            raise LocalStackError(f"{logical_id} has no local CodeUri folder to import its handler from")
        handler = str(self.template["Resources"][logical_id]["Properties"]["Handler"])
        handler_path, _, attribute = handler.rpartition(".")
        parts = [*Path(code_uri).parts, *handler_path.split("/")]
        if not attribute or not all(part.isidentifier() for part in parts):
            raise LocalStackError(f"{logical_id}: cannot import handler {handler!r} from {code_uri!r}")
        return ".".join(parts), attribute

    def function_handler_module(self, logical_id: str) -> str:
        """The handler's module path, e.g. `functions.plan_reminders.app`."""
        return self.function_handler(logical_id)[0]

    def function_timeout(self, logical_id: str) -> int:
        """The function's timeout in seconds, as deployed."""
        return int(self.function_configuration(logical_id).get("Timeout", 3))

    def queue_url(self, logical_id: str) -> str:
        """The URL of one of the stack's SQS queues."""
        return self._resource(logical_id, "AWS::SQS::Queue").physical_id

    def queue_arn(self, logical_id: str) -> str:
        """The ARN of one of the stack's SQS queues."""
        client = sqs_client(self.region)
        attributes = client.get_queue_attributes(QueueUrl=self.queue_url(logical_id), AttributeNames=["QueueArn"])
        return attributes["Attributes"]["QueueArn"]

    def logical_ids(self, resource_type: str) -> list[str]:
        """Logical IDs of the stack's resources of one type, in template order."""
        return [r.logical_id for r in self.resources.values() if r.resource_type == resource_type]

    def _resource(self, logical_id: str, resource_type: str | None = None) -> StackResource:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise LocalStackError(f"stack {self.name} has no resource {logical_id!r}; it has {sorted(self.resources)}")
        if resource_type is not None and resource.resource_type != resource_type:
            raise LocalStackError(f"{logical_id} is a {resource.resource_type}, not a {resource_type}")
        return resource


@functools.cache
def aws_session(region: str) -> boto3.session.Session:
    """One boto3 session per region: a client from a fresh session reloads botocore's models (~0.1 s)."""
    return boto3.session.Session(region_name=region)


def lambda_client(region: str) -> LambdaClient:
    """The runner's own Lambda client, built once (~15 ms each; the demo invokes thousands of times)."""
    return _lambda_client(region, os.environ.get("AWS_ENDPOINT_URL", ""))


def sqs_client(region: str) -> SQSClient:
    """The runner's own SQS client, built once."""
    return _sqs_client(region, os.environ.get("AWS_ENDPOINT_URL", ""))


def dynamodbstreams_client(region: str) -> Any:  # no mypy-boto3 stubs for it in the dev environment
    """The runner's own DynamoDB Streams client, built once.

    With a StreamArn in the request, botocore routes to an account-based endpoint
    (`<account>.streams-ddb.<region>.amazonaws.com`) that in-process moto does not recognise (it
    answers 404 "Not yet implemented"); the regional endpoint, which moto serves, is what AWS also
    accepts. Over HTTP, AWS_ENDPOINT_URL decides anyway.
    """
    return _dynamodbstreams_client(region, os.environ.get("AWS_ENDPOINT_URL", ""))


# The endpoint is part of each cache key: botocore reads it from the environment at creation.
@functools.cache
def _lambda_client(region: str, endpoint: str) -> LambdaClient:
    return aws_session(region).client("lambda")


@functools.cache
def _sqs_client(region: str, endpoint: str) -> SQSClient:
    return aws_session(region).client("sqs")


@functools.cache
def _dynamodbstreams_client(region: str, endpoint: str) -> Any:
    return aws_session(region).client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))


def deploy_stack(
    template_path: str | os.PathLike[str] = "template.yaml",
    parameters: Mapping[str, str] | None = None,
    stack_name: str = "dunning-local",
) -> LocalStack:
    """Create the SAM template as a stack in the active moto and return a handle on it.

    Call it while moto is active: inside `moto.mock_aws()`, or with `AWS_ENDPOINT_URL`
    pointing at a moto server. A relative `template_path` that does not exist from the
    working directory is looked up from the repository root.
    """
    template_file = _find_template(template_path)
    region = os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    # botocore refuses to sign without credentials, even for moto.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    _require_moto()

    parameters = dict(parameters or {})
    translation = _translate(template_file.read_text(encoding="utf-8"), _frozen(parameters), region)
    session = aws_session(region)

    s3 = session.client("s3")
    _create_bucket(s3, ARTIFACT_BUCKET, region)
    for key, folder in translation.artifacts.items():
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=_zip_folder(template_file.parent / folder))

    template = json.loads(translation.template)
    description, summaries = _create_stack(
        session.client("cloudformation"), stack_name, translation.body, {**_list_defaults(template), **parameters}
    )

    stack = _stack_handle(stack_name, region, template_file, translation, description, summaries)
    _enable_time_to_live(session.client("dynamodb"), template, stack.resources)
    _disable_event_source_mappings(session.client("lambda"), stack.resources.values())
    return stack


def _stack_handle(
    stack_name: str,
    region: str,
    template_file: Path,
    translation: _Translation,
    description: Mapping[str, Any],
    summaries: Iterable[Mapping[str, Any]],
) -> LocalStack:
    """The handle on a stack in moto: the template's translation, and the stack's outputs and resources as
    moto describes them. `deploy_stack` builds it once it created the stack; `server.attach_stack` builds
    the same from a running server's stack."""
    raw_outputs = {o["OutputKey"]: str(o.get("OutputValue", "")) for o in description.get("Outputs", [])}
    resources: dict[str, StackResource] = {}
    for summary in summaries:
        logical_id = summary.get("LogicalResourceId", "")
        if not logical_id:  # moto lists each resource type it skipped as a nameless entry
            continue
        physical_id = summary.get("PhysicalResourceId", "") or raw_outputs.get(_HIDDEN_OUTPUT_PREFIX + logical_id, "")
        resources[logical_id] = StackResource(logical_id, summary["ResourceType"], physical_id)

    template = json.loads(translation.template)
    stream_mappings = {
        logical_id: StreamMapping(
            logical_id,
            function,
            raw_outputs[_HIDDEN_STREAM_OUTPUT_PREFIX + logical_id],
            template["Resources"][logical_id]["Properties"],
        )
        for logical_id, function in translation.stream_functions.items()
        if raw_outputs.get(_HIDDEN_STREAM_OUTPUT_PREFIX + logical_id)  # its Condition may be false
    }
    state_machines = {
        logical_id: StateMachine(
            logical_id,
            resources[logical_id].physical_id,
            _substitute(
                text,
                {key: raw_outputs[_HIDDEN_SUBSTITUTION_OUTPUT_PREFIX + logical_id + key] for key in keys},
            ),
            raw_outputs[_HIDDEN_ROLE_OUTPUT_PREFIX + logical_id],
        )
        for logical_id, (text, keys) in translation.state_machines.items()
        if logical_id in resources  # its Condition may be false
    }
    return LocalStack(
        name=stack_name,
        region=region,
        root=template_file.parent,
        outputs={k: v for k, v in raw_outputs.items() if not k.startswith(_HIDDEN_OUTPUT_PREFIXES)},
        resources=resources,
        template=template,
        code_uris=dict(translation.code_uris),  # the cached translation stays untouched
        rule_targets=dict(translation.rule_targets),
        stream_mappings=stream_mappings,
        state_machines=state_machines,
    )


def _create_stack(
    cloudformation: Any, stack_name: str, body: str, parameters: Mapping[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Create the stack in moto; return its description and its resource summaries."""
    with warnings.catch_warnings():
        # moto warns about each unsupported type whenever it reads the template; `LocalStack.skipped` lists them.
        warnings.filterwarnings("ignore", message=r"Tried to parse .* not supported by moto", category=UserWarning)
        try:
            cloudformation.create_stack(
                StackName=stack_name,
                TemplateBody=body,
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            )
        except ClientError as exc:
            raise LocalStackError(f"moto rejected stack {stack_name}: {exc}") from exc
        except Exception as exc:  # in-process moto raises its own parsing errors straight through
            raise LocalStackError(f"moto could not create stack {stack_name}: {exc!r}") from exc
        description = _wait_for_creation(cloudformation, stack_name)
        return description, list(_stack_resources(cloudformation, stack_name))


def _list_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """The Default of each list parameter: moto splits a list given at creation, but not a Default."""
    return {
        name: str(spec["Default"])
        for name, spec in template.get("Parameters", {}).items()
        if "List" in str(spec.get("Type", "")) and "Default" in spec
    }


def _find_template(template_path: str | os.PathLike[str]) -> Path:
    path = Path(template_path)
    if not path.is_absolute() and not path.exists():
        path = REPO_ROOT / path
    if not path.is_file():
        raise LocalStackError(f"no SAM template at {template_path!s}")
    return path.resolve()


def _require_moto() -> None:
    """Refuse to create anything unless the calls can only land in moto."""
    if os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_CLOUDFORMATION"):
        return
    try:
        from moto.core.models import botocore_stubber
    except ImportError:  # pragma: no cover - moto is a dev dependency of this runner
        in_process = False
    else:
        in_process = bool(botocore_stubber.enabled)
    if not in_process:
        raise LocalStackError("deploy_stack needs moto: call it inside moto.mock_aws() or set AWS_ENDPOINT_URL")


def _frozen(parameters: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in parameters.items()))


class _Translation(NamedTuple):
    body: str  # CloudFormation JSON sent to moto
    template: str  # the whole translated template (JSON), as `LocalStack.template`
    code_uris: dict[str, str]  # function logical ID -> local CodeUri
    artifacts: dict[str, str]  # S3 key -> local folder to zip
    rule_targets: dict[str, tuple[str, ...]]  # EventBridge rule -> functions it targeted
    stream_functions: dict[str, str]  # DynamoDB stream mapping -> the function it drives (not sent to moto)
    # Step Functions state machine -> its definition text with `${key}` placeholders, and the keys.
    state_machines: dict[str, tuple[str, tuple[str, ...]]]


@functools.lru_cache(maxsize=8)
def _translate(template_text: str, parameters: tuple[tuple[str, str], ...], region: str) -> _Translation:
    """SAM template text -> the CloudFormation template the local stack is created from.

    Cached per template text, parameters and region: the transform costs more than moto's create.
    Callers must not mutate what it returns.
    """
    try:  # Fn::ForEach first, as CloudFormation's AWS::LanguageExtensions transform does before SAM's
        sam_template: dict[str, Any] = expand_language_extensions(yaml_parse(template_text))
    except LanguageExtensionsError as exc:
        raise LocalStackError(f"the template's Fn::ForEach cannot be expanded: {exc}") from exc
    resources: dict[str, Any] = sam_template.get("Resources", {})
    function_globals = sam_template.get("Globals", {}).get("Function", {})
    code_uris: dict[str, str] = {}
    artifacts: dict[str, str] = {}

    for logical_id, resource in resources.items():
        properties = resource.setdefault("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function":
            code_uri = properties.get("CodeUri", function_globals.get("CodeUri"))
            if _is_local(code_uri):
                code_uris[logical_id] = str(code_uri)
                artifacts[f"functions/{logical_id}.zip"] = str(code_uri)
                properties["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/functions/{logical_id}.zip"
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            content_uri = properties.get("ContentUri")
            if _is_local(content_uri):
                artifacts[f"layers/{logical_id}.zip"] = str(content_uri)
                properties["ContentUri"] = f"s3://{ARTIFACT_BUCKET}/layers/{logical_id}.zip"

    # What samtranslator's `transform()` does, with the region given rather than read from the
    # environment (it raises NoRegionFound without one). Managed policies are only looked up
    # for `Policies` given by name; moto's IAM does not care, so none are known here.
    to_py27_compatible_template(sam_template, dict(parameters))
    translator = Translator(None, Parser(), boto_session=aws_session(region))
    translated: dict[str, Any] = undo_mark_unicode_str_in_template(
        translator.translate(sam_template, parameter_values=dict(parameters), get_managed_policy_map=dict)
    )
    unnamed = {
        logical_id: _NAME_ATTRIBUTE_OF_UNNAMED[resource["Type"]]
        for logical_id, resource in translated.get("Resources", {}).items()
        if resource.get("Type") in _NAME_ATTRIBUTE_OF_UNNAMED
    }
    translated = _refs_as_get_att(translated, unnamed)
    rule_targets = _detach_lambda_targets(translated.get("Resources", {}))
    outputs = translated.setdefault("Outputs", {})
    for logical_id, resource in translated.get("Resources", {}).items():
        attribute = _NAME_ATTRIBUTE_OF_UNNAMED.get(resource.get("Type", ""))
        if attribute is not None:
            output: dict[str, Any] = {"Value": {"Fn::GetAtt": [logical_id, attribute]}}
            if "Condition" in resource:
                output["Condition"] = resource["Condition"]
            outputs[_HIDDEN_OUTPUT_PREFIX + logical_id] = output
    state_machines: dict[str, tuple[str, tuple[str, ...]]] = {}
    for logical_id, resource in translated.get("Resources", {}).items():
        if resource.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        properties = resource.setdefault("Properties", {})
        text = _definition_text(logical_id, properties)
        substitutions: dict[str, Any] = properties.get("DefinitionSubstitutions") or {}
        state_machines[logical_id] = (text, tuple(substitutions))
        values = {_HIDDEN_ROLE_OUTPUT_PREFIX + logical_id: properties["RoleArn"]}
        values.update({_HIDDEN_SUBSTITUTION_OUTPUT_PREFIX + logical_id + k: v for k, v in substitutions.items()})
        for output_id, value in values.items():
            machine_output: dict[str, Any] = {"Value": value}
            if "Condition" in resource:
                machine_output["Condition"] = resource["Condition"]
            outputs[output_id] = machine_output
    stream_functions = _stream_mappings(translated.get("Resources", {}))
    for logical_id in stream_functions:
        mapping = translated["Resources"][logical_id]
        stream_output: dict[str, Any] = {"Value": mapping["Properties"]["EventSourceArn"]}
        if "Condition" in mapping:
            stream_output["Condition"] = mapping["Condition"]
        outputs[_HIDDEN_STREAM_OUTPUT_PREFIX + logical_id] = stream_output
    sent = {
        **translated,
        "Resources": {k: v for k, v in translated.get("Resources", {}).items() if k not in stream_functions},
    }
    # moto reads the body with PyYAML's pure-Python loader (~1 s for this template): compact
    # JSON without the resources moto would skip anyway reads faster.
    body = json.dumps(_without_unsupported(sent), separators=(",", ":"))
    return _Translation(
        body, json.dumps(translated), code_uris, artifacts, rule_targets, stream_functions, state_machines
    )


def _definition_text(logical_id: str, properties: Mapping[str, Any]) -> str:
    """The definition as JSON text, from `Definition` (an object) or `DefinitionString` (text or SAM's `Fn::Join`)."""
    if "DefinitionS3Location" in properties:
        raise LocalStackError(f"{logical_id}: a definition in S3 (DefinitionUri) is not rendered locally; inline it")
    if "Definition" in properties:
        return json.dumps(properties["Definition"])
    definition = properties.get("DefinitionString")
    if isinstance(definition, str):
        return definition
    joined = definition.get("Fn::Join") if isinstance(definition, dict) else None
    if isinstance(joined, list) and len(joined) == 2 and all(isinstance(part, str) for part in joined[1]):
        return str(joined[0]).join(joined[1])
    raise LocalStackError(f"{logical_id}: cannot render DefinitionString {str(definition)[:80]!r} locally")


def _substitute(text: str, values: Mapping[str, str]) -> str:
    """DefinitionSubstitutions as CloudFormation applies them: each `${key}` given, nothing else."""
    return re.sub(r"\$\{([^}]*)\}", lambda match: values.get(match.group(1), match.group(0)), text)


def _stream_mappings(resources: Mapping[str, Any]) -> dict[str, str]:
    """DynamoDB stream event source mappings -> the logical ID of the function each drives."""
    found: dict[str, str] = {}
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource.get("Type") != "AWS::Lambda::EventSourceMapping" or "StartingPosition" not in properties:
            continue
        source = json.dumps(properties.get("EventSourceArn"))
        if '"StreamArn"' not in source and ":dynamodb:" not in source:
            continue  # Kinesis or Kafka: nothing here drives those
        function = properties.get("FunctionName")
        found[logical_id] = str(function["Ref"]) if isinstance(function, dict) and "Ref" in function else str(function)
    return found


def _without_unsupported(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template minus resources of types moto's CloudFormation skips (it only warns about them).

    A skipped resource that anything left still names stays, so moto resolves references as before.
    """
    try:
        from moto.cloudformation.parsing import NULL_MODELS, get_model_map
    except ImportError:  # pragma: no cover - moto is a dev dependency of this runner
        return dict(template)
    supported = set(get_model_map()) | set(NULL_MODELS)
    resources: dict[str, Any] = template.get("Resources", {})
    dropped = {
        logical_id
        for logical_id, resource in resources.items()
        if str(resource.get("Type", "")) not in supported and not str(resource.get("Type", "")).startswith("Custom::")
    }
    while True:
        rest = json.dumps({key: value for key, value in template.items() if key != "Resources"}) + json.dumps(
            {logical_id: resource for logical_id, resource in resources.items() if logical_id not in dropped}
        )
        named = {logical_id for logical_id in dropped if f'"{logical_id}"' in rest or "${" + logical_id in rest}
        if not named:
            break
        dropped -= named
    return {
        **template,
        "Resources": {logical_id: resource for logical_id, resource in resources.items() if logical_id not in dropped},
    }


def _refs_as_get_att(node: Any, attributes: Mapping[str, str]) -> Any:
    """Rewrite `Ref X` (and `${X}` in `Fn::Sub`) as `Fn::GetAtt X.<attribute>` for the given resources.

    For an EventBridge bus, `Ref` and `GetAtt Name` both give the name in CloudFormation, but
    moto resolves `Ref` to its internal object, which later fails to serialise.
    """
    if isinstance(node, list):
        return [_refs_as_get_att(item, attributes) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in attributes:
        return {"Fn::GetAtt": [node["Ref"], attributes[node["Ref"]]]}
    if set(node) == {"Fn::Sub"}:
        return {"Fn::Sub": _sub_refs_as_get_att(node["Fn::Sub"], attributes)}
    return {key: _refs_as_get_att(value, attributes) for key, value in node.items()}


def _sub_refs_as_get_att(sub: Any, attributes: Mapping[str, str]) -> Any:
    if isinstance(sub, list) and sub:
        return [_sub_refs_as_get_att(sub[0], attributes), *_refs_as_get_att(sub[1:], attributes)]
    if not isinstance(sub, str):
        return _refs_as_get_att(sub, attributes)
    for logical_id, attribute in attributes.items():
        sub = sub.replace("${" + logical_id + "}", "${" + logical_id + "." + attribute + "}")
    return sub


def _detach_lambda_targets(resources: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Drop Lambda targets from EventBridge rules; return rule -> the functions it targeted.

    moto's `PutEvents` raises NotImplementedError for a matching rule with a Lambda target
    (disabling the rule does not help: moto ignores rule state), which would break every
    `put_events` on the bus. Locally the functions are invoked in-process instead.
    """
    detached: dict[str, tuple[str, ...]] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        properties = resource.get("Properties", {})
        kept, functions = [], []
        for target in properties.get("Targets", []):
            function = _lambda_function_of(target.get("Arn"), resources)
            if function is None:
                kept.append(target)
            else:
                functions.append(function)
        if functions:
            properties["Targets"] = kept
            detached[logical_id] = tuple(functions)
    return detached


def _lambda_function_of(arn: Any, resources: Mapping[str, Any]) -> str | None:
    """The logical ID (or ARN) of the Lambda function an EventBridge target ARN points at, if any."""
    if isinstance(arn, str):
        return arn if ":lambda:" in arn else None
    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
        logical_id = str(arn["Fn::GetAtt"][0])
    elif isinstance(arn, dict) and "Ref" in arn:  # an alias or version of a function
        logical_id = str(arn["Ref"])
    else:
        return None
    resource = resources.get(logical_id, {})
    if resource.get("Type") == "AWS::Lambda::Function":
        return logical_id
    if resource.get("Type") in {"AWS::Lambda::Alias", "AWS::Lambda::Version"}:
        function_name = resource.get("Properties", {}).get("FunctionName")
        return str(function_name["Ref"]) if isinstance(function_name, dict) and "Ref" in function_name else logical_id
    return None


def _is_local(uri: object) -> bool:
    return isinstance(uri, str) and not uri.startswith("s3://")


def _zip_folder(folder: Path) -> bytes:
    """The folder's contents as a zip (what `sam build` would package, minus dependencies)."""
    if not folder.is_dir():
        raise LocalStackError(f"code folder {folder} does not exist")
    files = tuple(sorted(_code_files(folder)))
    signature = tuple((str(path), path.stat().st_mtime_ns, path.stat().st_size) for path in files)
    return _zip_files(str(folder), signature)


@functools.lru_cache(maxsize=32)
def _zip_files(folder: str, signature: tuple[tuple[str, int, int], ...]) -> bytes:
    # Keyed on every file's mtime and size, so an edited handler is re-zipped.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, _, _ in signature:
            archive.write(path, Path(path).relative_to(folder).as_posix())
    return buffer.getvalue()


def _code_files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_file() and path.suffix not in _SKIPPED_SUFFIXES and not _SKIPPED_PARTS & set(relative.parts):
            yield path


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    arguments: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":  # S3 rejects a location constraint naming us-east-1
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**arguments)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise


def _wait_for_creation(cloudformation: Any, stack_name: str) -> dict[str, Any]:
    # moto creates stacks synchronously, so this normally returns on the first look.
    deadline = time.monotonic() + _STACK_WAIT_SECONDS
    while True:
        description: dict[str, Any] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = description["StackStatus"]
        if status == "CREATE_COMPLETE":
            return description
        if status != "CREATE_IN_PROGRESS" or time.monotonic() > deadline:
            raise LocalStackError(f"stack {stack_name} ended {status}: {_failure_reasons(cloudformation, stack_name)}")
        time.sleep(0.05)


def _failure_reasons(cloudformation: Any, stack_name: str) -> str:
    events = cloudformation.describe_stack_events(StackName=stack_name).get("StackEvents", [])
    reasons = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
        for e in events
        if str(e.get("ResourceStatus", "")).endswith("FAILED")
    ]
    return "; ".join(reasons) or "no reason given"


def _stack_resources(cloudformation: Any, stack_name: str) -> Iterator[dict[str, Any]]:
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        yield from page["StackResourceSummaries"]


def _enable_time_to_live(dynamodb: Any, template: Mapping[str, Any], resources: Mapping[str, StackResource]) -> None:
    """Apply each table's TimeToLiveSpecification, which moto's CloudFormation drops."""
    for logical_id, resource in template.get("Resources", {}).items():
        specification = resource.get("Properties", {}).get("TimeToLiveSpecification")
        table = resources.get(logical_id)
        if resource.get("Type") != "AWS::DynamoDB::Table" or not specification or table is None:
            continue
        if specification.get("Enabled") is not True:  # an intrinsic here would need CloudFormation to resolve
            continue
        current = dynamodb.describe_time_to_live(TableName=table.physical_id)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}:
            continue
        dynamodb.update_time_to_live(
            TableName=table.physical_id,
            TimeToLiveSpecification={"AttributeName": specification["AttributeName"], "Enabled": True},
        )


def _disable_event_source_mappings(lambda_client: Any, resources: Any) -> None:
    """Stop moto from running mapped consumers through Docker; the local runner drives them."""
    for resource in resources:
        if resource.resource_type == "AWS::Lambda::EventSourceMapping" and resource.physical_id:
            lambda_client.update_event_source_mapping(UUID=resource.physical_id, Enabled=False)


def _as_environment_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
