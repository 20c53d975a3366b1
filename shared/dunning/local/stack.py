"""Deploy the real `template.yaml` as a CloudFormation stack inside moto.

What `sam deploy` does, minus Docker and AWS: the SAM template is transformed with
aws-sam-translator, local code folders become zips in a moto S3 bucket, and moto's
CloudFormation creates the stack. Works with moto in-process (`mock_aws()`) and over HTTP
(`ThreadedMotoServer` with `AWS_ENDPOINT_URL`): only plain boto3 clients are used.

Workarounds applied to the translated template, for the local run only (template.yaml is
never changed):
  * moto's `AWS::Events::EventBus` has no physical ID (`!Ref` of it breaks stack creation and
    its stack resource reports an empty ID), so a hidden output per bus reads `Fn::GetAtt Name`
    and `physical_id()` answers with it.
Moto behaviour accepted as is: `AWS::Scheduler::Schedule`, `AWS::S3::BucketPolicy` and
`AWS::Logs::SubscriptionFilter` are skipped with a warning; layers are not attached to the
functions; event source mappings are created but disabled here, because moto would otherwise
run the mapped function through Docker as soon as a message arrives (`drain_queue` drives
the consumer in-process instead).
"""

from __future__ import annotations

import copy
import functools
import io
import json
import os
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

if TYPE_CHECKING:
    from mypy_boto3_lambda.type_defs import FunctionConfigurationResponseTypeDef

REPO_ROOT = Path(__file__).resolve().parents[3]
ARTIFACT_BUCKET = "dunning-local-artifacts"
DEFAULT_REGION = "us-east-1"
# Stack outputs this module adds for itself; hidden from `LocalStack.outputs`.
_HIDDEN_OUTPUT_PREFIX = "LocalRunnerPhysicalId"
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
class LocalStack:
    """A stack created from template.yaml in moto, and what the template says about it."""

    name: str
    region: str
    root: Path  # the template's folder; CodeUri paths are relative to it
    outputs: Mapping[str, str]
    resources: Mapping[str, StackResource]
    template: Mapping[str, Any] = field(repr=False)  # the translated template as deployed
    code_uris: Mapping[str, str] = field(repr=False)  # function logical ID -> local CodeUri

    @property
    def skipped(self) -> list[str]:
        """Logical IDs of translated resources moto did not create (types it does not support)."""
        return [logical_id for logical_id in self.template["Resources"] if logical_id not in self.resources]

    def physical_id(self, logical_id: str) -> str:
        """The resource's physical ID (name, URL or ARN: what `!Ref` gives in CloudFormation)."""
        return self._resource(logical_id).physical_id

    def function_configuration(self, logical_id: str) -> FunctionConfigurationResponseTypeDef:
        """Moto's Lambda configuration of one of the stack's functions."""
        resource = self._resource(logical_id, "AWS::Lambda::Function")
        return self._client("lambda").get_function_configuration(FunctionName=resource.physical_id)

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The environment variables the stack gave the function, as Lambda would see them."""
        variables = self.function_configuration(logical_id).get("Environment", {}).get("Variables", {})
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
        attributes = self._client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url(logical_id), AttributeNames=["QueueArn"]
        )["Attributes"]
        return attributes["QueueArn"]

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

    # boto3's overloads type each service's client; the generic helper stays untyped on purpose.
    def _client(self, service: Any) -> Any:
        return boto3.session.Session(region_name=self.region).client(service)


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
    body, code_uris, artifacts = _translate(template_file.read_text(encoding="utf-8"), _frozen(parameters))
    session = boto3.session.Session(region_name=region)

    s3 = session.client("s3")
    _create_bucket(s3, ARTIFACT_BUCKET, region)
    for key, folder in artifacts.items():
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=_zip_folder(template_file.parent / folder))

    cloudformation = session.client("cloudformation")
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

    raw_outputs = {o["OutputKey"]: str(o.get("OutputValue", "")) for o in description.get("Outputs", [])}
    resources: dict[str, StackResource] = {}
    for summary in _stack_resources(cloudformation, stack_name):
        logical_id = summary.get("LogicalResourceId", "")
        if not logical_id:  # moto lists each resource type it skipped as a nameless entry
            continue
        physical_id = summary.get("PhysicalResourceId", "") or raw_outputs.get(_HIDDEN_OUTPUT_PREFIX + logical_id, "")
        resources[logical_id] = StackResource(logical_id, summary["ResourceType"], physical_id)

    _disable_event_source_mappings(session.client("lambda"), resources.values())
    return LocalStack(
        name=stack_name,
        region=region,
        root=template_file.parent,
        outputs={k: v for k, v in raw_outputs.items() if not k.startswith(_HIDDEN_OUTPUT_PREFIX)},
        resources=resources,
        template=json.loads(body),
        code_uris=dict(code_uris),  # the cached translation stays untouched
    )


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
        botocore_stubber = None
    if botocore_stubber is None or not botocore_stubber.enabled:
        raise LocalStackError("deploy_stack needs moto: call it inside moto.mock_aws() or set AWS_ENDPOINT_URL")


def _frozen(parameters: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in parameters.items()))


class _NoManagedPolicies:
    """The translator asks for AWS managed policy ARNs only for policy templates by name."""

    def load(self) -> dict[str, str]:
        return {}


@functools.lru_cache(maxsize=8)
def _translate(
    template_text: str, parameters: tuple[tuple[str, str], ...]
) -> tuple[str, dict[str, str], dict[str, str]]:
    """SAM template text -> (CloudFormation JSON, function CodeUri folders, S3 key -> folder).

    Cached per template text and parameters: the transform costs more than moto's create.
    """
    sam_template: dict[str, Any] = yaml_parse(template_text)
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

    translated: dict[str, Any] = transform(copy.deepcopy(sam_template), dict(parameters), _NoManagedPolicies())
    outputs = translated.setdefault("Outputs", {})
    for logical_id, resource in translated.get("Resources", {}).items():
        attribute = _NAME_ATTRIBUTE_OF_UNNAMED.get(resource.get("Type", ""))
        if attribute is not None:
            output: dict[str, Any] = {"Value": {"Fn::GetAtt": [logical_id, attribute]}}
            if "Condition" in resource:
                output["Condition"] = resource["Condition"]
            outputs[_HIDDEN_OUTPUT_PREFIX + logical_id] = output
    return json.dumps(translated), code_uris, artifacts


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


def _disable_event_source_mappings(lambda_client: Any, resources: Any) -> None:
    """Stop moto from running mapped consumers through Docker; the local runner drives them."""
    for resource in resources:
        if resource.resource_type == "AWS::Lambda::EventSourceMapping" and resource.physical_id:
            lambda_client.update_event_source_mapping(UUID=resource.physical_id, Enabled=False)


def _as_environment_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
