"""Logs: on standard error, text or one JSON object a line, with run id, tenant and step; redacted."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from meshcore.cli.app import app


def test_json_logs_on_stderr_keep_json_output_on_stdout(tmp_path, write_config, base_config, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MC_LOG_SECRET", "Lg7-secret-value-55")
    base_config["platforms"][0]["config"] = {
        "state_file": str(tmp_path / "cloud.db"),
        "name_pattern": "${MC_LOG_SECRET}-{workspace}-{project}",
    }
    cfg = str(write_config(base_config))
    state = f"sqlite:///{tmp_path / 's.db'}"
    result = CliRunner().invoke(
        app, ["--log-format", "json", "-vv", "apply", "-c", cfg, "--state", state, "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["command"] == "apply"  # stdout is only the report
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert records and all(
        set(r) >= {"time", "level", "logger", "run_id", "tenant", "step", "message"} for r in records
    )
    mine = [r for r in records if r["tenant"] == "ws1/p1@demo"]
    assert mine and all(r["run_id"] == 1 for r in mine)
    assert any(r["step"].startswith("tenant") and r["level"] == "info" for r in mine), mine
    assert any(r["message"].startswith("provision: changed") for r in mine)
    assert "Lg7-secret-value-55" not in result.stderr and "***" in result.stderr


def test_levels_and_text_format(tmp_path, write_config, base_config, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base_config["platforms"][0]["config"] = {"state_file": str(tmp_path / "cloud.db")}
    cfg = str(write_config(base_config))
    state = f"sqlite:///{tmp_path / 's.db'}"
    quiet = CliRunner().invoke(app, ["apply", "-c", cfg, "--state", state])
    assert quiet.exit_code == 0 and quiet.stderr == ""  # warnings and errors only, by default
    verbose = CliRunner().invoke(app, ["-v", "apply", "-c", cfg, "--state", state])
    lines = verbose.stderr.splitlines()
    assert any(" INFO meshcore.reconciler [run 2]: apply: 3 tenant(s)" in ln for ln in lines), lines[:5]
    assert any("[run 2 ws1/p1@demo]: update: ok" in ln for ln in lines)


def test_third_party_warnings_only_at_debug():
    import subprocess
    import sys

    script = (
        "import sys, warnings\n"
        "from meshcore import logs\n"
        "logs.configure(sys.argv[1], 'text')\n"
        "warnings.warn('an emulator note about a resource type it does not model', UserWarning)\n"
    )
    for level, shown in (("info", False), ("warning", False), ("debug", True)):
        done = subprocess.run(
            [sys.executable, "-c", script, level], capture_output=True, text=True, check=True
        )
        assert ("does not model" in done.stderr) is shown, (level, done.stderr)


def test_the_tenant_and_step_of_a_record_are_redacted_too():
    import json as json_module
    import logging

    from meshcore import logs
    from meshcore.redaction import clear_secrets, register_secret

    register_secret("prodsecretplat")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(logs._Context())
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        with logs.scope(run_id=1, tenant="ws/p@prodsecretplat", step="account on prodsecretplat"):
            logging.getLogger("meshcore.test").warning("converging")
    finally:
        logging.getLogger().removeHandler(handler)
        clear_secrets()
    assert records and "prodsecretplat" not in records[0]
    assert json_module.loads(records[0])["tenant"] == "ws/p@***"
