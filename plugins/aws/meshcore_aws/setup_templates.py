"""CloudFormation templates for the three-account setup, with least-privilege policies.

``ACTIONS`` lists exactly the API actions the plugin calls, per role; the
templates are generated from it, and a test records every call the plugin
makes and checks it against these policies (and checks every action, resource
ARN and condition key against AWS's IAM reference data). Each role trusts the
replicator principal with its own ExternalId (a ``NoEcho`` parameter). Where AWS
allows resource scoping, it is used:

* ``MoveAccount`` only between the root, the OUs you list and OUs meshcore
  created (tagged ``<tags.prefix>managed-by=meshcore`` when it creates them);
* ``CloseAccount`` only for accounts carrying the closure guard tag;
* ``sts:AssumeRole`` only for the account access role, and never for a role in
  the management account itself;
* the IAM calls Identity Center makes on the caller's behalf only on its own
  roles (``aws-reserved/sso.amazonaws.com/``) and SAML providers (``AWSSSO_``).

A condition key that names a parameter (the guard tag key) cannot be written as
a JSON key with ``${...}`` (CloudFormation substitutes only inside ``Fn::Sub``
strings), so those statements are one policy document written as a ``Fn::Sub``
string.
"""

from __future__ import annotations

import json
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
        "organizations:DescribeOrganizationalUnit",
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
        "sso:ListAccountAssignmentCreationStatus",
        "sso:ListAccountAssignmentDeletionStatus",
        "cloudtrail:LookupEvents",
        "identitystore:GetUserId",
        "identitystore:ListUsers",
        "identitystore:GetGroupId",
        "identitystore:DescribeGroup",
        "identitystore:CreateGroup",
        "identitystore:DeleteGroup",
        "identitystore:ListGroupMemberships",
        "identitystore:CreateGroupMembership",
        "identitystore:GetGroupMembershipId",
        "identitystore:DeleteGroupMembership",
    ],
    # CreateAccountAssignment and ProvisionPermissionSet create Identity Center's own role and SAML
    # provider in the target account, with the caller's permissions:
    "identity-center-roles": [
        "iam:GetRole",
        "iam:CreateRole",
        "iam:AttachRolePolicy",
        "iam:ListAttachedRolePolicies",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:DetachRolePolicy",
    ],
    "identity-center-saml": ["iam:GetSAMLProvider", "iam:CreateSAMLProvider", "iam:UpdateSAMLProvider"],
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
#: Pattern AWS allows for an ExternalId (sts:AssumeRole ``externalIdType``).
EXTERNAL_ID_PATTERN = r"[\w+=,.@:/-]*"


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


def _role(
    name: str,
    external_id_param: str,
    statements: list[dict[str, Any]],
    substituted: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An IAM role; ``substituted`` statements become a second policy written as a ``Fn::Sub`` string."""
    policies: list[dict[str, Any]] = [
        {"PolicyName": "meshcore", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}
    ]
    if substituted:
        text = json.dumps({"Version": "2012-10-17", "Statement": substituted}, indent=1)
        policies.append({"PolicyName": "meshcore-tag-conditions", "PolicyDocument": _sub(text)})
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": name,
            "AssumeRolePolicyDocument": _trust(external_id_param),
            "Policies": policies,
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
            "MaxLength": 1224,
            "AllowedPattern": EXTERNAL_ID_PATTERN,
            "Description": "ExternalId this role requires, e.g. from 'openssl rand -hex 24' (keep it secret; "
            "give it to meshcore through the environment).",
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
                "Description": "Existing OUs accounts may be moved into and out of (landing zones, quarantine), as "
                "arn:<partition>:organizations::<management account>:ou/o-.../ou-...; OUs meshcore creates "
                "are allowed through their tag.",
            },
            "ClosureGuardTagKey": {"Type": "String", "Default": "closable"},
            "ClosureGuardTagValue": {"Type": "String", "Default": "true"},
            "ManagedByTagKey": {
                "Type": "String",
                "Default": "meshcore:managed-by",
                "Description": "<tags.prefix>managed-by: the tag meshcore puts on OUs and policies it creates.",
            },
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
                        "Sid": "AccessRoleInMemberAccounts",
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Resource": _sub("arn:${AWS::Partition}:iam::*:role/${AccountAccessRoleName}"),
                    },
                    {
                        "Sid": "NoRoleOfTheManagementAccount",
                        "Effect": "Deny",
                        "Action": "sts:AssumeRole",
                        "Resource": _sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"),
                    },
                    {
                        "Sid": "IdentityCenter",
                        "Effect": "Allow",
                        "Action": ACTIONS["identity-center"],
                        "Resource": "*",
                    },
                    {
                        "Sid": "IdentityCenterRolesInAccounts",
                        "Effect": "Allow",
                        "Action": ACTIONS["identity-center-roles"],
                        "Resource": _sub(
                            "arn:${AWS::Partition}:iam::*:role/aws-reserved/sso.amazonaws.com/*"
                        ),
                    },
                    {
                        "Sid": "IdentityCenterSamlProviders",
                        "Effect": "Allow",
                        "Action": ACTIONS["identity-center-saml"],
                        "Resource": _sub("arn:${AWS::Partition}:iam::*:saml-provider/AWSSSO_*"),
                    },
                ],
                substituted=[
                    {
                        "Sid": "CloseOnlyOptedInAccounts",
                        "Effect": "Allow",
                        "Action": "organizations:CloseAccount",
                        "Resource": "arn:${AWS::Partition}:organizations::${AWS::AccountId}:account/o-*/*",
                        "Condition": {
                            "StringEquals": {
                                "aws:ResourceTag/${ClosureGuardTagKey}": "${ClosureGuardTagValue}"
                            }
                        },
                    },
                    {
                        "Sid": "MoveIntoOusMeshcoreCreated",
                        "Effect": "Allow",
                        "Action": "organizations:MoveAccount",
                        "Resource": "arn:${AWS::Partition}:organizations::${AWS::AccountId}:ou/o-*/ou-*",
                        "Condition": {"StringEquals": {"aws:ResourceTag/${ManagedByTagKey}": "meshcore"}},
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
            "OidcIssuer": {
                "Type": "String",
                "Default": "token.actions.githubusercontent.com",
                "Description": "The provider's issuer without https:// (GitHub: token.actions.githubusercontent.com; "
                "GitLab: gitlab.com; any other OIDC issuer).",
            },
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
                    "AssumeRolePolicyDocument": _sub(
                        json.dumps(
                            {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Principal": {"Federated": "${OidcProviderArn}"},
                                        "Action": "sts:AssumeRoleWithWebIdentity",
                                        "Condition": {
                                            "StringEquals": {
                                                "${OidcIssuer}:aud": "${OidcAudience}",
                                                "${OidcIssuer}:sub": "${OidcSubject}",
                                            }
                                        },
                                    }
                                ],
                            },
                            indent=1,
                        )
                    ),
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


def policy_documents() -> list[tuple[str, str, dict[str, Any]]]:
    """(template, role, document) for every permission policy of every role the templates create,
    with ``Fn::Sub`` documents parsed (their ``${...}`` left in place)."""
    found = []
    for name, body in templates().items():
        for logical, res in body.get("Resources", {}).items():
            if res.get("Type") != "AWS::IAM::Role":
                continue
            for policy in res["Properties"].get("Policies", []):
                doc = policy["PolicyDocument"]
                if isinstance(doc, dict) and "Fn::Sub" in doc:
                    doc = json.loads(doc["Fn::Sub"])
                found.append((name, logical, doc))
    return found


def allowed_actions() -> set[str]:
    """Every action the generated policies allow (for the coverage test)."""
    found: set[str] = set()
    for _template, _role_name, doc in policy_documents():
        for st in doc["Statement"]:
            if st["Effect"] != "Allow":
                continue
            found.update(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    return found
