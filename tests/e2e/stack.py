"""A deployed stack as CloudFormation describes it (the e2e tier's view of the names template.yaml makes)."""

from __future__ import annotations

from dataclasses import dataclass

import boto3

from dunning.models.policy import Policy, load_policy_file, parse_policy

USABLE_STATUSES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")


@dataclass(frozen=True)
class DeployedStack:
    """What CloudFormation says about the stack: logical id -> physical id, outputs, parameters."""

    name: str
    region: str
    resources: dict[str, str]
    outputs: dict[str, str]
    parameters: dict[str, str]

    def physical_id(self, logical_id: str) -> str:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise KeyError(f"stack {self.name} has no resource {logical_id}") from None

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            raise KeyError(f"stack {self.name} has no output {key}: deployed from an older template?") from None

    def policy(self) -> Policy:
        """The policy the functions run: the SSM parameter the stack names, else the bundled one."""
        parameter = self.parameters.get("PolicyParameterName", "")
        if not parameter:
            return load_policy_file()
        text = boto3.client("ssm", region_name=self.region).get_parameter(Name=parameter)["Parameter"]["Value"]
        return parse_policy(text, f"ssm:{parameter}")


def describe_stack(name: str, region: str) -> tuple[str, DeployedStack]:
    """(stack status, the stack): outputs and parameters from DescribeStacks, physical ids from ListStackResources."""
    cloudformation = boto3.client("cloudformation", region_name=region)
    (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]  # a missing stack raises, naming it
    resources = {
        summary["LogicalResourceId"]: summary["PhysicalResourceId"]
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=name)
        for summary in page["StackResourceSummaries"]
        if "PhysicalResourceId" in summary
    }
    return stack["StackStatus"], DeployedStack(
        name=name,
        region=region,
        resources=resources,
        outputs={output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])},
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
    )
