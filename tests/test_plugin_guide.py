"""The plugin guide's code is the reference plugin's code: every excerpt is still in its file."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXCERPT = re.compile(r"<!-- from: (?P<path>\S+) -->\n```python\n(?P<code>.*?)```", re.S)


def test_every_excerpt_is_word_for_word_in_its_file():
    guide = (ROOT / "docs" / "writing-plugins.md").read_text()
    excerpts = list(EXCERPT.finditer(guide))
    assert len(excerpts) >= 5
    for m in excerpts:
        source = (ROOT / m["path"]).read_text()
        code = m["code"]
        assert code in source or textwrap.dedent(code) in source, (
            f"docs/writing-plugins.md quotes {m['path']} but this is no longer in it:\n{code}"
        )


def test_the_guide_names_only_public_imports():
    import meshcore

    guide = (ROOT / "docs" / "writing-plugins.md").read_text()
    table = guide.split("## 1.")[0]
    named = set(re.findall(r"`([A-Za-z_]+)`", table)) - {"meshcore", "ctx"}
    assert named <= set(meshcore.__all__), sorted(named - set(meshcore.__all__))
    assert set(meshcore.__all__) - {"CONTRACT_VERSION", "__version__"} <= named


def test_every_rule_names_a_kit_check_that_exists_and_every_check_backs_a_rule():
    from meshcore.testing.conformance import PlatformPluginConformance

    guide = (ROOT / "docs" / "writing-plugins.md").read_text()
    rules = guide.split("## 4. Rules for plugin authors", 1)[1].split("## 5.", 1)[0]
    named = set(re.findall(r"`(test_\w+)`", rules))
    checks = {n for n in dir(PlatformPluginConformance) if n.startswith("test_")}
    assert named <= checks, f"the guide names checks the kit does not have: {sorted(named - checks)}"
    unnamed = checks - named - {"test_registers_its_platform_type", "test_validate_and_preflight_answer"}
    assert not unnamed, f"kit checks no rule in the guide mentions: {sorted(unnamed)}"
