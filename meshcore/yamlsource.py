"""Read YAML files while remembering where every key is, and interpolate ``${ENV_VAR}``.

Errors found later (by pydantic or by reference checks) carry a key path; the
line map built here turns that into ``file:line``.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshcore.errors import ConfigProblem
from meshcore.redaction import register_secret

Loc = tuple[str | int, ...]

#: Limits that keep a hostile file (an alias bomb, absurd nesting) from exhausting memory or the stack.
MAX_BYTES = 5 * 1024 * 1024
MAX_VALUES = 200_000
MAX_DEPTH = 64
#: Characters of all scalars, each alias counted every time it is used (a long string used as a bomb).
MAX_CHARS = 4 * MAX_BYTES


class _Refused(Exception):
    """A structural problem that stops reading the file (its message names what is wrong)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class SourceFile:
    """One parsed YAML file: its data and the line of every key path."""

    path: Path
    data: Any = None
    lines: dict[Loc, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.path)

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc`` or of its nearest ancestor present in the file."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())

    def problem(self, loc: Loc, message: str) -> ConfigProblem:
        return ConfigProblem(self.name, format_loc(loc), message, self.line_of(loc))


def format_loc(loc: Loc) -> str:
    """``('workspaces', 0, 'id')`` -> ``workspaces[0].id``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def config_files(path: Path) -> list[Path]:
    """A file, or every ``*.yaml``/``*.yml`` below a directory in a stable order."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())
    return [path]


def read_yaml(path: Path, problems: list[ConfigProblem]) -> SourceFile | None:
    """Parse one file; syntax errors and duplicate keys become problems."""
    src = SourceFile(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            problems.append(
                ConfigProblem(str(path), "", "is not a regular file (a device or a pipe?): give a YAML file")
            )
            return None
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # never more, whatever the file says its size is
        if len(raw) > MAX_BYTES:
            problems.append(
                ConfigProblem(
                    str(path), "", f"file is larger than {MAX_BYTES:,} bytes, the most a config file may have"
                )
            )
            return None
        text = raw.decode("utf-8")
    except OSError as exc:
        problems.append(ConfigProblem(str(path), "", f"cannot read file: {exc.strerror or exc}"))
        return None
    except UnicodeDecodeError:
        problems.append(ConfigProblem(str(path), "", "file is not valid UTF-8 text"))
        return None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                src.data = {}
                return src
            _walk(node, (), src, problems, _Budget())
            src.data = loader.construct_document(node)
        finally:
            loader.dispose()
    except _Refused as exc:
        problems.append(ConfigProblem(str(path), "", str(exc), exc.line))
        return None
    except RecursionError:
        problems.append(ConfigProblem(str(path), "", f"nested too deeply (more than {MAX_DEPTH} levels)"))
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        problems.append(ConfigProblem(str(path), "", f"invalid YAML: {exc.problem}", line))
        return None
    except yaml.YAMLError as exc:
        problems.append(ConfigProblem(str(path), "", f"invalid YAML: {exc}"))
        return None
    return src


class _Budget:
    """How much of the file has been walked (aliases counted each time they are used)."""

    def __init__(self) -> None:
        self.values = 0
        self.chars = 0
        self.open: set[int] = set()  # nodes being walked: one met again below itself is a recursive alias


def _walk(node: yaml.Node, loc: Loc, src: SourceFile, problems: list[ConfigProblem], budget: _Budget) -> None:
    line = node.start_mark.line + 1
    budget.values += 1
    if budget.values > MAX_VALUES:
        raise _Refused(
            f"the file has more than {MAX_VALUES:,} values, aliases expanded (a config needs far fewer)", line
        )
    if len(loc) > MAX_DEPTH:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels at {format_loc(loc[:8])}...", line)
    if id(node) in budget.open:
        raise _Refused(f"recursive YAML alias at {format_loc(loc) or 'the top level'}", line)
    src.lines.setdefault(loc, line)
    if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        budget.chars += len(str(node.value))
        if budget.chars > MAX_CHARS:
            raise _Refused(
                f"the file expands to more than {MAX_CHARS:,} characters (a long string reused through aliases?)",
                line,
            )
        return
    budget.open.add(id(node))
    try:
        _walk_children(node, loc, src, problems, budget)
    finally:
        budget.open.discard(id(node))


def _walk_children(
    node: yaml.Node, loc: Loc, src: SourceFile, problems: list[ConfigProblem], budget: _Budget
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(
                    f"{format_loc(loc) or 'the top level'} has a key that is a list or mapping; keys must be "
                    "plain values",
                    key_node.start_mark.line + 1,
                )
            key = key_node.value
            if key in seen:
                problems.append(
                    ConfigProblem(
                        src.name, format_loc((*loc, key)), "duplicate key", key_node.start_mark.line + 1
                    )
                )
            seen.add(key)
            child = (*loc, key)
            src.lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, src, problems, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), src, problems, budget)


def interpolate(
    src: SourceFile, problems: list[ConfigProblem], environ: dict[str, str] | None = None
) -> None:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string value; ``$${`` is a literal ``${``.

    Values taken from the environment are registered as secrets, so they are
    redacted from every message meshcore stores or prints.
    """
    env = os.environ if environ is None else environ

    def sub(value: str, loc: Loc) -> str:
        def repl(m: re.Match[str]) -> str:
            if m.group(1):
                return m.group(0)[1:]
            name, default = m.group(2), m.group(3)
            if name in env:
                register_secret(env[name])
                return env[name]
            if default is not None:
                return default
            problems.append(src.problem(loc, f"environment variable {name} is not set"))
            return ""

        return _VAR.sub(repl, value)

    def walk(value: Any, loc: Loc) -> Any:
        if isinstance(value, str):
            return sub(value, loc) if "${" in value else value
        if isinstance(value, dict):
            return {k: walk(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*loc, i)) for i, v in enumerate(value)]
        return value

    src.data = walk(src.data, ())
