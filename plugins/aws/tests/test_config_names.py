"""Names in the AWS platform config follow AWS's own patterns (botocore's service models).

AWS's ``[\\w+=,.@-]`` is a Java regular expression, where ``\\w`` is ASCII: a role, session,
permission set or customer managed policy name with a letter such as "é" is refused by AWS,
so meshcore refuses it at validation. SCP names are meshcore's own choice (AWS allows any
characters there) and keep letters of any script.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from meshcore_aws.config import CustomerManagedPolicy, PermissionSetConfig, RoleRef, ScpConfig

ROLE = "arn:aws:iam::123456789012:role/MeshfedServiceRole"
VIEW_ONLY = "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"
SCP = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}


@pytest.mark.parametrize(
    ("build", "accepted"),
    [
        (lambda: PermissionSetConfig(name="Dev-Ops_1+=,.@"), True),
        (lambda: PermissionSetConfig(name="Développeur"), False),
        (lambda: PermissionSetConfig(name="x" * 33), False),
        (lambda: RoleRef(role_arn=ROLE, external_id="ext-id_1", session_name="meshcore-ci"), True),
        (lambda: RoleRef(role_arn=ROLE, external_id="ext-id_1", session_name="méshcore"), False),
        (lambda: RoleRef(role_arn=ROLE, external_id="ëxt-id-1"), False),
        (lambda: RoleRef(role_arn="arn:aws:iam::123456789012:role/Rölle", external_id="ext-id_1"), False),
        (
            lambda: RoleRef(role_arn="arn:aws:iam::123456789012:role/team#1/Replicator", external_id="e-1"),
            True,
        ),
        (
            lambda: RoleRef(role_arn="arn:aws-us-gov:iam::123456789012:role/Replicator", external_id="e-1"),
            True,
        ),
        (lambda: RoleRef(role_arn="arn:aws:iam::123456789012:role/" + "r" * 65, external_id="e-1"), False),
        (lambda: RoleRef(role_arn=f"arn:aws:iam::123456789012:role/{'p' * 510}/R", external_id="e-1"), True),
        (lambda: RoleRef(role_arn=f"arn:aws:iam::123456789012:role/{'p' * 511}/R", external_id="e-1"), False),
        (lambda: PermissionSetConfig(name="ps", managed_policies=(VIEW_ONLY,)), True),
        (
            lambda: PermissionSetConfig(
                name="ps", managed_policies=(VIEW_ONLY.replace("job-function/", "/"),)
            ),
            False,
        ),
        (lambda: PermissionSetConfig(name="ps", managed_policies=(VIEW_ONLY + "/",)), False),
        (lambda: CustomerManagedPolicy(name="BoundaryPolicy"), True),
        (lambda: CustomerManagedPolicy(name="Grenzrichtlinie-für-Prod"), False),
        (lambda: CustomerManagedPolicy(name="p", path="/team/a.b/"), True),
        (lambda: CustomerManagedPolicy(name="p", path="/team#1/"), False),
        (lambda: CustomerManagedPolicy(name="p", path="/team"), False),
        (lambda: ScpConfig(name="Richtlinie-für-Prod", document=SCP), True),
        (lambda: ScpConfig(name="deny root", document=SCP), False),
    ],
)
def test_names_follow_aws_patterns(build, accepted):
    if accepted:
        build()
    else:
        with pytest.raises(ValidationError):
            build()
