"""CloudFormation templates for the three-account setup, with least-privilege policies.

``ACTIONS`` lists exactly the API actions the plugin calls, per role; the
templates are generated from it, and a test records every call the plugin
makes and checks it against these policies. Each role trusts the replicator
principal with its own ExternalId (a ``NoEcho`` parameter). Where AWS allows
resource scoping, it is used: ``MoveAccount`` only into the OUs you list,
``CloseAccount`` only for accounts carrying the closure guard tag,
``sts:AssumeRole`` only for the account access role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ACTIONS: dict[str, list[str]] = {
    "management-read": [
        "organizations:DescribeOrganization",
        "organizations:ListRoots",
        "organizations:ListAccounts",
        "organizations:DescribeAccount",
        "organizations:ListAccountsForParent",
        "organizations:ListParents",
        "organizations:ListOrganizationalUnitsForParent",
        "organizations:ListTagsForResource",
        "organizations:DescribeCreateAccountStatus",
        "organizations:ListCreateAccountStatus",
        "organizations:ListPolicies",
        "organizations:DescribePolicy",
        "organizations:ListPoliciesForTarget",
        "organizations:ListTargetsForPolicy",
        "organizations:ListAWSServiceAccessForOrganization",
    ],
    "management-write": [
        "organizations:CreateAccount",
        "organizations:TagResource",
        "organizations:UntagResource",
        "organizations:CreateOrganizationalUnit",
        "organizations:EnablePolicyType",
        "organizations:CreatePolicy",
        "organizations:UpdatePolicy",
        "organizations:AttachPolicy",
        "organizations:DetachPolicy",
        "organizations:DeletePolicy",
        "account:PutAccountName",
    ],
    "identity-center": [
        "sso:ListInstances",
        "sso:ListPermissionSets",
        "sso:DescribePermissionSet",
        "sso:ListManagedPoliciesInPermissionSet",
        "sso:GetInlinePolicyForPermissionSet",
        "sso:ListTagsForResource",
        "sso:CreatePermissionSet",
        "sso:UpdatePermissionSet",
        "sso:TagResource",
        "sso:AttachManagedPolicyToPermissionSet",
        "sso:DetachManagedPolicyFromPermissionSet",
        "sso:PutInlinePolicyToPermissionSet",
        "sso:DeleteInlinePolicyFromPermissionSet",
        "sso:ListCustomerManagedPolicyReferencesInPermissionSet",
        "sso:AttachCustomerManagedPolicyReferenceToPermissionSet",
        "sso:DetachCustomerManagedPolicyReferenceFromPermissionSet",
        "sso:ListAccountsForProvisionedPermissionSet",
        "sso:ProvisionPermissionSet",
        "sso:DescribePermissionSetProvisioningStatus",
        "sso:CreateAccountAssignment",
        "sso:DeleteAccountAssignment",
        "sso:ListAccountAssignmentsForPrincipal",
        "sso:DescribeAccountAssignmentCreationStatus",
        "sso:DescribeAccountAssignmentDeletionStatus",
        "identitystore:GetUserId",
        "identitystore:GetGroupId",
        "identitystore:CreateGroup",
        "identitystore:DeleteGroup",
        "identitystore:ListGroupMemberships",
        "identitystore:CreateGroupMembership",
        "identitystore:GetGroupMembershipId",
        "identitystore:DeleteGroupMembership",
        # CreateAccountAssignment provisions a SAML provider and role in the target account:
        "iam:GetSAMLProvider",
        "iam:CreateSAMLProvider",
        "iam:GetRole",
        "iam:CreateRole",
        "iam:AttachRolePolicy",
        "iam:ListAttachedRolePolicies",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:DetachRolePolicy",
        "iam:UpdateSAMLProvider",
    ],
    "cost": ["ce:GetCostAndUsage"],
    "automation": [
        "cloudformation:DescribeStackSet",
        "cloudformation:ListStackSets",
        "cloudformation:CreateStackSet",
        "cloudformation:UpdateStackSet",
        "cloudformation:ListStackInstances",
        "cloudformation:CreateStackInstances",
        "cloudformation:UpdateStackInstances",
        "cloudformation:DeleteStackInstances",
        "cloudformation:DescribeStackSetOperation",
        "cloudformation:ListStackSetOperationResults",
        "lambda:InvokeFunction",
    ],
}
#: Calls that need no IAM permission, or are made inside member accounts as their access role.
NOT_IN_OUR_ROLES = {
    "sts:GetCallerIdentity",
    "iam:ListAccountAliases",
    "iam:CreateAccountAlias",
    "iam:DeleteAccountAlias",
}


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _trust(external_id_param: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": {"Ref": "ReplicatorPrincipalArn"}},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": {"Ref": external_id_param}}},
            }
        ],
    }


def _role(name: str, external_id_param: str, statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": name,
            "AssumeRolePolicyDocument": _trust(external_id_param),
            "Policies": [
                {
                    "PolicyName": "meshcore",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                }
            ],
        },
    }


def _params(*external_ids: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "ReplicatorPrincipalArn": {
            "Type": "String",
            "Description": "The replicator role or user in the meshcloud account.",
        }
    }
    for p in external_ids:
        params[p] = {
            "Type": "String",
            "NoEcho": True,
            "MinLength": 16,
            "Description": "ExternalId this role requires (keep it secret; give it to meshcore via env).",
        }
    return params


def management_template() -> dict[str, Any]:
    read = ACTIONS["management-read"]
    write = ACTIONS["management-write"]
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "meshcore: MeshfedServiceRole and MeshCostExplorerServiceRole in the management account.",
        "Parameters": {
            **_params("ServiceRoleExternalId", "CostExplorerExternalId"),
            "WorkloadOuArns": {
                "Type": "CommaDelimitedList",
                "Description": "OUs (arn:aws:organizations::<mgmt>:ou/o-.../ou-...) accounts may be moved into.",
            },
            "ClosureGuardTagKey": {"Type": "String", "Default": "closable"},
            "ClosureGuardTagValue": {"Type": "String", "Default": "true"},
            "AccountAccessRoleName": {"Type": "String", "Default": "OrganizationAccountAccessRole"},
        },
        "Resources": {
            "MeshfedServiceRole": _role(
                "MeshfedServiceRole",
                "ServiceRoleExternalId",
                [
                    {"Sid": "Read", "Effect": "Allow", "Action": read, "Resource": "*"},
                    {"Sid": "Write", "Effect": "Allow", "Action": write, "Resource": "*"},
                    # MoveAccount is authorized on the account, the source and the destination parent:
                    # only the root and the listed OUs (landing zones, quarantine) can be either.
                    {
                        "Sid": "MoveBetweenLandingZoneOus",
                        "Effect": "Allow",
                        "Action": "organizations:MoveAccount",
                        "Resource": {"Ref": "WorkloadOuArns"},
                    },
                    {
                        "Sid": "MoveAccountsFromTheRoot",
                        "Effect": "Allow",
                        "Action": "organizations:MoveAccount",
                        "Resource": [
                            _sub("arn:${AWS::Partition}:organizations::${AWS::AccountId}:account/o-*/*"),
                            _sub("arn:${AWS::Partition}:organizations::${AWS::AccountId}:root/o-*/r-*"),
                        ],
                    },
                    {
                        "Sid": "CloseOnlyOptedInAccounts",
                        "Effect": "Allow",
                        "Action": "organizations:CloseAccount",
                        "Resource": "*",
                        "Condition": {
                            "StringEquals": {
                                "aws:ResourceTag/${ClosureGuardTagKey}": {"Ref": "ClosureGuardTagValue"}
                            }
                        },
                    },
                    {
                        "Sid": "AccessRoleInMemberAccounts",
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Resource": _sub("arn:${AWS::Partition}:iam::*:role/${AccountAccessRoleName}"),
                    },
                    {
                        "Sid": "IdentityCenter",
                        "Effect": "Allow",
                        "Action": ACTIONS["identity-center"],
                        "Resource": "*",
                    },
                ],
            ),
            "MeshCostExplorerServiceRole": _role(
                "MeshCostExplorerServiceRole",
                "CostExplorerExternalId",
                [{"Sid": "CostExplorer", "Effect": "Allow", "Action": ACTIONS["cost"], "Resource": "*"}],
            ),
        },
        "Outputs": {
            "ServiceRoleArn": {"Value": {"Fn::GetAtt": ["MeshfedServiceRole", "Arn"]}},
            "CostExplorerRoleArn": {"Value": {"Fn::GetAtt": ["MeshCostExplorerServiceRole", "Arn"]}},
        },
    }


def automation_template() -> dict[str, Any]:
    admin = Path(__file__).parent / "templates" / "stackset-administration-role.yaml"
    admin_resources = yaml.load(admin.read_text(), Loader=_Loader)["Resources"]
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "meshcore: MeshfedAutomationRole and the StackSet administration role in the automation account.",
        "Parameters": {
            **_params("AutomationRoleExternalId"),
            "ExecutionRoleName": {"Type": "String", "Default": "AWSCloudFormationStackSetExecutionRole"},
        },
        "Resources": {
            "MeshfedAutomationRole": _role(
                "MeshfedAutomationRole",
                "AutomationRoleExternalId",
                [
                    {"Sid": "StackSets", "Effect": "Allow", "Action": ACTIONS["automation"], "Resource": "*"},
                    {
                        "Sid": "PassTheAdministrationRole",
                        "Effect": "Allow",
                        "Action": "iam:PassRole",
                        "Resource": {"Fn::GetAtt": ["AdministrationRole", "Arn"]},
                    },
                ],
            ),
            **admin_resources,
        },
        "Outputs": {"AutomationRoleArn": {"Value": {"Fn::GetAtt": ["MeshfedAutomationRole", "Arn"]}}},
    }


def meshcloud_template() -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "meshcore: the replicator principal in the meshcloud account (an OIDC role; no long-lived keys).",
        "Parameters": {
            "OidcProviderArn": {"Type": "String", "Description": "IAM OIDC provider of your CI or runner."},
            "OidcAudience": {"Type": "String", "Default": "sts.amazonaws.com"},
            "OidcSubject": {
                "Type": "String",
                "Description": "The sub claim allowed, e.g. repo:acme/platform:ref:refs/heads/main",
            },
            "ManagementAccountId": {"Type": "String", "AllowedPattern": "^[0-9]{12}$"},
            "AutomationAccountId": {"Type": "String", "AllowedPattern": "^[0-9]{12}$"},
        },
        "Resources": {
            "ReplicatorRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": "MeshcoreReplicator",
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Federated": {"Ref": "OidcProviderArn"}},
                                "Action": "sts:AssumeRoleWithWebIdentity",
                                "Condition": {
                                    "StringEquals": {
                                        "token.actions.githubusercontent.com:aud": {"Ref": "OidcAudience"},
                                        "token.actions.githubusercontent.com:sub": {"Ref": "OidcSubject"},
                                    }
                                },
                            }
                        ],
                    },
                    "Policies": [
                        {
                            "PolicyName": "assume-meshcore-roles",
                            "PolicyDocument": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Action": "sts:AssumeRole",
                                        "Resource": [
                                            _sub(
                                                "arn:${AWS::Partition}:iam::${ManagementAccountId}:role/MeshfedServiceRole"
                                            ),
                                            _sub(
                                                "arn:${AWS::Partition}:iam::${ManagementAccountId}:role/MeshCostExplorerServiceRole"
                                            ),
                                            _sub(
                                                "arn:${AWS::Partition}:iam::${AutomationAccountId}:role/MeshfedAutomationRole"
                                            ),
                                        ],
                                    }
                                ],
                            },
                        }
                    ],
                },
            }
        },
        "Outputs": {"ReplicatorRoleArn": {"Value": {"Fn::GetAtt": ["ReplicatorRole", "Arn"]}}},
    }


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation YAML short forms (!Sub, !GetAtt, ...) into their long forms."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _intrinsic)


def templates() -> dict[str, dict[str, Any]]:
    execution = Path(__file__).parent / "templates" / "stackset-execution-role.yaml"
    return {
        "meshcloud-account.yaml": meshcloud_template(),
        "management-account.yaml": management_template(),
        "automation-account.yaml": automation_template(),
        "member-account-stackset-execution-role.yaml": yaml.load(execution.read_text(), Loader=_Loader),
    }


def write_templates(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, body in templates().items():
        path = directory / name
        path.write_text(yaml.safe_dump(body, sort_keys=False, width=120))
        out.append(path)
    return out


def allowed_actions() -> set[str]:
    """Every action the generated policies allow (for the coverage test)."""
    found: set[str] = set()
    for body in templates().values():
        for res in body.get("Resources", {}).values():
            if res.get("Type") != "AWS::IAM::Role":
                continue
            for policy in res["Properties"].get("Policies", []):
                for st in policy["PolicyDocument"]["Statement"]:
                    actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                    found.update(actions)
    return found
