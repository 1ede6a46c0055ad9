"""The bad-input corpus for the core: hostile files get exit 2 and one clear line, never a traceback.

Each case is raw file content (or a change to the valid base config) and the
text the error must contain. The AWS plugin's corpus is in
``plugins/aws/tests/test_fault_campaign.py``; add new cases to whichever fits.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshcore.cli.app import app
from meshcore.yamlsource import MAX_BYTES, MAX_DEPTH

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
)

RAW: list[tuple[str, str, str]] = [
    ("alias bomb", BILLION_LAUGHS, "has more than 200,000 values, aliases expanded"),
    ("recursive alias in a list", "version: 1\nplatforms: &p [*p]\n", "recursive YAML alias at platforms[0]"),
    ("recursive alias in a mapping", "a: &a\n  b: *a\n", "recursive YAML alias at a.b"),
    ("deep nesting", "version: 1\nplatforms: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
    (
        "deep block nesting",
        "".join(f"{'  ' * i}k{i}:\n" for i in range(80)) + "  " * 80 + "leaf: 1\n",
        "nested",
    ),
    ("complex key", "version: 1\n? [a, b]\n: 1\n", "keys must be plain values"),
    ("mapping as key", "version: 1\nplatforms:\n  ? {id: x}\n  : 1\n", "keys must be plain values"),
    (
        "python object tag",
        "platforms: !!python/object/apply:os.system ['id']\n",
        "could not determine a constructor",
    ),
    ("NUL byte", "version: 1\x00\n", "unacceptable character"),
    ("tab indentation", "version: 1\nplatforms:\n\t- id: x\n", "invalid YAML"),
    ("a list at the top", "- a\n- b\n", "top level must be a mapping"),
    ("trailing newline in an id", 'workspaces:\n  - id: "ws1\\n"\n', "workspace id 'ws1\\n' is invalid"),
    ("control character in an id", 'users:\n  - id: "al\\u0007ice"\n', "user id"),
]


@pytest.fixture
def validate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MESHCORE_STATE", f"sqlite:///{tmp_path / 'state.db'}")

    def run(path):
        return CliRunner().invoke(app, ["validate", "-c", str(path)])

    return run


def assert_refused(result, path, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert str(path) in result.output, result.output
    assert expected in result.output, result.output


@pytest.mark.parametrize(("what", "text", "expected"), RAW, ids=[r[0] for r in RAW])
def test_hostile_file(what, text, expected, tmp_path, validate):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert_refused(validate(path), path, expected)


def test_binary_and_oversized_files(tmp_path, validate):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"version: 1\n\xff\xfe\n")
    assert_refused(validate(binary), binary, "not valid UTF-8")
    big = tmp_path / "big.yaml"
    big.write_text("version: 1\n" + "#" * MAX_BYTES + "\n")
    assert_refused(validate(big), big, f"file is larger than {MAX_BYTES:,} bytes")


def test_a_device_or_pipe_is_refused_without_reading_it(tmp_path, validate):
    import os

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # nobody writes: reading it would block forever
    assert_refused(validate(fifo), fifo, "is not a regular file")
    assert_refused(validate(Path("/dev/zero")), "/dev/zero", "is not a regular file")


def test_a_long_string_reused_through_aliases_is_refused(tmp_path, validate):
    path = tmp_path / "strings.yaml"
    big = "a" * 1_000_000
    path.write_text(f'x: &big "{big}"\ny: [' + ", ".join(["*big"] * 30) + "]\n")
    assert_refused(validate(path), path, "expands to more than 20,971,520 characters")


def test_depth_limit_is_the_documented_one(tmp_path, validate):
    """MAX_DEPTH levels are accepted as YAML (the config's own rules then apply); one more is refused."""

    def nested(levels: int) -> str:
        return "version: 1\nsettings: " + "[" * levels + "]" * levels + "\n"

    ok = tmp_path / "ok.yaml"
    ok.write_text(nested(MAX_DEPTH - 2))
    assert "nested" not in validate(ok).output
    deep = tmp_path / "deep.yaml"
    deep.write_text(nested(MAX_DEPTH + 1))
    assert_refused(validate(deep), deep, f"nested deeper than {MAX_DEPTH} levels")


CHANGES: list[tuple[str, Any, str]] = [
    (
        "two tenants render one name",
        lambda c: c["platforms"][0]["config"].update(name_pattern="{workspace}"),
        "tenant name 'ws1' is also rendered for ws1/p1@demo",
    ),
    (
        "a name pattern with a format spec",
        lambda c: c["platforms"][0]["config"].update(name_pattern="{workspace:>999999999}"),
        "name_pattern: unknown placeholder",
    ),
    (
        "a name pattern with an unknown placeholder",
        lambda c: c["platforms"][0]["config"].update(name_pattern="{0}-{project}"),
        "name_pattern: unknown placeholder {0}",
    ),
    (
        "trailing newline in a project id",
        lambda c: c["workspaces"][0]["projects"][0].update(id="p1\n"),
        "project id 'p1\\n' is invalid",
    ),
]


@pytest.mark.parametrize(("what", "change", "expected"), CHANGES, ids=[c[0] for c in CHANGES])
def test_hostile_values(what, change, expected, base_config, write_config, validate):
    cfg = copy.deepcopy(base_config)
    change(cfg)
    path = write_config(cfg)
    assert_refused(validate(path), path, expected)


def test_a_tenant_problem_points_at_the_tenant_entry(base_config, write_config, validate):
    base_config["platforms"][0]["config"] = {"name_pattern": "{workspace}"}
    path = write_config(base_config)
    out = validate(path).output
    line = next(ln for ln in out.splitlines() if "also rendered" in ln)
    assert "workspaces[0].projects[1].tenants[0]:" in line
    number = int(line.split(":")[1])
    assert "platform: demo" in path.read_text().splitlines()[number - 1]
