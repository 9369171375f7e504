"""Config validation: the JSON schema (with defaults filled in) plus the checks a schema cannot express.

Errors name the key's path and what is allowed, so a typo fails at start instead of running the wrong
experiment.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from masa.gpus import gpu_problems


class ConfigError(ValueError):
    pass


def _with_defaults(validator_class: type) -> type:
    """A validator that fills ``default`` values of absent properties while validating."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: dict, instance: Any, schema: dict) -> Any:
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{path}: {error.message}{hint}"
    if error.validator == "oneOf" and path.endswith("model"):
        return f"{path}: give exactly one of 'packaged', 'path', or 'model' with 'base_url'"
    return f"{path}: {error.message}"


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Validate in place (filling defaults) and return the config; raise ConfigError naming every problem."""
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    problems = [_describe(e) for e in errors]
    if not problems:
        problems = cross_field_problems(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def cross_field_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    for env in config["environments"]:
        if env not in config["skills"]["base"]:
            problems.append(f"skills.base: no base library for environment '{env}'; add skills.base.{env}")
    for name, backbone in config["backbones"].items():
        if (
            backbone["model"].get("backend") == "openai"
            and backbone.get("agent", {}).get("policy") == "score"
        ):
            problems.append(
                f"backbones.{name}.agent.policy: 'score' needs log-probabilities a chat server does not give; "
                "use policy: generate, or the transformers/vllm backend"
            )
    for name, backbone in config["backbones"].items():
        problems += gpu_problems(f"backbones.{name}.model", backbone["model"])
    if "model" in config["teacher"]:
        problems += gpu_problems("teacher.model", config["teacher"]["model"])
    categories = {t for env in config["environments"].values() for t in env.get("tasks", [])}
    for cat in config.get("rewriter", {}).get("heldout_categories", []):
        if cat not in categories:
            problems.append(
                f"rewriter.heldout_categories: '{cat}' is not a task of any environment "
                f"(tasks: {', '.join(sorted(categories))})"
            )
    rewriter = config.get("rewriter", {})
    if rewriter.get("heldout_categories") and set(rewriter["heldout_categories"]) >= categories:
        problems.append("rewriter.heldout_categories: holding out every category leaves nothing to train on")
    return problems
