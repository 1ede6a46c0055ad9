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
