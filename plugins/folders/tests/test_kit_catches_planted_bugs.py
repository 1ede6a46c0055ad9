"""The conformance kit, measured: every bug planted in the reference plugin must make it fail.

Each mutant of ``meshcore_folders/plugin.py`` (see ``mutants.py``) is written to a
temporary module and run through the whole kit in its own process. The figure
(caught / planted) is quoted in ``docs/writing-plugins.md``; a test keeps it honest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mutants import MUTANTS

HERE = Path(__file__).resolve().parent
SOURCE = (HERE.parent / "meshcore_folders" / "plugin.py").read_text()
DOC = HERE.parents[2] / "docs" / "writing-plugins.md"

RUNNER = """
import pytest

import {module} as folders
import test_folders_conformance as base


class TestMutant(base.TestFoldersConformance):
    @pytest.fixture
    def plugin(self):
        return folders
"""


def run_kit(tmp: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    """Run the whole kit against ``source`` as the plugin module; stop at the first failure."""
    module = f"mutant_{name.replace('-', '_')}"
    (tmp / f"{module}.py").write_text(source)
    (tmp / f"test_{module}.py").write_text(RUNNER.format(module=module))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp), str(HERE)])}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-p",
            "meshcore.testing",
            str(tmp / f"test_{module}.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=600,
    )


def test_every_planted_bug_is_caught_by_the_kit(tmp_path):
    for name, _what, old, _new in MUTANTS:
        assert SOURCE.count(old) == 1, f"mutant {name}: its source text is not (uniquely) in plugin.py"
    unmutated = run_kit(tmp_path, "none", SOURCE)
    assert unmutated.returncode == 0, "the kit fails the unmutated plugin:\n" + unmutated.stdout[-3000:]

    def attempt(mutant: tuple[str, str, str, str]) -> tuple[str, str, bool, str]:
        name, what, old, new = mutant
        out = run_kit(tmp_path, name, SOURCE.replace(old, new))
        caught = out.returncode == 1 and re.search(r"\b1 (failed|error)\b", out.stdout) is not None
        return name, what, caught, out.stdout[-1500:]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(attempt, MUTANTS))
    missed = [f"{name}: {what}\n{tail}" for name, what, caught, tail in results if not caught]
    print("missed:", [m.split(":")[0] for m in missed])
    assert len(MUTANTS) >= 30
    assert not missed, f"{len(missed)} of {len(MUTANTS)} planted bugs not caught:\n" + "\n\n".join(missed)


def test_the_docs_quote_the_measured_figure():
    assert f"{len(MUTANTS)} of {len(MUTANTS)} planted bugs" in DOC.read_text()


@pytest.mark.parametrize("name", [m[0] for m in MUTANTS])
def test_each_mutant_changes_the_plugin(name):
    _, _, old, new = next(m for m in MUTANTS if m[0] == name)
    assert old != new and SOURCE.replace(old, new) != SOURCE
