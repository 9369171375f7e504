"""The rollout cache key is complete by construction: walking the schema, every key that reaches an episode
changes it (issue 13, group 1)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from masa.config import validate_config
from masa.envs.base import TaskInstance
from masa.rollout.settings import ENV_OPERATIONAL, MODEL_OPERATIONAL
from masa.stages.context import episode_settings

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text(encoding="utf-8"))
TASK = TaskInstance("scienceworld", "boil", "0", "test")

# Top-level sections that never reach an episode, and why; the others are walked below.
NOT_EPISODE = {
    "seed": "picks the instances, and the instance is in the key",
    "teacher": "writes skill text, and the exact text is in the key",
    "skills": "shapes the rendered skill text, which is in the key (test_skill_text_and_seed_change_the_key)",
    "hillclimb": "search loop settings",
    "ucb": "search loop settings",
    "rewriter": "writes skill text",
    "cache_dir": "where the cache lives",
    "profile_environment": "which environment builds the card, whose text the teacher reads",
    "engine": "how many episodes play side by side (test_engine: equal episodes at any width)",
    "granularity": "which levels the teacher writes; each level's exact text is in the key",
    "induction": "which episodes are analysed and how; the induced library's text is in the key",
    "lifecycle": "which skills are retired or added; the resulting text is in the key",
}
EVALUATION_NOT_EPISODE = {
    "methods",
    "seeds",
    "bootstrap_resamples",
    "swap_matrix",
    "skill_contribution",
    "max_failed_share",
    "agreement",  # scores expert states; plays no episode
    "agreement_instances",
    "external_libraries",  # which libraries are played: their text is in the key already
}


def resolve(node: dict) -> dict:
    while "$ref" in node:
        node = {
            **SCHEMA["$defs"][node["$ref"].split("/")[-1]],
            **{k: v for k, v in node.items() if k != "$ref"},
        }
    return node


def other_value(node: dict, current):
    """A valid value different from ``current`` for a schema node."""
    node = resolve(node)
    if "enum" in node:
        return next(v for v in node["enum"] if v != current)
    kind = node.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "boolean":
        return not current
    if kind == "integer":
        value = (current if current is not None else node.get("minimum", 1)) + 1
        return value if value <= node.get("maximum", value) else value - 2
    if kind == "number":
        return min((current or 0) + 0.5, node.get("maximum", 10))
    if kind == "string":
        return f"{current or ''}x"
    if kind == "array":
        items = node.get("items", {})
        return list(current or [])[:1] if "enum" in items and current and len(current) > 1 else ["x"]
    if kind == "object":
        return {"enable_thinking": False}
    raise AssertionError(f"no other value for {node}")


@pytest.fixture
def config():
    data = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    data["environments"].setdefault("alfworld-generated", {})
    data["skills"]["base"].setdefault("alfworld-generated", "x.json")
    return validate_config(data, ROOT / "config" / "schema.yaml")


def key(config, backbone: str, env: str, model_dir=None, temperature=None) -> str:
    settings = episode_settings(
        config["backbones"][backbone],
        model_dir,
        {"name": env, **config["environments"][env]},
        config["reward"]["noop_penalty"],
        temperature,
    )
    return settings.episode_key(TASK, "skills", 0)


def test_every_top_level_section_is_walked_or_said_not_to_reach_an_episode():
    walked = {"backbones", "environments", "reward", "evaluation"}
    assert set(SCHEMA["properties"]) == walked | set(NOT_EPISODE)


def test_every_backbone_setting_that_reaches_an_episode_changes_the_key(config, tmp_path):
    backbone = next(iter(config["backbones"]))
    config["backbones"][backbone]["model"] = {"path": str(tmp_path), "dtype": "bfloat16"}
    base = key(config, backbone, "scienceworld")
    model_schema = SCHEMA["$defs"]["model"]["properties"]
    agent_schema = SCHEMA["properties"]["backbones"]["additionalProperties"]["properties"]["agent"][
        "properties"
    ]
    for section, properties, skipped in (
        ("model", model_schema, MODEL_OPERATIONAL),
        ("agent", agent_schema, ()),
    ):
        for name, node in properties.items():
            changed = copy.deepcopy(config)
            spec = changed["backbones"][backbone][section]
            spec[name] = other_value(node, spec.get(name))
            same = key(changed, backbone, "scienceworld") == base
            assert same == (name in skipped), (
                f"backbones.{backbone}.{section}.{name} (skipped: {name in skipped})"
            )


def test_every_environment_setting_that_reaches_an_episode_changes_the_key(config):
    scienceworld = SCHEMA["properties"]["environments"]["properties"]["scienceworld"]["properties"]
    alfworld = SCHEMA["$defs"]["alfworld"]["properties"]
    backbone = next(iter(config["backbones"]))
    for env, properties in (("scienceworld", scienceworld), ("alfworld-generated", alfworld)):
        base = key(config, backbone, env)
        for name, node in properties.items():
            if "const" in SCHEMA["properties"]["environments"]["properties"][env].get("properties", {}).get(
                name, {}
            ):
                continue  # fixed by the environment's name, which is in the key
            changed = copy.deepcopy(config)
            settings = changed["environments"][env]
            settings[name] = other_value(node, settings.get(name))
            same = key(changed, backbone, env) == base
            assert same == (name in ENV_OPERATIONAL), f"environments.{env}.{name}"


def test_reward_and_evaluation_settings_that_reach_an_episode_change_the_key(config):
    backbone = next(iter(config["backbones"]))
    base = key(config, backbone, "scienceworld")
    for name, node in SCHEMA["properties"]["reward"]["properties"].items():
        changed = copy.deepcopy(config)
        changed["reward"][name] = other_value(node, changed["reward"][name])
        assert key(changed, backbone, "scienceworld") != base, f"reward.{name}"
    evaluation = SCHEMA["properties"]["evaluation"]["properties"]
    assert set(evaluation) == {"temperature"} | EVALUATION_NOT_EPISODE
    assert key(config, backbone, "scienceworld", temperature=0.7) != base


def test_skill_text_and_seed_change_the_key(config):
    settings = episode_settings(
        config["backbones"][next(iter(config["backbones"]))], None, {"name": "scienceworld"}, 0.25
    )
    keys = {
        settings.episode_key(TASK, "a", 0),
        settings.episode_key(TASK, "b", 0),
        settings.episode_key(TASK, "a", 1),
        settings.episode_key(TaskInstance("scienceworld", "boil", "1", "test"), "a", 0),
    }
    assert len(keys) == 4


def write_weights(folder: Path, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(content)
    return folder


def test_a_path_model_is_keyed_by_its_folder_and_its_weights(config, tmp_path):
    """The fault test's case: model.path moved from SmolLM2 to Gemma 3 under one backbone name."""
    backbone = next(iter(config["backbones"]))
    smol, gemma = write_weights(tmp_path / "smol", b"smol"), write_weights(tmp_path / "gemma", b"gemma")
    config["backbones"][backbone]["model"] = {"path": str(smol), "dtype": "bfloat16"}
    first = key(config, backbone, "scienceworld")
    config["backbones"][backbone]["model"]["path"] = str(gemma)
    assert key(config, backbone, "scienceworld") != first
    config["backbones"][backbone]["model"]["path"] = str(tmp_path / "gemma" / ".." / "smol")
    assert key(config, backbone, "scienceworld") == first  # one folder, two spellings
    write_weights(smol, b"retrained")
    assert key(config, backbone, "scienceworld") != first  # new weights in the same folder


def test_a_packaged_model_is_keyed_by_its_prepared_weights(config, tmp_path):
    backbone = next(iter(config["backbones"]))
    folder = write_weights(tmp_path / "m", b"one")
    first = key(config, backbone, "scienceworld", model_dir=str(folder))
    write_weights(folder, b"two")
    assert key(config, backbone, "scienceworld", model_dir=str(folder)) != first


def test_the_simulator_version_is_in_the_key(config, monkeypatch):
    backbone = next(iter(config["backbones"]))
    first = key(config, backbone, "scienceworld")
    monkeypatch.setattr("masa.rollout.settings.simulator_version", lambda name: "99.0")
    assert key(config, backbone, "scienceworld") != first
