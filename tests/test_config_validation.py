"""Config validation: every class of problem is reported with file, line, key path and a clear message."""

from __future__ import annotations

import pytest

from meshcore.config import load_config
from meshcore.errors import ConfigError


def problems_of(path, registry) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, registry)
    return [str(p) for p in info.value.problems]


def test_valid_config_loads_with_plugin_models(write_config, meshcore_registry, base_config):
    loaded = load_config(write_config(base_config), meshcore_registry)
    assert set(loaded.platforms) == {"demo"}
    assert loaded.landing_zones["sandbox"].config.folder == "/sandbox"
    assert loaded.landing_zones["sandbox"].auto_approve_deletion is True


def test_unknown_key_names_file_line_path_and_suggests(write_config, meshcore_registry, base_config):
    base_config["workspaces"][0]["projects"][0]["tenants"][0]["landingzone"] = "x"
    path = write_config(base_config)
    [msg] = problems_of(path, meshcore_registry)
    assert msg.startswith(f"{path}:")
    assert (
        "workspaces[0].projects[0].tenants[0].landingzone: unknown key 'landingzone' (did you mean 'landing_zone'?)"
        in msg
    )
    line = int(msg.split(":")[1])
    assert "landingzone" in path.read_text().splitlines()[line - 1]


def test_bad_identifiers(write_config, meshcore_registry, base_config):
    base_config["workspaces"][0]["id"] = "Payments_Team"
    base_config["workspaces"][0]["projects"][0]["id"] = "x" * 31
    msgs = problems_of(write_config(base_config), meshcore_registry)
    assert any(
        "workspaces[0].id: workspace id 'Payments_Team' is invalid: use 1-16 lowercase" in m for m in msgs
    )
    assert any("workspaces[0].projects[0].id: project id" in m and "1-30" in m for m in msgs)


def test_undefined_references_all_reported_at_once(write_config, meshcore_registry, base_config):
    p = base_config["workspaces"][0]["projects"][0]
    p["tenants"][0]["landing_zone"] = "sandbx"
    p["bindings"][0]["user"] = "alicia"
    p["bindings"][1]["group"] = "nobody"
    p["bindings"][0]["role"] = "owner"
    base_config["landing_zones"][1]["platform"] = "nowhere"
    msgs = problems_of(write_config(base_config), meshcore_registry)
    text = "\n".join(msgs)
    assert "tenants[0].landing_zone: landing zone 'sandbx' is not defined (did you mean 'sandbox'?)" in text
    assert "bindings[0].user: user 'alicia' is not defined (did you mean 'alice'?)" in text
    assert "bindings[1].group: group 'nobody' is not defined" in text
    assert "bindings[0].role: role 'owner' is not a project role" in text
    assert "landing_zones[1].platform: platform 'nowhere' is not defined" in text
    assert len(msgs) == 5


def test_duplicate_ids(write_config, meshcore_registry, base_config):
    base_config["users"].append({"id": "alice", "email": "a2@example.com"})
    base_config["workspaces"][0]["projects"][1]["id"] = "p1"
    msgs = problems_of(write_config(base_config), meshcore_registry)
    assert any("users[2].id: duplicate user id 'alice' (first defined at" in m for m in msgs)
    assert any("projects[1].id: duplicate project id 'p1' in workspace 'ws1'" in m for m in msgs)


def test_platform_type_without_plugin(write_config, meshcore_registry, base_config):
    base_config["platforms"][0]["type"] = "azure"
    msgs = problems_of(write_config(base_config), meshcore_registry)
    assert any(
        "platforms[0].type: plugin 'azure': no installed plugin provides platform type 'azure' (installed: fake)"
        in m
        for m in msgs
    )


def test_plugin_config_model_errors_have_full_paths(write_config, meshcore_registry, base_config):
    base_config["platforms"][0]["config"] = {"state_fle": "x"}
    base_config["landing_zones"][0]["config"]["guardrails"] = "not-a-list"
    msgs = problems_of(write_config(base_config), meshcore_registry)
    assert any(
        "platforms[0].config.state_fle: unknown key 'state_fle' (did you mean 'state_file'?)" in m
        for m in msgs
    )
    assert any("landing_zones[0].config.guardrails:" in m for m in msgs)


def test_plugin_semantic_validation_hook(write_config, meshcore_registry, base_config):
    base_config["landing_zones"][0]["config"]["role_mappings"] = {"admin": "owner"}
    msgs = problems_of(write_config(base_config), meshcore_registry)
    assert any(
        "landing_zones[0].config.role_mappings.admin: platform role 'owner' is forbidden" in m for m in msgs
    )


def test_env_interpolation_and_missing_variable(write_config, meshcore_registry, base_config, monkeypatch):
    monkeypatch.setenv("MC_STATE_FILE", "/tmp/from-env.json")
    base_config["platforms"][0]["config"] = {
        "state_file": "${MC_STATE_FILE}",
        "name_pattern": "${MC_UNSET:-{workspace}}-{project}",
    }
    loaded = load_config(write_config(base_config), meshcore_registry)
    assert loaded.platforms["demo"].config.state_file == "/tmp/from-env.json"
    assert loaded.platforms["demo"].config.name_pattern == "{workspace}-{project}"
    base_config["users"][0]["name"] = "${MC_DEFINITELY_UNSET}"
    msgs = problems_of(write_config(base_config), meshcore_registry)
    assert any("users[0].name: environment variable MC_DEFINITELY_UNSET is not set" in m for m in msgs)


def test_yaml_syntax_error_and_duplicate_keys(write_config, meshcore_registry):
    path = write_config("platforms:\n  - id: a\n    id: b\n    type: fake\n")
    [msg] = problems_of(path, meshcore_registry)
    assert msg == f"{path}:3: platforms[0].id: duplicate key"
    path = write_config("platforms: [\n  {id: a\n")
    [msg] = problems_of(path, meshcore_registry)
    assert "invalid YAML" in msg and msg.startswith(str(path))


def test_wrong_types_and_top_level(write_config, meshcore_registry, base_config):
    base_config["settings"] = {"concurrency": "many"}
    base_config["workspaces"][0]["projects"][0]["bindings"][0]["expires"] = "next tuesday"
    msgs = problems_of(write_config(base_config), meshcore_registry)
    assert any("settings.concurrency: Input should be a valid integer" in m for m in msgs)
    assert any("bindings[0].expires:" in m and "date" in m for m in msgs)
    [msg] = problems_of(write_config("- just\n- a list\n"), meshcore_registry)
    assert "top level must be a mapping" in msg


def test_binding_needs_exactly_one_subject(write_config, meshcore_registry, base_config):
    base_config["workspaces"][0]["projects"][0]["bindings"][0]["group"] = "devs"
    msgs = problems_of(write_config(base_config), meshcore_registry)
    assert any("bindings[0]: a binding names exactly one of 'user' or 'group'" in m for m in msgs)


def test_tag_rules(write_config, meshcore_registry, base_config):
    base_config["tag_definitions"].append({"key": "owner", "required": True, "applies_to": ["workspace"]})
    base_config["workspaces"][0]["projects"][0]["tags"] = {"environment": "staging", "colour": "red"}
    msgs = problems_of(write_config(base_config), meshcore_registry)
    text = "\n".join(msgs)
    assert "projects[0].tags.environment: value 'staging' is not allowed (allowed: dev, prod)" in text
    assert "projects[0].tags.colour: tag 'colour' has no tag definition" in text
    assert "workspaces[0].tags: required tag 'owner' is missing" in text


def test_two_tenants_on_one_platform_and_foreign_landing_zone(write_config, meshcore_registry, base_config):
    base_config["platforms"].append({"id": "other", "type": "fake"})
    base_config["landing_zones"].append({"id": "other-lz", "platform": "other"})
    tenants = base_config["workspaces"][0]["projects"][0]["tenants"]
    tenants.append({"platform": "demo", "landing_zone": "prod"})
    base_config["workspaces"][1]["projects"][0]["tenants"][0]["landing_zone"] = "other-lz"
    msgs = problems_of(write_config(base_config), meshcore_registry)
    assert any("tenants[1].platform: project already has a tenant on platform 'demo'" in m for m in msgs)
    assert any("landing zone 'other-lz' belongs to platform 'other', not 'demo'" in m for m in msgs)


def test_directory_of_files_reports_the_right_file(tmp_path, write_config, meshcore_registry, base_config):
    people = {"users": base_config.pop("users"), "groups": base_config.pop("groups")}
    write_config(base_config, "conf/main.yaml")
    write_config(people, "conf/people.yaml")
    loaded = load_config(tmp_path / "conf", meshcore_registry)
    assert {u.id for u in loaded.document.users} == {"alice", "bob"}
    people["users"][1]["email"] = "not-an-email"
    write_config(people, "conf/people.yaml")
    [msg] = problems_of(tmp_path / "conf", meshcore_registry)
    assert msg.startswith(str(tmp_path / "conf" / "people.yaml")) and "users[1].email" in msg


def test_missing_file(tmp_path, meshcore_registry):
    [msg] = problems_of(tmp_path / "nope.yaml", meshcore_registry)
    assert "does not exist" in msg
