"""Distinctive secrets (ASCII and non-ASCII) in every kind of value never reach any output or the state.

Every output path is exercised: tables and JSON of every command, logs, the
state store's bytes (step history, audit trail, attributes), exports. A secret
rotated between two runs must not show up as the "before" of the second.
"""

from __future__ import annotations

import json
import logging

import pytest
from typer.testing import CliRunner

from meshcore.cli.app import app
from meshcore.redaction import clear_secrets

ASCII = "Zq9-ExternalId-7f3e2d1c"
UNICODE = "Geheimnis-äöü-秘密-42"
TAG = "Tg5-Token-9b8a7c6d"
ROTATED = "Rt3-Rotated-0a1b2c3d4e"


def forms(secret: str) -> list[str]:
    """The secret as text, as JSON escapes it and as Python's repr escapes it."""
    return [secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], secret.encode("unicode_escape").decode()]


@pytest.fixture
def secret_config(base_config, tmp_path, monkeypatch):
    monkeypatch.setenv("MC_PATTERN_SECRET", ASCII)
    monkeypatch.setenv("MC_NAME_SECRET", UNICODE)
    monkeypatch.setenv("MC_TAG_SECRET", TAG)
    base_config["platforms"][0]["config"] = {
        "state_file": str(tmp_path / "cloud.json"),
        "name_pattern": "${MC_PATTERN_SECRET}-{project}",
    }
    base_config["tag_definitions"].append({"key": "token", "replication_key": "token"})
    ws = base_config["workspaces"][0]
    ws["name"] = "${MC_NAME_SECRET}"
    ws["tags"] = {"token": "${MC_TAG_SECRET}"}
    ws["projects"][0]["name"] = "${MC_NAME_SECRET} project"
    return base_config


def run_all(runner: CliRunner, cfg: str, state: str, out_dir) -> list[str]:
    outputs = []
    commands = [
        ["validate", "-c", cfg],
        ["plan", "-c", cfg],
        ["plan", "-c", cfg, "-o", "json"],
        ["apply", "-c", cfg],
        ["apply", "-c", cfg, "-o", "json"],
        ["status"],
        ["status", "-o", "json"],
        ["history"],
        ["history", "-o", "json"],
        ["history", "--tenant", "ws1/p1@demo"],
        ["history", "--tenant", "ws1/p1@demo", "-o", "json"],
        ["validate", "-c", cfg, "-o", "json"],
        ["discover", "demo", "-c", cfg, "-o", "json"],
        ["costs", "collect", "-p", "2026-10", "-c", cfg],
        ["costs", "report", "-p", "2026-10", "-c", cfg],
        ["costs", "report", "-p", "2026-10", "-c", cfg, "-o", "json"],
        ["chargeback", "export", "-p", "2026-10", "-c", cfg, "-f", "json"],
        ["chargeback", "export", "-p", "2026-10", "-c", cfg, "--out", str(out_dir / "cb.csv")],
    ]
    for args in commands:
        result = runner.invoke(app, [*args, "--state", state] if args[0] != "validate" else args)
        assert result.exit_code in (0, 1), (args, result.output)
        outputs.append(result.output)
    outputs.append((out_dir / "cb.csv").read_text())
    return outputs


def assert_nowhere(secrets: list[str], outputs: list[str], tmp_path, caplog) -> None:
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        for form in forms(secret):
            for i, out in enumerate(outputs):
                assert form not in out, f"secret {form!r} in output #{i}:\n{out}"
            assert form not in logged, f"secret {form!r} in the logs"
            assert form.encode() not in stored, f"secret {form!r} in the state store"


def test_secrets_reach_no_output_log_or_state(secret_config, write_config, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    cfg = str(write_config(secret_config))
    state = f"sqlite:///{tmp_path / 'state.db'}"
    outputs = run_all(CliRunner(), cfg, state, tmp_path)
    assert any("***" in out for out in outputs)
    assert_nowhere([ASCII, UNICODE, TAG], outputs, tmp_path, caplog)


def test_a_rotated_secret_is_not_shown_as_the_value_before(
    secret_config, write_config, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    cfg = str(write_config(secret_config))
    state = f"sqlite:///{tmp_path / 'state.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "-c", cfg, "--state", state]).exit_code == 0
    # a new process after the rotation knows only the new value
    clear_secrets()
    monkeypatch.setenv("MC_TAG_SECRET", ROTATED)
    outputs = [
        runner.invoke(app, [*args, "--state", state]).output
        for args in (
            ["plan", "-c", cfg],
            ["plan", "-c", cfg, "-o", "json"],
            ["apply", "-c", cfg, "-o", "json"],
            ["history", "--tenant", "ws1/p1@demo", "-o", "json"],
            ["history", "--tenant", "ws1/p1@demo"],
        )
    ]
    assert "token" in outputs[0], outputs[0]  # the tag update is planned
    assert_nowhere([TAG, ROTATED], outputs, tmp_path, caplog)


def test_validation_messages_are_redacted(base_config, write_config, monkeypatch):
    monkeypatch.setenv("MC_PATTERN_SECRET", ASCII)
    base_config["platforms"][0]["config"] = {"name_pattern": "${MC_PATTERN_SECRET}"}  # every tenant collides
    path = write_config(base_config)
    for args in (["validate", "-c", str(path)], ["validate", "-c", str(path), "-o", "json"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "is also rendered for" in result.output, result.output
        for form in forms(ASCII) + forms(ASCII.lower()):
            assert form not in result.output, result.output
