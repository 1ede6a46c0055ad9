"""Config models of the ``aws`` platform type and its landing zones.

No credentials live here: the replicator's own credentials come from the
standard boto3 chain (environment, profile, web identity/OIDC); the config
names only the roles it assumes and their ExternalIds (write those as
``${ENV_VAR}``; they are redacted from all output).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from meshcore import is_secret
from meshcore_aws import policies
from meshcore_aws.naming import pattern_problems

#: The characters of AWS's ``[\w+=,.@-]`` in IAM, STS, Organizations role and Identity Center names. AWS's
#: service-side regular expressions are Java's, where ``\w`` is ASCII; Python's would also accept
#: letters such as "é", which AWS rejects.
NAME_CHARS = r"A-Za-z0-9_+=,.@\-"
SCP_NAME = re.compile(r"[\w+=,.@-]+")
#: A role's ARN: an IAM path (``/`` or ``/any/printable/ASCII/``, up to 512: iam's pathType) and an ASCII role name.
ROLE_ARN = re.compile(
    rf"^arn:aws(-[a-z]{{1,5}}){{0,3}}:iam::\d{{12}}:role/([\x21-\x7e]{{0,510}}/)?[{NAME_CHARS}]{{1,64}}$"
)
#: sts:AssumeRoleRequest.ExternalId: 2-1224 characters of this set.
EXTERNAL_ID = re.compile(rf"^[{NAME_CHARS}:/]{{2,1224}}$")
REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"
OU_ID = re.compile(r"^(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})$")
OU_PATH = re.compile(r"^(/[^/]{1,128})+/?$|^/$")


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RoleRef(Model):
    """A role the replicator assumes, with its own ExternalId."""

    role_arn: str = Field(description="ARN of the role to assume.")
    external_id: SecretStr | None = Field(
        default=None, description="ExternalId the role's trust policy requires."
    )
    session_name: str = Field(default="meshcore", pattern=rf"^[{NAME_CHARS}]{{2,64}}$")

    @field_validator("role_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        if not ROLE_ARN.fullmatch(v):
            raise ValueError(f"{v!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/Name)")
        return v

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not EXTERNAL_ID.fullmatch(v.get_secret_value()):
            raise ValueError(
                "the ExternalId must be 2-1224 characters of ASCII letters, digits and _+=,.@:/- "
                "(AWS rejects others); generate one with e.g. 'openssl rand -hex 24'"
            )
        return v

    @property
    def partition(self) -> str:
        return self.role_arn.split(":")[1]

    @property
    def account_id(self) -> str:
        return self.role_arn.split(":")[4]


class TagConfig(Model):
    """Which tags meshcore owns on accounts: only keys under ``prefix`` are ever added, changed or removed."""

    prefix: str = Field(
        default="meshcore:", min_length=1, max_length=64, description="Namespace of owned tag keys."
    )
    identity_tags: bool = Field(
        default=True, description="Tag workspace, project and platform ids under the prefix."
    )
    static: dict[str, str] = Field(
        default_factory=dict, description="Extra tags (key under the prefix -> value pattern)."
    )

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if v.lower().startswith("aws:"):
            raise ValueError("the 'aws:' prefix is reserved by AWS")
        return v


class ClosureGuard(Model):
    """Only accounts carrying this tag may ever be closed."""

    key: str = Field(min_length=1, max_length=128)
    value: str = Field(default="true", max_length=256)
    tag_created_accounts: bool = Field(
        default=True,
        description="Put the tag on accounts meshcore creates (imported accounts never get it automatically).",
    )


class DeletionConfig(Model):
    """What happens to an account when its tenant is deleted."""

    mode: Literal["close", "quarantine", "leave"] = Field(
        default="close", description="close the account, move it to the quarantine OU, or leave it untouched."
    )
    quarantine_ou: str | None = Field(default=None, description="OU id or path for mode 'quarantine'.")
    guard: ClosureGuard | None = Field(default=None, description="Refuse to close accounts without this tag.")
    max_closures_per_30_days: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Close at most this many accounts in any rolling 30 days; default: AWS's quota, the "
        "greater of 250 or 20 % of the member accounts, at most 1,000.",
    )

    @model_validator(mode="after")
    def _quarantine(self) -> DeletionConfig:
        if self.mode == "quarantine" and not self.quarantine_ou:
            raise ValueError("mode 'quarantine' needs 'quarantine_ou'")
        if self.quarantine_ou and not (
            OU_ID.fullmatch(self.quarantine_ou) or OU_PATH.fullmatch(self.quarantine_ou)
        ):
            raise ValueError(
                f"quarantine_ou {self.quarantine_ou!r} is neither an OU id nor a path like /Quarantine"
            )
        return self


PERMISSION_SET_ARN = re.compile(r"^arn:aws[a-z-]*:sso:::permissionSet/ssoins-[0-9a-f]{16}/ps-[0-9a-f]{16}$")
#: sso-admin:AttachManagedPolicyToPermissionSet takes AWS managed policies only.
MANAGED_POLICY_ARN = re.compile(
    r"^arn:aws(-[a-z]{1,5}){0,3}:iam::aws:policy(/[A-Za-z0-9.,+@=_-]+)*/[A-Za-z0-9.,+=@_-]+$"
)
#: sso-admin:PermissionSetDescription allows Latin-1 only.
LATIN1 = re.compile(r"^[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*$")


class CustomerManagedPolicy(Model):
    """A customer managed policy, referenced by name and path; it must exist in every target account."""

    name: str = Field(pattern=rf"^[{NAME_CHARS}]{{1,128}}$")
    #: sso-admin:CustomerManagedPolicyReference.Path
    path: str = Field(default="/", max_length=512, pattern=r"^(/[A-Za-z0-9.,+@=_-]+)*/$")


class PermissionSetConfig(Model):
    """A permission set meshcore manages in Identity Center."""

    name: str = Field(pattern=rf"^[{NAME_CHARS}]{{1,32}}$")
    description: str = Field(default="", max_length=700, pattern=LATIN1.pattern)
    managed_policies: tuple[str, ...] = Field(
        default=(), description="ARNs of AWS managed policies (arn:aws:iam::aws:policy/...)."
    )
    customer_managed_policies: tuple[CustomerManagedPolicy, ...] = Field(
        default=(),
        description="Customer managed policies by name and path; deploy them to the accounts first (e.g. in a baseline).",
    )
    inline_policy: dict[str, Any] | None = Field(default=None, description="An IAM policy document.")
    session_duration: str = Field(
        default="PT8H", pattern=r"^PT([1-9]|1[0-2])H$", description="ISO 8601, PT1H to PT12H."
    )

    @field_validator("managed_policies")
    @classmethod
    def _arns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for arn in v:
            if not MANAGED_POLICY_ARN.fullmatch(arn):
                raise ValueError(
                    f"{arn!r} is not an AWS managed policy ARN (arn:aws:iam::aws:policy/Name); reference a "
                    "customer managed policy under customer_managed_policies by name and path"
                )
        return v


def _mapping_targets(value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    for role, targets in value.items():
        if not targets:
            raise ValueError(f"role {role!r} maps to no permission set")
        for target in targets:
            if target.startswith("arn:") and not PERMISSION_SET_ARN.fullmatch(target):
                raise ValueError(
                    f"{target!r} is not a permission set ARN (arn:aws:sso:::permissionSet/ssoins-.../ps-...)"
                )
    return value


class IdentityCenterConfig(Model):
    """IAM Identity Center: project role bindings become groups, memberships and account assignments."""

    region: str = Field(
        pattern=REGION,
        description="The Identity Center instance's home region (sso-admin and identitystore live only there).",
    )
    instance_arn: str | None = Field(
        default=None, description="Discovered when the organization has exactly one instance."
    )
    identity_store_id: str | None = Field(default=None, description="Discovered with the instance.")
    group_prefix: str = Field(
        default="meshcore-",
        min_length=1,
        max_length=64,
        description="Groups whose name starts with this are meshcore's.",
    )
    group_name_pattern: str = Field(
        default="meshcore-{workspace}-{project}-{role}",
        description="Placeholders: workspace, project, role, platform.",
    )
    sign_in_url: str | None = Field(default=None, description="The AWS access portal URL shown to users.")
    match_users_by: Literal["user_name", "email"] = Field(
        default="user_name",
        description="user_name: users[].id is the Identity Center UserName; email: users[].email.",
    )
    permission_sets: tuple[PermissionSetConfig, ...] = ()
    role_mappings: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Project role -> permission sets: managed names or existing permission set ARNs.",
    )
    keep_groups: bool = Field(default=False, description="Keep (empty) groups when their tenant is deleted.")
    max_in_flight: int = Field(
        default=8, ge=1, le=20, description="Identity Center operations in flight across tenants."
    )

    managed_policies_file: str | None = Field(
        default=None,
        description="A managed-policy snapshot from 'meshcore aws managed-policies refresh' (relative to the "
        "config file); default: the snapshot shipped with the plugin.",
    )

    @field_validator("role_mappings")
    @classmethod
    def _targets(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return _mapping_targets(v)

    @field_validator("managed_policies_file")
    @classmethod
    def _snapshot(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        from meshcore_aws import managed_policies

        path = Path(v) if Path(v).is_absolute() else Path((info.context or {}).get("config_dir", ".")) / v
        try:
            managed_policies.load(str(path))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the managed-policy snapshot {str(path)!r}: {exc}") from None
        return str(path)

    @model_validator(mode="after")
    def _pattern(self) -> IdentityCenterConfig:
        if "{role}" not in self.group_name_pattern:
            raise ValueError("group_name_pattern must contain {role}")
        if not self.group_name_pattern.startswith(self.group_prefix):
            raise ValueError(
                f"group_name_pattern must start with group_prefix {self.group_prefix!r}, which marks meshcore's groups"
            )
        for match in re.finditer(r"\{([a-z_]+)\}", self.group_name_pattern):
            if match.group(1) not in {"workspace", "project", "role", "platform"}:
                raise ValueError(f"group_name_pattern: unknown placeholder {{{match.group(1)}}}")
        names = [p.name for p in self.permission_sets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate permission set name(s): {', '.join(dupes)}")
        return self


class CostConfig(Model):
    """How costs are read from Cost Explorer."""

    metric: Literal[
        "AmortizedCost", "NetAmortizedCost", "UnblendedCost", "NetUnblendedCost", "BlendedCost"
    ] = "AmortizedCost"
    group_by: Literal["SERVICE", "LEGAL_ENTITY_NAME", "USAGE_TYPE", "REGION"] | None = Field(
        default="SERVICE",
        description="Second dimension after LINKED_ACCOUNT (product or seller); null for none.",
    )
    exclude_tax: bool = Field(default=False, description="Leave out RECORD_TYPE Tax.")
    granularity: Literal["MONTHLY", "DAILY"] = "MONTHLY"
    request_price_usd: Decimal = Field(
        default=Decimal("0.01"), ge=0, description="What AWS charges per request."
    )


class BaselineSettings(Model):
    """How StackSet operations run (CloudFormation OperationPreferences)."""

    max_concurrent_percentage: int = Field(
        default=50, ge=1, le=100, description="Share of target accounts deployed at once, per region."
    )
    failure_tolerance_percentage: int = Field(
        default=0, ge=0, le=100, description="Share of accounts that may fail before AWS stops the operation."
    )
    create_execution_role: bool = Field(
        default=True,
        description="Create the StackSet execution role in each account that gets a baseline (through the "
        "account access role) before its first instance; off when something else deploys it.",
    )


class AwsConfig(Model):
    """``platforms[].config`` for ``type: aws``."""

    region: str = Field(default="us-east-1", pattern=REGION)
    management: RoleRef | Literal["base"] = Field(
        description="MeshfedServiceRole in the management account (Organizations, Identity Center), or "
        "'base' to act with the replicator's own credentials (e.g. the local sandbox).",
    )
    automation: RoleRef | Literal["base"] | None = Field(
        default=None,
        description="MeshfedAutomationRole in the automation account (StackSets, Lambda), or 'base'; "
        "required when a landing zone has baselines or a Lambda hook.",
    )
    cost_explorer: RoleRef | Literal["base"] | None = Field(
        default=None,
        description="MeshCostExplorerServiceRole in the management account, or 'base'; required to collect costs.",
    )
    account_access_role: str = Field(
        default="OrganizationAccountAccessRole",
        pattern=rf"^[{NAME_CHARS}]{{1,64}}$",
        description="Role created in each new account and assumed from the management role.",
    )
    account_name_pattern: str = Field(default="{workspace}-{project}", min_length=1)
    account_email_pattern: str = Field(
        description="Must produce an address unique across all of AWS, e.g. aws+{workspace}-{project}@example.com.",
    )
    account_alias_pattern: str | None = Field(
        default="{workspace}-{project}", description="None: do not manage aliases."
    )
    alias_mode: Literal["once", "enforce"] = Field(
        default="once",
        description="once: set the alias when none is set; enforce: repair it whenever it differs.",
    )
    tags: TagConfig = TagConfig()
    deletion: DeletionConfig = DeletionConfig()
    identity_center: IdentityCenterConfig | None = Field(
        default=None, description="Access through IAM Identity Center."
    )
    costs: CostConfig = Field(
        default_factory=CostConfig, description="How costs are read from Cost Explorer."
    )
    org_write_concurrency: int = Field(default=4, ge=1, le=20, description="Organizations writes in flight.")
    page_size: int = Field(default=20, ge=1, le=20, description="MaxResults for Organizations list calls.")
    poll_interval_seconds: float = Field(default=5.0, ge=0, le=300)
    change_feed_delay_minutes: float = Field(
        default=15,
        ge=0,
        le=24 * 60,
        description="Incremental drift checks: CloudTrail's event history is read from this long before "
        "where the last run left off (AWS delivers events within about 5 minutes, not guaranteed).",
    )
    max_account_creations_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Account creations in progress at once (never exceeded). AWS refuses more than an "
        "unpublished number (ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED); unset, the limit is learnt from its "
        "refusals. Tenants past it wait for a creation to end.",
    )
    create_wait_seconds: float = Field(
        default=600.0,
        ge=0,
        description="How long one run waits for CreateAccount before reporting it in progress.",
    )
    scp_name_prefix: str = Field(
        default="meshcore-", max_length=27, description="Names of SCPs meshcore owns start with this."
    )
    stackset_name_prefix: str = Field(
        default="meshcore-", max_length=27, description="Names of StackSets meshcore owns start with this."
    )
    stackset_administration_role_arn: str | None = Field(
        default=None,
        description="StackSet administration role in the automation account; default "
        "arn:aws:iam::<automation account>:role/AWSCloudFormationStackSetAdministrationRole.",
    )
    stackset_execution_role_name: str = Field(
        default="AWSCloudFormationStackSetExecutionRole", pattern=rf"^[{NAME_CHARS}]{{1,64}}$"
    )
    baselines: BaselineSettings = Field(
        default_factory=BaselineSettings, description="How StackSet operations run."
    )
    stackset_wait_seconds: float = Field(
        default=900.0, ge=0, description="How long one run waits for a StackSet operation."
    )
    new_account_retry_seconds: float = Field(
        default=300.0, ge=0, description="How long to retry calls a freshly created account still refuses."
    )
    max_attempts: int = Field(
        default=8,
        ge=1,
        le=20,
        description="Attempts per AWS call (botocore retries throttling and transient errors).",
    )
    retry_mode: Literal["standard", "adaptive"] = Field(
        default="standard", description="botocore retry mode; adaptive also rate-limits each client."
    )

    @property
    def partition(self) -> str:
        """aws, aws-cn or aws-us-gov: from the management role ARN."""
        return self.management.partition if isinstance(self.management, RoleRef) else "aws"

    def role(self, scope: str) -> RoleRef | None:
        """The role to assume for ``scope`` (``None``: the base credentials); raises if not configured."""
        ref = getattr(self, scope)
        if ref is None:
            raise ValueError(f"{scope} is not configured")
        return None if ref == "base" else ref

    @model_validator(mode="after")
    def _patterns(self) -> AwsConfig:
        named = {
            key: getattr(self, key)
            for key in ("account_name_pattern", "account_email_pattern", "account_alias_pattern")
        }
        if self.identity_center is not None:
            named["identity_center.group_name_pattern"] = self.identity_center.group_name_pattern
        named.update({f"tags.static.{k}": v for k, v in self.tags.static.items()})
        for key, value in named.items():
            if value and is_secret(value):
                raise ValueError(
                    f"{key} holds a value from a secret environment variable: what it renders is visible in "
                    "AWS and in every output, and once adapted to AWS's naming rules it can no longer be "
                    "recognised and redacted; use a plain value"
                )
        for key in ("account_name_pattern", "account_email_pattern", "account_alias_pattern"):
            value = getattr(self, key)
            if value:
                for problem in pattern_problems(value):
                    raise ValueError(f"{key}: {problem}")
        if "@" not in self.account_email_pattern:
            raise ValueError("account_email_pattern: must contain '@'")
        return self


def _read(path_value: str, info: ValidationInfo, what: str) -> tuple[Path, str]:
    base = Path((info.context or {}).get("config_dir", "."))
    path = Path(path_value)
    path = path if path.is_absolute() else base / path
    try:
        return path, path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None


class ScpConfig(Model):
    """A Service Control Policy the landing zone attaches (meshcore owns it: created, updated, detached)."""

    name: str = Field(
        min_length=1,
        max_length=100,
        description="Policy name (the platform's scp_name_prefix is added).",
    )
    description: str = Field(default="", max_length=512)
    document: dict[str, Any] | None = Field(default=None, description="The policy document inline.")
    file: str | None = Field(
        default=None, description="Path of a JSON policy document, relative to the config file."
    )
    attach_to: Literal["ou", "account"] = Field(
        default="ou", description="The landing zone's OU, or each account."
    )

    @model_validator(mode="before")
    @classmethod
    def _load(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and data.get("file") and data.get("document") is None:
            _path, text = _read(data["file"], info, "policy document")
            try:
                data = {**data, "document": json.loads(text)}
            except json.JSONDecodeError as exc:
                raise ValueError(f"policy document {data['file']!r} is not valid JSON: {exc}") from None
        return data

    @model_validator(mode="after")
    def _check(self) -> ScpConfig:
        if self.document is None:
            raise ValueError("give the policy as 'document' (inline) or 'file'")
        found = policies.problems(self.document)
        if found:
            raise ValueError(f"SCP {self.name!r}: " + "; ".join(found))
        return self

    @property
    def content(self) -> str:
        return policies.minify(self.document or {})

    @field_validator("name")
    @classmethod
    def _scp_name(cls, v: str) -> str:
        # AWS allows any 1-128 characters (organizations:CreatePolicy Name); meshcore keeps names to
        # letters (any script), digits and _+=,.@- so that they read well in the prefix. Checked
        # with Python's re: a Unicode \w in a pydantic pattern builds a large validator at import.
        if not SCP_NAME.fullmatch(v):
            raise ValueError("must be letters, digits and _+=,.@- only")
        return v


class BaselineConfig(Model):
    """A CloudFormation template deployed into each account as a StackSet instance (automation account)."""

    name: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9-]{0,80}$", description="Baseline name (part of the StackSet name)."
    )
    template: str = Field(description="Path of the template (YAML or JSON), relative to the config file.")
    template_body: str = Field(
        default="", description="Filled from 'template' when loading; not set by users."
    )
    parameters: dict[str, str] = Field(
        default_factory=dict,
        description="Extra template parameters; values may use name-pattern placeholders.",
    )
    capabilities: tuple[Literal["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"], ...] = ()
    regions: tuple[str, ...] = Field(
        default=(), description="Regions to deploy to; default: the platform's region."
    )
    retain_stacks_on_delete: bool = Field(
        default=True, description="Keep the stacks when a tenant is deleted (its account is closed anyway)."
    )

    @model_validator(mode="before")
    @classmethod
    def _load(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and data.get("template") and not data.get("template_body"):
            _path, text = _read(data["template"], info, "template")
            data = {**data, "template_body": text}
        return data


class LambdaHook(Model):
    """A Lambda function invoked (synchronously, from the automation account) after each replication."""

    function: str = Field(min_length=1, max_length=170, description="Function name or ARN.")
    invoke: Literal["on_change", "always"] = Field(
        default="on_change",
        description="on_change: only when the tenant's metadata changed since the last invocation.",
    )


class AwsLandingZone(Model):
    """``landing_zones[].config`` for landing zones on an ``aws`` platform."""

    ou: str = Field(description="Target OU: an id (ou-xxxx-xxxxxxxx, r-xxxx) or a path like /Workloads/Dev.")
    create_ou: bool = Field(default=False, description="Create the OU path if it does not exist.")
    scps: tuple[ScpConfig, ...] = ()
    baselines: tuple[BaselineConfig, ...] = ()
    lambda_hook: LambdaHook | None = None
    role_mappings: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Per-role override of the platform's identity_center.role_mappings."
    )
    allow_privileged_roles: bool = Field(
        default=False,
        description="Allow permission sets with IAM/Organizations powers (needs SCPs that deny those actions).",
    )
    deletion_mode: Literal["close", "quarantine", "leave"] | None = Field(
        default=None, description="Override the platform's deletion.mode for tenants of this landing zone."
    )

    @field_validator("role_mappings")
    @classmethod
    def _targets(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return _mapping_targets(v)

    @model_validator(mode="after")
    def _unique(self) -> AwsLandingZone:
        for what, names in (
            ("SCP", [p.name for p in self.scps]),
            ("baseline", [b.name for b in self.baselines]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {what} name(s): {', '.join(dupes)}")
        for target in ("ou", "account"):
            count = sum(1 for p in self.scps if p.attach_to == target)
            if count > policies.SCP_MAX_PER_TARGET - 1:
                raise ValueError(
                    f"{count} SCPs attach to the {target}; AWS allows {policies.SCP_MAX_PER_TARGET} per target, "
                    "one of which is FullAWSAccess"
                )
        return self

    @field_validator("ou")
    @classmethod
    def _ou(cls, v: str) -> str:
        if not (OU_ID.fullmatch(v) or OU_PATH.fullmatch(v)):
            raise ValueError(f"{v!r} is neither an OU id (ou-xxxx-xxxxxxxx) nor a path like /Workloads/Dev")
        return v.rstrip("/") or "/"  # /Workloads/Dev/ and /Workloads/Dev are one OU
