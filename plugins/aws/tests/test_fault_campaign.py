"""Fault campaign: crash anywhere, throttling storms, concurrent runners, bad input, secrets."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest
import yaml
from typer.testing import CliRunner

from aws_testlib import EXTERNAL_ID, ROLE, by_key
from meshcore.cli.app import app as cli
from meshcore.errors import LockHeldError
from meshcore_aws.sandbox import Sandbox

HERE = Path(__file__).parent


def crash_config(tmp_path: Path) -> Path:
    cfg = {
        "platforms": [
            {
                "id": "aws",
                "type": "aws",
                "config": {
                    "management": {"role_arn": ROLE, "external_id": "${MESHCORE_MANAGEMENT_EXTERNAL_ID}"},
                    "account_email_pattern": "aws+{workspace}-{project}@example.com",
                    "poll_interval_seconds": 0,
                },
            }
        ],
        "landing_zones": [{"id": "dev", "platform": "aws", "config": {"ou": "/Dev", "create_ou": True}}],
        "workspaces": [
            {
                "id": "ws",
                "projects": [
                    {"id": p, "tenants": [{"platform": "aws", "landing_zone": "dev"}]} for p in ("a", "b")
                ],
            }
        ],
    }
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def server():
    box = Sandbox()
    box.start()
    yield box
    box.stop()


def run_apply(box: Sandbox, config: Path, state: str, kill_after: int) -> subprocess.CompletedProcess:
    env = {**os.environ, **box.env()}
    env.pop("MOTO_ACCOUNT_ID", None)
    return subprocess.run(
        [sys.executable, str(HERE / "crash_runner.py"), str(config), state, str(kill_after)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_crash_after_every_single_aws_call_converges_without_duplicates(server, tmp_path):
    """SIGKILL the apply process after the k-th AWS call, for every k of a whole provisioning run; rerun."""
    config = crash_config(tmp_path)
    server.bootstrap()
    clean = run_apply(server, config, f"sqlite:///{tmp_path / 'clean.db'}", 0)
    total = int(clean.stdout.split()[1])
    assert total > 10, clean.stdout + clean.stderr
    for k in range(1, total + 1):
        server._post("/moto-api/reset", b"")
        server.bootstrap()
        state = f"sqlite:///{tmp_path / f'k{k}.db'}"
        killed = run_apply(server, config, state, k)
        assert killed.returncode == -9, f"k={k}: the process was not killed ({killed.stdout}{killed.stderr})"
        done = run_apply(server, config, state, 0)
        assert done.returncode == 0 and "FAILED 0" in done.stdout, f"k={k}: {done.stdout}{done.stderr}"
        org = server.client("organizations")
        ours = [a for a in org.list_accounts()["Accounts"] if a["Email"].startswith("aws+ws-")]
        assert sorted(a["Email"] for a in ours) == ["aws+ws-a@example.com", "aws+ws-b@example.com"], f"k={k}"
        dev = next(
            o["Id"]
            for o in org.list_organizational_units_for_parent(ParentId=org.list_roots()["Roots"][0]["Id"])[
                "OrganizationalUnits"
            ]
            if o["Name"] == "Dev"
        )
        assert {a["Id"] for a in org.list_accounts_for_parent(ParentId=dev)["Accounts"]} == {
            a["Id"] for a in ours
        }
        from meshcore.state import StateStore

        store = StateStore.open(state)
        assert sorted(t.platform_tenant_id for t in store.tenants()) == sorted(a["Id"] for a in ours), (
            f"k={k}"
        )
        assert store.journal_entries(status="open") == [], f"k={k}: open journal entries left"
        store.close()


STORM_CODES = ["TooManyRequestsException", "ConcurrentModificationException", "ServiceException"]


def test_throttling_storm_converges_without_duplicates_and_with_bounded_retries(
    world, sso, access_config, monkeypatch
):
    """30 % of Organizations and Identity Center calls fail with throttling, conflicts or 5xx."""
    from moto.identitystore.exceptions import ConflictException
    from moto.identitystore.models import IdentityStoreBackend
    from moto.organizations import models as org_models
    from moto.organizations.exceptions import OrganizationsClientError

    from aws_testlib import server_error
    from meshcore_aws import sessions as aws_sessions

    def storm_error():
        return OrganizationsClientError(rng.choice(STORM_CODES), "storm")

    def outage(event_name="", **_kw):  # 5xx answers, as AWS gives them (moto answers every error with 400)
        if (
            raging["on"]
            and (".organizations." in event_name or ".identitystore." in event_name)
            and rng.random() < 0.1
        ):
            hits["n"] += 1
            return (
                server_error(503, "ServiceUnavailable")
                if rng.random() < 0.5
                else server_error(500, "InternalFailure")
            )
        return None

    monkeypatch.setattr(aws_sessions, "EVENT_HOOKS", [*world.calls.hooks(), ("before-send", outage)])

    rng = random.Random(7)
    hits = {"n": 0}
    raging = {"on": True}

    def storm(cls, name, make_error):
        inner = getattr(cls, name)

        def flaky(self, *args, **kwargs):
            if raging["on"] and rng.random() < 0.3:
                hits["n"] += 1
                raise make_error()
            return inner(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, flaky)

    for name in (
        "create_account",
        "list_accounts",
        "move_account",
        "tag_resource",
        "list_tags_for_resource",
        "describe_create_account_status",
        "list_parents",
        "list_accounts_for_parent",
        "describe_account",
    ):
        storm(
            org_models.OrganizationsBackend,
            name,
            storm_error,
        )
    for name in ("create_group", "create_group_membership", "list_group_memberships", "get_group_id"):
        storm(
            IdentityStoreBackend,
            name,
            lambda: ConflictException(message="storm", reason="CONCURRENT_MODIFICATION"),
        )
    rec = world.reconciler(access_config)
    # Converge: an ambiguous CreateAccount failure is recovered by the next run, never re-sent. The storm
    # hits whichever calls the threads happen to make, so a run may leave something to the next: 1 to 4 runs
    # in 40 tries.
    for _ in range(8):
        report = rec.apply()
        if not report.failed and all(i.status != "in_progress" for i in report.items):
            break
    assert not report.failed, [r.message for r in report.items]
    raging["on"] = False  # check the outcome without the storm
    assert hits["n"] > 10, "the storm did not hit"
    emails = [a["Email"] for a in world.org.client.list_accounts()["Accounts"]]
    assert len(emails) == len(set(emails)) == 4
    assert sso.members("meshcore-ws1-p1-user") == ["bob", "carol"]
    assert world.calls.total() <= 8 * (hits["n"] + 200), "retries are not bounded"
    assert {r.status for r in rec.apply().tenants} == {"ok"}


def test_concurrent_runners_never_duplicate_accounts(world):
    rec1, rec2 = world.reconciler(), world.reconciler()
    outcomes = []

    def run(rec):
        try:
            outcomes.append(rec.apply())
        except LockHeldError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in (rec1, rec2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [o for o in outcomes if isinstance(o, LockHeldError)]
    assert len(refused) <= 1
    assert all("another runner" in str(o) for o in refused)
    emails = [a["Email"] for a in world.org.client.list_accounts()["Accounts"]]
    assert len(emails) == len(set(emails)) == 4
    # a runner started with --wait waits for the holder to finish instead of failing
    holder, waiter = world.reconciler(), world.reconciler()
    released = threading.Event()

    def hold():
        with holder.lease():
            released.wait(5.0)

    t = threading.Thread(target=hold)
    t.start()
    import time

    time.sleep(0.2)
    waiter.sleep = time.sleep  # real waiting, bounded by --wait
    threading.Timer(0.5, released.set).start()
    t0 = time.monotonic()
    assert waiter.apply(wait=10).tenants
    assert time.monotonic() - t0 >= 0.3, "the second runner did not wait for the lease"
    t.join()


def _mutations() -> list[tuple[str, str, str]]:
    """(description, YAML path expression to mutate, expected text in the error) — the bad input corpus."""
    return [
        ("unknown top-level key", "cfg['platfroms'] = []", "unknown key 'platfroms'"),
        ("platform type not installed", "cfg['platforms'][0]['type'] = 'azure'", "platforms[0].type"),
        ("platform config unknown key", "pc['regoin'] = 'x'", "config.regoin"),
        ("bad region", "pc['region'] = 'mars-1'", "config.region"),
        (
            "role ARN invalid",
            "pc['management']['role_arn'] = 'arn:aws:iam::1:role/x'",
            "config.management.role_arn",
        ),
        (
            "role ARN wrong service",
            "pc['management']['role_arn'] = 'arn:aws:s3:::bucket'",
            "config.management.role_arn",
        ),
        ("external id missing", "del pc['management']['external_id']", "external_id"),
        (
            "external id env var unset",
            "pc['management']['external_id'] = '${NOPE_UNSET_VAR}'",
            "NOPE_UNSET_VAR is not set",
        ),
        ("email pattern without @", "pc['account_email_pattern'] = 'nobody'", "account_email_pattern"),
        (
            "email pattern unknown placeholder",
            "pc['account_email_pattern'] = 'a+{team}@x.com'",
            "unknown placeholder {team}",
        ),
        ("name pattern unbalanced", "pc['account_name_pattern'] = '{workspace'", "unbalanced"),
        ("alias pattern tag without key", "pc['account_alias_pattern'] = '{tag:}'", "account_alias_pattern"),
        ("alias mode invalid", "pc['alias_mode'] = 'sometimes'", "alias_mode"),
        # AWS's [\w+=,.@-] is ASCII (its regular expressions are Java's): letters such as "é" are refused
        ("access role not ASCII", "pc['account_access_role'] = 'Organisationsrölle'", "account_access_role"),
        (
            "permission set name not ASCII",
            "pc['identity_center']['permission_sets'][0]['name'] = 'Développeur'",
            "permission_sets[0].name",
        ),
        (
            "customer managed policy path with a character AWS refuses",
            "pc['identity_center']['permission_sets'][0]['customer_managed_policies'] = [{'name': 'p', 'path': '/team#1/'}]",
            "customer_managed_policies[0].path",
        ),
        ("page size too big", "pc['page_size'] = 100", "page_size"),
        ("negative poll interval", "pc['poll_interval_seconds'] = -1", "poll_interval_seconds"),
        ("write concurrency zero", "pc['org_write_concurrency'] = 0", "org_write_concurrency"),
        ("deletion mode invalid", "pc['deletion'] = {'mode': 'nuke'}", "deletion.mode"),
        ("quarantine without OU", "pc['deletion'] = {'mode': 'quarantine'}", "quarantine_ou"),
        (
            "quarantine OU invalid",
            "pc['deletion'] = {'mode': 'quarantine', 'quarantine_ou': 'not/a/path'}",
            "quarantine_ou",
        ),
        ("guard under owned prefix", "pc['deletion'] = {'guard': {'key': 'meshcore:x'}}", "guard.key"),
        ("tag prefix aws:", "pc['tags'] = {'prefix': 'aws:x'}", "tags.prefix"),
        ("cost metric invalid", "pc['costs'] = {'metric': 'Cheap'}", "costs.metric"),
        ("landing zone OU invalid", "lz['ou'] = 'Workloads'", "config.ou"),
        ("landing zone unknown key", "lz['scp'] = []", "unknown key 'scp'"),
        ("SCP not JSON file", "lz['scps'] = [{'name': 'x', 'file': '/etc/hostname'}]", "not valid JSON"),
        (
            "SCP oversized",
            "lz['scps'] = [{'name': 'x', 'document': {'Version': '2012-10-17', 'Statement': [{'Effect': 'Deny', 'Action': ['s3:A%04d' % i for i in range(500)], 'Resource': '*'}]}}]",
            "5120",
        ),
        (
            "SCP with Principal",
            "lz['scps'] = [{'name': 'x', 'document': {'Version': '2012-10-17', 'Statement': [{'Effect': 'Deny', 'Action': 's3:*', 'Principal': '*'}]}}]",
            "Principal",
        ),
        (
            "SCP bad effect",
            "lz['scps'] = [{'name': 'x', 'document': {'Version': '2012-10-17', 'Statement': [{'Effect': 'Maybe', 'Action': 's3:*'}]}}]",
            "Effect",
        ),
        ("SCP name injection", "lz['scps'] = [{'name': 'x; rm -rf /', 'document': {}}]", "scps[0].name"),
        (
            "too many SCPs",
            "lz['scps'] = [{'name': f'p{i}', 'document': {'Version': '2012-10-17', 'Statement': [{'Effect': 'Deny', 'Action': 's3:*'}]}} for i in range(5)]",
            "AWS allows 5 per target",
        ),
        (
            "baseline template missing",
            "lz['baselines'] = [{'name': 'b', 'template': '/nonexistent.yaml'}]",
            "cannot read template",
        ),
        (
            "baseline bad name",
            "lz['baselines'] = [{'name': '1bad name', 'template': '/etc/hostname'}]",
            "baselines[0].name",
        ),
        (
            "lambda invoke mode",
            "lz['lambda_hook'] = {'function': 'f', 'invoke': 'never'}",
            "lambda_hook.invoke",
        ),
        ("role mapping without identity center", "lz['role_mappings'] = {'admin': ['X']}", "role_mappings"),
        (
            "permission set ARN invalid",
            "pc['identity_center'] = {'region': 'us-east-1', 'role_mappings': {'admin': ['arn:aws:sso:::permissionSet/x']}}",
            "permission set ARN",
        ),
        (
            "permission set undefined",
            "pc['identity_center'] = {'region': 'us-east-1', 'role_mappings': {'admin': ['Nope']}}",
            "neither an ARN nor defined",
        ),
        (
            "group pattern without role",
            "pc['identity_center'] = {'region': 'us-east-1', 'group_name_pattern': 'meshcore-{workspace}'}",
            "must contain {role}",
        ),
        (
            "group pattern without prefix",
            "pc['identity_center'] = {'region': 'us-east-1', 'group_name_pattern': 'x-{role}'}",
            "must start with group_prefix",
        ),
        (
            "session duration invalid",
            "pc['identity_center'] = {'region': 'us-east-1', 'permission_sets': [{'name': 'A', 'session_duration': 'PT13H'}]}",
            "session_duration",
        ),
        (
            "managed policy ARN invalid",
            "pc['identity_center'] = {'region': 'us-east-1', 'permission_sets': [{'name': 'A', 'managed_policies': ['AdministratorAccess']}]}",
            "managed policy ARN",
        ),
        (
            "privileged without boundary",
            "pc['identity_center'] = {'region': 'us-east-1', 'permission_sets': [{'name': 'A', 'managed_policies': ['arn:aws:iam::aws:policy/AdministratorAccess']}], 'role_mappings': {'admin': ['A']}}",
            "privileged",
        ),
        ("workspace id injection", "cfg['workspaces'][0]['id'] = 'ws1; DROP TABLE tenants'", "workspace id"),
        ("workspace id too long", "cfg['workspaces'][0]['id'] = 'w' * 17", "workspace id"),
        ("project id uppercase", "cfg['workspaces'][0]['projects'][0]['id'] = 'P1'", "project id"),
        (
            "tenant on unknown platform",
            "cfg['workspaces'][0]['projects'][0]['tenants'][0]['platform'] = 'gcp'",
            "platform 'gcp' is not defined",
        ),
        (
            "tenant unknown landing zone",
            "cfg['workspaces'][0]['projects'][0]['tenants'][0]['landing_zone'] = 'stage'",
            "landing zone 'stage' is not defined",
        ),
        ("tag value too long", "cfg['workspaces'][0]['tags'] = {'cost-center': 'x' * 300}", "256 characters"),
        (
            "tag with newline injection",
            "cfg['workspaces'][0]['projects'][0]['tags'] = {'environment': 'dev\\nrm'} ; cfg['tag_definitions'][0]['allowed_values'] = ['dev']",
            "not allowed",
        ),
        (
            "binding to unknown user",
            "cfg['workspaces'][0]['projects'][0]['bindings'] = [{'user': 'mallory', 'role': 'admin'}]",
            "user 'mallory' is not defined",
        ),
        (
            "binding with both subjects",
            "cfg['workspaces'][0]['projects'][0]['bindings'] = [{'user': 'alice', 'group': 'devs', 'role': 'admin'}]",
            "exactly one",
        ),
        (
            "binding bad date",
            "cfg['workspaces'][0]['projects'][0]['bindings'] = [{'user': 'alice', 'role': 'admin', 'expires': 'soon'}]",
            "expires",
        ),
        (
            "import id duplicate",
            "cfg['workspaces'][0]['projects'][0]['tenants'][0]['import_id'] = '111111111111'; cfg['workspaces'][0]['projects'][1]['tenants'][0]['import_id'] = '111111111111'",
            "already imported",
        ),
        ("settings wrong type", "cfg['settings'] = {'concurrency': 'lots'}", "settings.concurrency"),
        ("version unsupported", "cfg['version'] = 2", "version"),
        ("duplicate platform", "cfg['platforms'].append(dict(cfg['platforms'][0]))", "duplicate platform id"),
        (
            "two projects render one e-mail",
            "cfg['workspaces'] += [{'id': 'team-a', 'projects': [{'id': 'web', 'tenants': [{'platform': 'aws', 'landing_zone': 'dev'}]}]}, {'id': 'team', 'projects': [{'id': 'a-web', 'tenants': [{'platform': 'aws', 'landing_zone': 'dev'}]}]}]",
            "'aws+team-a-web@example.com' is also rendered for team-a/web@aws",
        ),
        (
            "two projects render one alias",
            "pc['account_alias_pattern'] = 'acme-{project}'; cfg['workspaces'][1]['projects'][0]['id'] = 'p1'",
            "the account alias 'acme-p1' is also rendered for",
        ),
        (
            "account name with a control character",
            "pc['account_name_pattern'] = '{project_name}'; cfg['workspaces'][0]['projects'][0]['name'] = 'web\\x07app'",
            "printable ASCII",
        ),
        (
            "account name too long",
            "pc['account_name_pattern'] = '{project_name}'; cfg['workspaces'][0]['projects'][0]['name'] = 'n' * 51",
            "must be 1-50 characters",
        ),
        (
            "OU by id and by path",
            "cfg['landing_zones'][1]['config']['ou'] = 'ou-abcd-12345678'",
            "names its OU by id while landing zone 'dev' names its OU by path",
        ),
        (
            "project id with trailing newline",
            "cfg['workspaces'][0]['projects'][0]['id'] = 'p1\\n'",
            "project id",
        ),
    ]


@pytest.mark.parametrize(("what", "mutation", "expected"), _mutations(), ids=[m[0] for m in _mutations()])
def test_bad_input_corpus(what, mutation, expected, access_config, tmp_path, calls, monkeypatch):
    import copy

    monkeypatch.delenv("NOPE_UNSET_VAR", raising=False)
    cfg = copy.deepcopy(access_config)
    cfg["users"].append({"id": "mallory-not", "email": "m@example.com"})
    cfg["tag_definitions"][0]["allowed_values"] = ["dev", "prod"]
    pc = cfg["platforms"][0]["config"]
    lz = cfg["landing_zones"][0]["config"]
    exec(mutation, {}, {"cfg": cfg, "pc": pc, "lz": lz})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(cli, ["validate", "-c", str(path)])
    expected_exit = 3 if what == "platform type not installed" else 2  # docs/cli.md: a missing plugin is 3
    assert result.exit_code == expected_exit, f"{what}: accepted\n{result.output}"
    assert "Traceback" not in result.output
    assert expected in result.output, f"{what}: {result.output}"
    assert str(path) in result.output
    assert calls.total() == 0, "validation made cloud calls"


def test_no_secret_reaches_state_logs_or_output(world, access_config, tmp_path, caplog, monkeypatch):
    import logging

    caplog.set_level(logging.DEBUG)
    secret_key = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRET"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(access_config))
    state = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    outputs = [
        runner.invoke(cli, [cmd, "-c", str(config), "--state", state, "-o", "json"]).output
        for cmd in ("validate", "plan", "apply", "plan")
    ]
    outputs += [
        runner.invoke(cli, ["status", "--state", state, "-o", "json"]).output,
        runner.invoke(cli, ["history", "--state", state, "-o", "json"]).output,
    ]
    assert '"changed"' in outputs[2]
    for secret in (EXTERNAL_ID, secret_key):
        for out in outputs:
            assert secret not in out
        assert secret not in caplog.text
        for db in tmp_path.glob("cli.db*"):
            assert secret.encode() not in db.read_bytes(), db


def test_transient_connection_errors_are_recovered(world, monkeypatch):
    """Connection resets on 20 % of calls (raised before the request leaves): retried, converged."""
    from botocore.exceptions import ConnectionClosedError

    from meshcore_aws import sessions as aws_sessions

    rng = random.Random(3)
    resets = {"n": 0}

    def reset(event_name="", **_kw):
        if not event_name.endswith("AssumeRole") and rng.random() < 0.2:
            resets["n"] += 1
            raise ConnectionClosedError(endpoint_url="https://organizations.us-east-1.amazonaws.com")

    monkeypatch.setattr(aws_sessions, "EVENT_HOOKS", [*world.calls.hooks(), ("before-send", reset)])
    report = world.reconciler().apply()
    for _ in range(3):  # a reset CreateAccount is never resent blindly: the next run recovers it (and may be
        if not report.failed and all(i.status != "in_progress" for i in report.tenants):  # reset again)
            break
        report = world.reconciler().apply()
    assert not report.failed, [r.message for r in report.tenants]
    assert all(i.status != "in_progress" for i in report.tenants), [r.message for r in report.tenants]
    assert resets["n"] >= 3, "no connection was reset"
    emails = [a["Email"] for a in world.org.client.list_accounts()["Accounts"]]
    assert len(emails) == len(set(emails)) == 4


def test_expired_credentials_mid_run_are_refreshed(world, monkeypatch):
    """AWS answers ExpiredTokenException: the role is assumed again and the run goes on."""
    from moto.organizations import models as org_models
    from moto.organizations.exceptions import OrganizationsClientError

    rec = world.reconciler()
    rec.apply()
    original = org_models.OrganizationsBackend.list_tags_for_resource
    expired = {"n": 2}

    def expire(self, *args, **kwargs):
        if expired["n"]:
            expired["n"] -= 1
            raise OrganizationsClientError(
                "ExpiredTokenException", "The security token included in the request is expired"
            )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(org_models.OrganizationsBackend, "list_tags_for_resource", expire)
    before = world.calls["AssumeRole"]
    report = rec.apply()
    assert not report.failed, [r.message for r in report.tenants]
    assert world.calls["AssumeRole"] > before, "the expired credentials were not refreshed"
    assert {r.status for r in report.tenants} == {"ok"}


def test_by_key_helper_is_used():
    assert by_key.__name__ == "by_key" and boto3.__name__ == "boto3"


def test_a_web_page_instead_of_an_aws_error_is_named_not_pasted():
    from botocore.exceptions import ClientError

    from meshcore_aws.retries import describe

    page = "<!doctype html><html><body><h1>404 Not Found</h1>" + "x" * 2000 + "</body></html>"
    exc = ClientError(
        {"Error": {"Code": "404", "Message": page}, "ResponseMetadata": {"HTTPStatusCode": 404}},
        "PutAccountName",
    )
    text = describe(exc)
    assert (
        text.startswith("HTTP 404: the endpoint answered PutAccountName with a web page")
        and "<html" not in text
    )
