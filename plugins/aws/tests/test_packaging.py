"""The example organization is package data: it is in the wheel, and the demo reads it from the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import meshcore_aws
from meshcore_aws.cli import example_config

PACKAGE = Path(meshcore_aws.__file__).resolve().parent
PROJECT = PACKAGE.parent


def test_the_wheel_ships_every_file_of_the_example(tmp_path):
    source = tmp_path / "src"
    # a copy, so the build neither writes into the source tree nor packages files of an earlier build there
    shutil.copytree(
        PROJECT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests")
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("meshcore_aws-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    example = {
        f"meshcore_aws/{p.relative_to(PACKAGE).as_posix()}"
        for p in (PACKAGE / "example").rglob("*")
        if p.is_file()
    }
    assert {
        "meshcore_aws/example/meshcore.yaml",
        "meshcore_aws/example/baselines/account-baseline.yaml",
        "meshcore_aws/example/policies/deny-leave-and-non-eu.json",
    } <= example
    assert example <= shipped, sorted(example - shipped)


def test_the_example_is_found_in_the_package_whatever_the_working_directory(tmp_path, monkeypatch):
    decoy = tmp_path / "examples" / "aws" / "meshcore.yaml"
    decoy.parent.mkdir(parents=True)
    decoy.write_text("not: the example\n")
    monkeypatch.chdir(tmp_path)
    assert example_config() == PACKAGE / "example" / "meshcore.yaml"
    assert "workspaces:" in example_config().read_text()


def test_the_repository_link_and_the_package_are_one_copy():
    link = PROJECT.parents[1] / "examples" / "aws"
    assert link.is_symlink() and link.resolve() == PACKAGE / "example"
