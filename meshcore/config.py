"""Load and validate the declarative config: every problem at once, each with file, line and key path.

Validation runs in three passes, collecting problems instead of stopping:

1. each file against :class:`~meshcore.models.ConfigDocument` (types, unknown keys, identifiers);
2. the merged documents: duplicate ids, references to undefined platforms,
   landing zones, users, groups and roles, tag definitions;
3. each platform's and landing zone's ``config`` against the owning plugin's
   models, then the plugin's own ``meshplatform_validate`` hook.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from meshcore.errors import ConfigError, ConfigProblem, MeshcoreError
from meshcore.models import ConfigDocument, Settings
from meshcore.plugins import PluginRegistry
from meshcore.redaction import register_secret
from meshcore.specs import LandingZoneSpec, PlatformSpec, tenant_key
from meshcore.yamlsource import Loc, SourceFile, config_files, format_loc, interpolate, read_yaml

_LIST_KEYS = ("platforms", "landing_zones", "tag_definitions", "users", "groups", "workspaces")


@dataclass
class Origin:
    """Where a merged item came from."""

    src: SourceFile
    loc: Loc

    def problem(self, sub: Loc, message: str) -> ConfigProblem:
        return self.src.problem((*self.loc, *sub), message)


@dataclass
class LoadedConfig:
    """A validated config, with platform and landing-zone configs parsed by their plugins."""

    document: ConfigDocument
    files: list[str]
    platforms: dict[str, PlatformSpec] = field(default_factory=dict)
    landing_zones: dict[str, LandingZoneSpec] = field(default_factory=dict)


def load_config(path: str | Path, registry: PluginRegistry, *, check_plugins: bool = True) -> LoadedConfig:
    """Load ``path`` (a file or a directory of YAML files); raise :class:`ConfigError` with every problem."""
    path = Path(path)
    problems: list[ConfigProblem] = []
    if not path.exists():
        raise ConfigError([ConfigProblem(str(path), "", "config file or directory does not exist")])
    files = config_files(path)
    if not files:
        raise ConfigError([ConfigProblem(str(path), "", "no *.yaml or *.yml files in this directory")])

    sources = []
    for file in files:
        src = read_yaml(file, problems)
        if src is None:
            continue
        if not isinstance(src.data, dict):
            problems.append(
                src.problem((), "the top level must be a mapping of keys like 'platforms', 'workspaces'")
            )
            continue
        interpolate(src, problems)
        sources.append(src)

    merged, origins, invalid = _merge(sources, problems)
    _check_references(merged, origins, invalid, problems)
    loaded = LoadedConfig(merged, [str(f) for f in files])
    if check_plugins:
        _check_platforms(merged, origins, registry, loaded, problems)
    if problems:
        raise ConfigError(problems)
    return loaded


# -- pass 1 helpers -----------------------------------------------------------------


_UNION_TAG = re.compile(r"^(literal\[|function-|json-or-python\[|[A-Z][A-Za-z0-9]*$|str$|int$|bool$|float$)")


def _union_errors(errors: list[Any]) -> list[Any]:
    """Errors of a union field (``RoleRef | Literal['base']``) read like errors of the branch the user meant.

    pydantic reports every branch, tagging each location with the branch's name
    (``RoleRef``, ``literal['base']``); for a mapping the user clearly meant the
    model branch, so the other branches' "wrong type" errors are dropped, and the
    tags are removed from the key path.
    """
    out = []
    for err in errors:
        tagged = [p for p in err["loc"] if isinstance(p, str) and _UNION_TAG.match(p)]
        scalar_branch = err["type"] in ("literal_error", "string_type", "int_type", "bool_type", "model_type")
        if tagged and scalar_branch and isinstance(err.get("input"), dict | list):
            continue  # the user wrote a mapping: the scalar branches are beside the point
        out.append(
            {**err, "loc": tuple(p for p in err["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))}
        )
    return out or errors


def _pydantic_problems(
    src: SourceFile, base: Loc, exc: ValidationError, model: type[BaseModel]
) -> list[ConfigProblem]:
    out = []
    for err in _union_errors(exc.errors()):
        loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
        full = (*base, *loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1]) if loc else ""
            known = _fields_at(model, loc[:-1])
            hint = difflib.get_close_matches(name, known, n=1)
            msg = f"unknown key {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            msg += f"; allowed: {', '.join(sorted(known))}" if known and not hint else ""
        elif kind == "missing":
            msg = "required key is missing"
        elif kind in ("value_error", "assertion_error"):
            msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        elif kind == "literal_error":
            msg = f"{err['msg']} (got {err.get('input')!r})"
        else:
            given = err.get("input")
            shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
            msg = f"{err['msg']}{shown}"
        out.append(src.problem(full, msg))
    return out


def _unwrap(tp: Any) -> Any:
    """From a field annotation, the model its items are (if any)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
        return None
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return _unwrap(args[0]) if args else None
    if typing.get_origin(tp) is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    return tp


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _unwrap(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


# -- pass 2: merge and references -------------------------------------------------


_ITEM_MODELS: dict[str, type[BaseModel]] = {
    key: _unwrap(ConfigDocument.model_fields[key].annotation) for key in _LIST_KEYS
}


def _merge(
    sources: list[SourceFile], problems: list[ConfigProblem]
) -> tuple[ConfigDocument, dict[str, list[Origin]], dict[str, set[str]]]:
    """Validate item by item and merge all files.

    An invalid item is reported and left out; its id is remembered so that
    references to it do not produce a second, misleading problem.
    """
    origins: dict[str, list[Origin]] = {k: [] for k in _LIST_KEYS}
    lists: dict[str, list[Any]] = {k: [] for k in _LIST_KEYS}
    invalid: dict[str, set[str]] = {k: set() for k in _LIST_KEYS}
    settings: tuple[SourceFile, Any] | None = None
    top_keys = set(ConfigDocument.model_fields)
    for src in sources:
        for key in src.data:
            if key not in top_keys:
                hint = difflib.get_close_matches(str(key), sorted(top_keys), n=1)
                problems.append(
                    src.problem(
                        (key,),
                        f"unknown key {key!r}"
                        + (
                            f" (did you mean {hint[0]!r}?)"
                            if hint
                            else f"; allowed: {', '.join(sorted(top_keys))}"
                        ),
                    )
                )
        if src.data.get("version", 1) != 1:
            problems.append(
                src.problem(
                    ("version",), f"unsupported config version {src.data['version']!r} (supported: 1)"
                )
            )
        if "settings" in src.data:
            if settings is not None:
                problems.append(
                    src.problem(("settings",), f"settings are already given in {settings[0].name}")
                )
            else:
                try:
                    settings = (src, Settings.model_validate(src.data["settings"] or {}))
                except ValidationError as exc:
                    problems.extend(_pydantic_problems(src, ("settings",), exc, Settings))
        for key in _LIST_KEYS:
            items = src.data.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                problems.append(src.problem((key,), f"must be a list, got {type(items).__name__}"))
                continue
            model = _ITEM_MODELS[key]
            for i, raw in enumerate(items):
                try:
                    item = model.model_validate(raw)
                except ValidationError as exc:
                    problems.extend(_pydantic_problems(src, (key, i), exc, model))
                    ident = raw.get("id", raw.get("key")) if isinstance(raw, dict) else None
                    if isinstance(ident, str):
                        invalid[key].add(ident)
                    continue
                lists[key].append(item)
                origins[key].append(Origin(src, (key, i)))
    fields: dict[str, Any] = {k: tuple(v) for k, v in lists.items()}
    merged = ConfigDocument.model_construct(
        version=1, settings=settings[1] if settings else Settings(), **fields
    )
    return merged, origins, invalid


def _duplicates(items: list[Any], origins: list[Origin], what: str, problems: list[ConfigProblem]) -> None:
    counts = Counter(i.id for i in items)
    first: dict[str, Origin] = {}
    for item, origin in zip(items, origins, strict=True):
        if counts[item.id] > 1:
            if item.id in first:
                prev = first[item.id]
                problems.append(
                    origin.problem(
                        ("id",),
                        f"duplicate {what} id {item.id!r} (first defined at {prev.src.name}:{prev.src.line_of(prev.loc)})",
                    )
                )
            else:
                first[item.id] = origin


def _check_references(
    doc: ConfigDocument,
    origins: dict[str, list[Origin]],
    invalid: dict[str, set[str]],
    problems: list[ConfigProblem],
) -> None:
    for key, what in (
        ("platforms", "platform"),
        ("landing_zones", "landing zone"),
        ("users", "user"),
        ("groups", "group"),
        ("workspaces", "workspace"),
    ):
        _duplicates(list(getattr(doc, key)), origins[key], what, problems)
    tag_keys = [t.key for t in doc.tag_definitions]
    for n, (definition, o) in enumerate(zip(doc.tag_definitions, origins["tag_definitions"], strict=True)):
        if definition.key in tag_keys[:n]:
            problems.append(o.problem(("key",), f"duplicate tag definition {definition.key!r}"))

    platforms = {p.id for p in doc.platforms}
    lz_platform = {lz.id: lz.platform for lz in doc.landing_zones}
    users = {u.id for u in doc.users}
    groups = {g.id for g in doc.groups}
    roles = set(doc.settings.project_roles)
    tags = {t.key: t for t in doc.tag_definitions}

    skip = {
        "platform": invalid["platforms"],
        "landing zone": invalid["landing_zones"],
        "user": invalid["users"],
        "group": invalid["groups"],
    }

    def ref(origin: Origin, sub: Loc, value: str, known: set[str], what: str) -> None:
        if value not in known and value not in skip.get(what, set()):
            hint = difflib.get_close_matches(value, sorted(known), n=1)
            problems.append(
                origin.problem(
                    sub,
                    f"{what} {value!r} is not defined" + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                )
            )

    for lz, o in zip(doc.landing_zones, origins["landing_zones"], strict=True):
        ref(o, ("platform",), lz.platform, platforms, "platform")
    for g, o in zip(doc.groups, origins["groups"], strict=True):
        for i, member in enumerate(g.members):
            ref(o, ("members", i), member, users, "user")

    def check_tags(origin: Origin, sub: Loc, values: dict[str, str], scope: str) -> None:
        for k, v in values.items():
            if len(v) > 256:
                problems.append(origin.problem((*sub, k), "tag values are limited to 256 characters"))
            if not tags:
                continue
            if k not in tags:
                problems.append(origin.problem((*sub, k), f"tag {k!r} has no tag definition"))
            elif scope not in tags[k].applies_to:
                problems.append(origin.problem((*sub, k), f"tag {k!r} does not apply to a {scope}"))
            elif (allowed := tags[k].allowed_values) is not None and v not in allowed:
                problems.append(
                    origin.problem((*sub, k), f"value {v!r} is not allowed (allowed: {', '.join(allowed)})")
                )
        for t in tags.values():
            if t.required and scope in t.applies_to and t.key not in values:
                problems.append(origin.problem(sub, f"required tag {t.key!r} is missing"))

    for ws, o in zip(doc.workspaces, origins["workspaces"], strict=True):
        check_tags(o, ("tags",), ws.tags, "workspace")
        for i, m in enumerate(ws.members):
            ref(o, ("members", i, "user"), m.user, users, "user")
        seen_projects: set[str] = set()
        for pi, project in enumerate(ws.projects):
            ploc = ("projects", pi)
            if project.id in seen_projects:
                problems.append(
                    o.problem((*ploc, "id"), f"duplicate project id {project.id!r} in workspace {ws.id!r}")
                )
            seen_projects.add(project.id)
            check_tags(o, (*ploc, "tags"), project.tags, "project")
            for bi, b in enumerate(project.bindings):
                bloc = (*ploc, "bindings", bi)
                if b.user:
                    ref(o, (*bloc, "user"), b.user, users, "user")
                if b.group:
                    ref(o, (*bloc, "group"), b.group, groups, "group")
                if b.role not in roles:
                    problems.append(
                        o.problem(
                            (*bloc, "role"),
                            f"role {b.role!r} is not a project role (roles: {', '.join(sorted(roles))})",
                        )
                    )
            seen_platforms: set[str] = set()
            for ti, t in enumerate(project.tenants):
                tloc = (*ploc, "tenants", ti)
                ref(o, (*tloc, "platform"), t.platform, platforms, "platform")
                if t.platform in seen_platforms:
                    problems.append(
                        o.problem(
                            (*tloc, "platform"),
                            f"project already has a tenant on platform {t.platform!r} (at most one per platform)",
                        )
                    )
                seen_platforms.add(t.platform)
                ref(o, (*tloc, "landing_zone"), t.landing_zone, set(lz_platform), "landing zone")
                if (
                    t.landing_zone in lz_platform
                    and t.platform in platforms
                    and lz_platform[t.landing_zone] in platforms
                    and lz_platform[t.landing_zone] != t.platform
                ):
                    problems.append(
                        o.problem(
                            (*tloc, "landing_zone"),
                            f"landing zone {t.landing_zone!r} belongs to platform {lz_platform[t.landing_zone]!r}, not {t.platform!r}",
                        )
                    )

    imports: dict[tuple[str, str], str] = {}
    for ws, o in zip(doc.workspaces, origins["workspaces"], strict=True):
        for pi, project in enumerate(ws.projects):
            for ti, t in enumerate(project.tenants):
                if t.import_id:
                    k = (t.platform, t.import_id)
                    if k in imports:
                        problems.append(
                            o.problem(
                                ("projects", pi, "tenants", ti, "import_id"),
                                f"{t.import_id!r} is already imported by {imports[k]}",
                            )
                        )
                    imports[k] = f"{ws.id}/{project.id}"


# -- pass 3: platform plugins -------------------------------------------------------------


def _register_secrets(model: BaseModel) -> None:
    for value in model.__dict__.values():
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
        elif isinstance(value, BaseModel):
            _register_secrets(value)


def _check_platforms(
    doc: ConfigDocument,
    origins: dict[str, list[Origin]],
    registry: PluginRegistry,
    loaded: LoadedConfig,
    problems: list[ConfigProblem],
) -> None:
    types: dict[str, Any] = {}
    for p, o in zip(doc.platforms, origins["platforms"], strict=True):
        try:
            ptype = types[p.id] = registry.platform_type(p.type)
        except MeshcoreError as exc:
            problem = o.problem(("type",), str(exc))
            problem.plugin = True
            problems.append(problem)
            continue
        try:
            cfg = ptype.config_model.model_validate(p.config, context={"config_dir": o.src.path.parent})
            _register_secrets(cfg)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(o.src, (*o.loc, "config"), exc, ptype.config_model))
            continue
        loaded.platforms[p.id] = PlatformSpec(id=p.id, type=p.type, name=p.name or p.id, config=cfg)

    lz_origin: dict[str, Origin] = {}
    for lz, o in zip(doc.landing_zones, origins["landing_zones"], strict=True):
        lz_origin[lz.id] = o
        lz_type = types.get(lz.platform)
        if lz_type is None:
            continue
        ptype = lz_type
        model = ptype.landing_zone_model
        lz_cfg: Any = lz.config
        if model is not None:
            try:
                lz_cfg = model.model_validate(lz.config, context={"config_dir": o.src.path.parent})
            except ValidationError as exc:
                problems.extend(_pydantic_problems(o.src, (*o.loc, "config"), exc, model))
                continue
        elif lz.config:
            problems.append(
                o.problem(("config",), f"platform type {ptype.name!r} takes no landing-zone config")
            )
            continue
        loaded.landing_zones[lz.id] = LandingZoneSpec(
            id=lz.id,
            platform=lz.platform,
            name=lz.name or lz.id,
            auto_approve_deletion=lz.deletion.auto_approve,
            config=lz_cfg,
        )

    if problems:
        return
    from meshcore.desired import desired_tenants  # needs a loaded config: imported here, not at the top

    tenants = desired_tenants(loaded)
    tenant_origin = {
        tenant_key(ws.id, project.id, t.platform): Origin(wo.src, (*wo.loc, "projects", j, "tenants", k))
        for ws, wo in zip(doc.workspaces, origins["workspaces"], strict=True)
        for j, project in enumerate(ws.projects)
        for k, t in enumerate(project.tenants)
    }
    for p, o in zip(doc.platforms, origins["platforms"], strict=True):
        platform = loaded.platforms[p.id]
        lzs = [lz for lz in loaded.landing_zones.values() if lz.platform == p.id]
        mine = [t for t in tenants if t.platform_id == p.id]
        try:
            found = registry.call("meshplatform_validate", platform, landing_zones=lzs, tenants=mine)
        except MeshcoreError as exc:
            problem = o.problem(("type",), str(exc))
            problem.plugin = True
            problems.append(problem)
            continue
        for prob in found:
            base: tuple[str, ...]
            if prob.tenant and prob.tenant in tenant_origin:
                origin, base = tenant_origin[prob.tenant], ()
            elif prob.landing_zone and prob.landing_zone in lz_origin:
                origin, base = lz_origin[prob.landing_zone], ("config",)
            else:
                origin, base = o, ("config",)
            sub = tuple(int(x) if x.isdigit() else x for x in prob.path.split(".") if x)
            problems.append(origin.problem((*base, *sub), prob.message))


def describe_problems(problems: list[ConfigProblem]) -> str:
    return "\n".join(str(p) for p in problems)


__all__ = ["ConfigError", "LoadedConfig", "describe_problems", "format_loc", "load_config"]
