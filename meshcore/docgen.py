"""Generate the config reference pages from the pydantic models, so they can never drift.

    python -m meshcore.docgen            # rewrites docs/reference/*.md
    python -m meshcore.docgen --check    # exit 1 if a page is out of date

Each page is one table per model: key, type, default, description (the
field's ``description``, else nothing). Plugins' models are listed in
``PAGES`` by import path, so installing a plugin is not needed to import this.
"""

from __future__ import annotations

import importlib
import sys
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

PAGES: dict[str, tuple[str, list[str]]] = {
    "config.md": ("Config file (generated)", ["meshcore.models:ConfigDocument"]),
    "aws.md": (
        "AWS platform and landing-zone config (generated)",
        ["meshcore_aws.config:AwsConfig", "meshcore_aws.config:AwsLandingZone"],
    ),
    "folders.md": (
        "Folders reference plugin config (generated)",
        ["meshcore_folders.plugin:FoldersConfig", "meshcore_folders.plugin:FoldersLandingZone"],
    ),
}
OUT = Path(__file__).resolve().parent.parent / "docs" / "reference"


def _type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    if origin is typing.Annotated:
        return _type(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args if a is not type(None)) + (
            " or null" if type(None) in args else ""
        )
    if origin in (tuple, list):
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type(args[0])} to {_type(args[1])}" if len(args) == 2 else "mapping"
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return " \\| ".join(f"`{m.value}`" for m in tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    return (
        getattr(tp, "__name__", str(tp)).replace("Decimal", "decimal").replace("SecretStr", "secret string")
    )


def _models(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [] if tp is BaseModel else [tp]  # ``type[BaseModel]`` (a model class) is no nested model
    return [m for a in typing.get_args(tp) for m in _models(a)]


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined or value is None:
        return "none"
    if isinstance(value, BaseModel):
        return "(defaults)"
    if isinstance(value, Enum):
        value = value.value
    if value in ((), [], {}):
        return "empty"
    return f"`{value}`"


def render_models(roots: list[type[BaseModel]], level: int = 2, follow: bool = True) -> str:
    """One table per model (key, type, default, description), following nested models if ``follow``."""
    lines: list[str] = []
    seen: list[type[BaseModel]] = []
    queue = list(roots)
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.append(model)
        doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        lines += [
            f"{'#' * level} {model.__name__}",
            "",
            doc,
            "",
            "| Key | Type | Default | Description |",
            "| --- | --- | --- | --- |",
        ]
        for name, field in model.model_fields.items():
            desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{name}` | {_type(field.annotation)} | {_default(field)} | {desc} |")
            if follow:
                queue += [m for m in _models(field.annotation) if m not in seen]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_page(title: str, roots: list[type[BaseModel]]) -> str:
    head = f"# {title}\n\nGenerated from the models by `python -m meshcore.docgen`; do not edit by hand.\n\n"
    return head + render_models(roots)


def pages() -> dict[str, str]:
    out = {}
    for filename, (title, paths) in PAGES.items():
        roots = []
        for path in paths:
            module, _, attr = path.partition(":")
            try:
                roots.append(getattr(importlib.import_module(module), attr))
            except ImportError:
                break
        else:
            out[filename] = render_page(title, roots)
    return out


def outputs() -> dict[Path, str]:
    """Every generated page by its path: the config reference pages and the hook reference."""
    from meshcore.hookdocs import render_hooks

    out = {OUT / name: text for name, text in pages().items()}
    out[OUT.parent / "hooks.md"] = render_hooks()
    return out


def main(argv: list[str]) -> int:
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for path, text in outputs().items():
        filename = path.name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(filename)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m meshcore.docgen")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
