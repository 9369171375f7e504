"""Config validation: the JSON schema (with defaults filled in) plus the checks a schema cannot express.

Errors name the key's path and what is allowed, so a typo fails at start instead of running the wrong
experiment.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from masa.envs.alfworld_games import CATEGORIES
from masa.gpus import gpu_problems
from masa.llm.packaged import PACKAGED_MODELS
from masa.methods import METHODS

# Shipped inside the package, so an installed masa validates and takes defaults without a checkout;
# config/schema.yaml is a link to it for the workflow and its readers.
SCHEMA = Path(__file__).with_name("schema.yaml")


class ConfigError(ValueError):
    pass


@functools.cache
def _schema_file(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_schema(path: str | Path = SCHEMA) -> dict[str, Any]:
    """The schema, with the values that the package registers filled in: ``evaluation.methods`` takes the
    keys of ``masa.methods.METHODS``, so a registered method is a valid config value without a second list."""
    schema = copy.deepcopy(_schema_file(Path(path).resolve()))
    methods = schema["properties"]["evaluation"]["properties"]["methods"]
    methods["items"] = {**methods.get("items", {}), "enum": list(METHODS)}
    return schema


def _schema() -> dict[str, Any]:
    return load_schema()


def schema_entry(*keys: str) -> dict[str, Any]:
    """The schema of one config key (``"skills", "max_skill_chars"``: its default, minimum, ...), with a
    ``$ref`` to a shared definition merged in, so code outside the workflow (``masa align``, a stage called
    from Python) uses the same values without a second copy of them."""
    root = _schema()
    node: dict[str, Any] = root
    for key in keys:
        node = node["properties"][key]
        if "$ref" in node:  # "#/$defs/<name>": the definition, with the node's own keys on top
            shared = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
            node = {
                **shared,
                **node,
                "properties": {**shared.get("properties", {}), **node.get("properties", {})},
            }
    return node


def schema_default(*keys: str) -> Any:
    """The schema's default of one config key."""
    return copy.deepcopy(schema_entry(*keys)["default"])


def with_schema_defaults(section: dict[str, Any], *keys: str) -> dict[str, Any]:
    """A copy of the config section at ``keys`` with every absent key that has a schema default filled in,
    nested sections included: the one source of defaults for the workflow and for Python callers alike."""
    return _fill_defaults(copy.deepcopy(section), schema_entry(*keys))


def _fill_defaults(value: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    for name, sub in schema.get("properties", {}).items():
        if name not in value and "default" in sub:
            value[name] = copy.deepcopy(sub["default"])
        if isinstance(value.get(name), dict) and "properties" in sub:
            _fill_defaults(value[name], sub)
    return value


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


def _allowed(schema: dict[str, Any]) -> str:
    """What a schema node accepts, in words: its type, bounds and choices."""
    parts = []
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        parts.append(" or ".join(kinds))
    for key, sign in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in schema:
            parts.append(f"{sign} {schema[key]}")
    if "enum" in schema:
        parts.append("one of " + ", ".join(repr(v) for v in schema["enum"]))
    return ", ".join(parts)


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{path}: {error.message}{hint}"
    if error.validator == "oneOf" and path.endswith("model"):
        return f"{path}: give exactly one of 'packaged', 'path', or 'model' with 'base_url'"
    if error.validator == "pattern" and "description" in error.schema:
        return f"{path}: {error.message} ({error.schema['description']})"
    if error.validator in ("type", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return f"{path}: {error.message} (allowed: {_allowed(error.schema)})"
    return f"{path}: {error.message}"


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Validate in place (filling defaults) and return the config; raise ConfigError naming every problem."""
    schema = load_schema(schema_path)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    problems = [_describe(e) for e in errors]
    if not problems:
        problems = expand_paths(config) + cross_field_problems(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    add_study_methods(config)
    return config


# The method that evaluates each study's library: enabling the study evaluates it.
STUDY_METHODS = {"lifecycle": "masa_lifecycle", "induction": "induced"}


def add_study_methods(config: dict[str, Any]) -> None:
    """A study that is enabled has its library evaluated: its method (``STUDY_METHODS``) is added to
    ``evaluation.methods`` (in place, after the others) when the config does not list it, so one switch
    turns the study on."""
    methods = config["evaluation"]["methods"]
    for study, method in STUDY_METHODS.items():
        if config[study]["enabled"] and method not in methods:
            methods.append(method)


# Folders of results/ that are not a backbone's: a backbone of that name would write into them.
RESERVED_RESULT_FOLDERS = (
    "granularity",
    "induced",
    "report",
    "rewriter",
    "rewriter_cross_env",
    "trajectories",
)


def run_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The slice of a validated config that every searching or evaluating stage plays episodes with (the
    ``run`` of ``masa.stages.context.open_context``), in one place for the workflow and for scripts."""
    skills = config["skills"]
    return {
        "seed": config["seed"],
        "noop_penalty": config["reward"]["noop_penalty"],
        **{
            k: skills[k]
            for k in ("retrieval", "topk", "category_map", "include_skill_files", "max_skill_chars")
        },
    }


def model_specs(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every model of the config (backbones' and the teacher's) with where it is."""
    models = [(f"backbones.{n}.model", b["model"]) for n, b in config["backbones"].items()]
    return models + ([("teacher.model", config["teacher"]["model"])] if "model" in config["teacher"] else [])


def path_slots(config: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """Every config value that is a file system path, as (where, the dict holding it, its key)."""
    slots = [("cache_dir", config, "cache_dir")] if config.get("cache_dir") else []
    slots += [(f"{where}.path", model, "path") for where, model in model_specs(config) if "path" in model]
    slots += [("rewriter.base_model", config["rewriter"], "base_model")]
    slots += [(f"skills.base.{env}", config["skills"]["base"], env) for env in config["skills"]["base"]]
    slots += [
        (f"induction.library.{env}", config["induction"]["library"], env)
        for env in config["induction"]["library"]
    ]
    slots += [
        (f"evaluation.external_libraries.{label}.{env}", paths, env)
        for label, paths in config["evaluation"]["external_libraries"].items()
        for env in paths
    ]
    slots += [
        (f"environments.{name}.data_dir", env, "data_dir")
        for name, env in config["environments"].items()
        if "data_dir" in env
    ]
    return slots


def expand_paths(config: dict[str, Any]) -> list[str]:
    """Expand ``~`` and environment variables in every path, in place: a literal ``~`` would become a folder
    named ``~`` in the working directory. A variable that is not set is a problem, not an empty string."""
    problems = []
    for where, holder, key in path_slots(config):
        expanded = os.path.expanduser(os.path.expandvars(holder[key]))
        if "$" in expanded:
            problems.append(f"{where}: {holder[key]!r} names an environment variable that is not set")
        holder[key] = expanded
    return problems


def model_path_problems(config: dict[str, Any]) -> list[str]:
    """A local ``path`` must exist now, not when the first job loads it hours later: a transformers model
    folder, or for llamacpp a .gguf file or a folder holding one (vllm may take a hub model name)."""
    problems = []
    for where, model in model_specs(config):
        backend = model.get("backend", "transformers")
        if "path" not in model:
            continue
        if backend == "transformers" and not Path(model["path"]).is_dir():
            problems.append(f"{where}.path: {model['path']!r} is not a folder (a transformers model folder)")
        if backend == "llamacpp" and not Path(model["path"]).exists():
            problems.append(
                f"{where}.path: {model['path']!r} does not exist (a .gguf file, or a folder with one)"
            )
    return problems


# A model name that a model cache (the cluster's Hugging Face cache) resolves: "organisation/name".
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def rewriter_base_problems(config: dict[str, Any]) -> list[str]:
    """``rewriter.base_model`` is a packaged model, a local transformers folder, or an organisation/name
    that the cluster's model cache resolves when the job loads it."""
    name = config["rewriter"]["base_model"]
    if name in PACKAGED_MODELS or (Path(name) / "config.json").is_file():
        return []
    if not Path(name).exists() and HUB_NAME.fullmatch(name):
        return []
    return [
        f"rewriter.base_model: {name!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}), a "
        "transformers model folder (with a config.json), nor an organisation/name model name such as "
        "Qwen/Qwen3-4B; name one of those"
    ]


def cross_field_problems(config: dict[str, Any]) -> list[str]:
    problems = model_path_problems(config) + rewriter_base_problems(config)
    profile = config.setdefault("profile_environment", next(iter(config["environments"])))
    if profile not in config["environments"]:
        problems.append(
            f"profile_environment: '{profile}' is not an environment ({', '.join(config['environments'])})"
        )
    for name in config["backbones"]:
        if name in RESERVED_RESULT_FOLDERS:
            problems.append(
                f"backbones: '{name}' is the name of a results/ folder that is not a backbone's "
                f"({', '.join(RESERVED_RESULT_FOLDERS)}); rename the backbone"
            )
    for env in config["environments"]:
        if env not in config["skills"]["base"]:
            problems.append(f"skills.base: no base library for environment '{env}'; add skills.base.{env}")
    problems += scoring_problems(config)
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
    heldout = set(config.get("rewriter", {}).get("heldout_categories", []))
    for env_name, env in config["environments"].items():
        # The rewriter trains per environment, so one environment with every category held out has no data.
        if heldout and set(env.get("tasks", [])) <= heldout:
            problems.append(
                f"rewriter.heldout_categories: holding out every category of '{env_name}' leaves nothing to "
                "train on; keep at least one of its tasks"
            )
    for env_name, env in config["environments"].items():
        problems += unknown_task_problems(env_name, env.get("tasks", []))
    for where, model in model_specs(config):
        problems += backend_problems(where, model)
    problems += disabled_input_problems(config)
    problems += external_library_problems(config)
    problems += granularity_problems(config)
    problems += induction_problems(config)
    return problems


def induction_problems(config: dict[str, Any]) -> list[str]:
    """``skills.base.<env>: induced`` and the method ``induced`` need the induction on; deepen mode needs a
    library file to start from that is not the induced library itself (its episodes would need it first)."""
    induction = config["induction"]
    problems = []
    if "induced" in config["evaluation"]["methods"] and not induction["enabled"]:
        problems.append(
            "evaluation.methods: 'induced' needs induction.enabled: true; set it or remove 'induced'"
        )
    for env, path in config["skills"]["base"].items():
        if path != "induced":
            continue
        if not induction["enabled"]:
            problems.append(
                f"skills.base.{env}: 'induced' needs induction.enabled: true; set it or name a library file"
            )
        elif induction["mode"] == "deepen" and env not in induction["library"]:
            problems.append(
                f"skills.base.{env}: 'induced' with induction.mode deepen has no library to deepen; set "
                f"induction.library.{env} to a library file, or induction.mode: scratch"
            )
    for name in induction["backbones"]:
        if name not in config["backbones"]:
            problems.append(
                f"induction.backbones: '{name}' is not a backbone ({', '.join(config['backbones'])})"
            )
    for env in induction["library"]:
        if env not in config["environments"]:
            problems.append(
                f"induction.library: '{env}' is not an environment ({', '.join(config['environments'])})"
            )
    return problems


def granularity_problems(config: dict[str, Any]) -> list[str]:
    """The granularity study pairs every level with Base Skill's evaluation, which must then be run."""
    methods = config.get("evaluation", {}).get("methods", [])
    if config.get("granularity", {}).get("enabled") and "base_skill" not in methods:
        return [
            "granularity.enabled: each level is compared with Base Skill on the same episodes; add base_skill "
            "to evaluation.methods"
        ]
    return []


def external_library_problems(config: dict[str, Any]) -> list[str]:
    """An external library names a configured environment and a file or SKILL.md folder that exists now,
    not when its evaluation job starts."""
    problems = []
    for label, paths in config["evaluation"]["external_libraries"].items():
        where = f"evaluation.external_libraries.{label}"
        for env, path in paths.items():
            if env not in config["environments"]:
                problems.append(
                    f"{where}: '{env}' is not an environment ({', '.join(config['environments'])}); "
                    "key each library by the environment it is played in"
                )
            elif not Path(path).exists():
                problems.append(
                    f"{where}.{env}: {path!r} does not exist (a library JSON or a SKILL.md folder)"
                )
    return problems


def known_tasks(env_name: str) -> list[str] | None:
    """The task names an environment offers, read without starting it; None when it cannot say."""
    if env_name == "scienceworld":
        try:
            from scienceworld.constants import ID2TASK
        except ImportError:
            return None
        return list(ID2TASK.values())
    if env_name.startswith("alfworld"):  # alfworld-generated, alfworld-official (runtime.make_environment)
        return list(CATEGORIES)
    return None


def unknown_task_problems(env_name: str, tasks: list[str]) -> list[str]:
    known = known_tasks(env_name)
    if known is None:
        return []
    problems = []
    for task in tasks:
        if task not in known:
            close = difflib.get_close_matches(task, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(
                f"environments.{env_name}.tasks: '{task}' is not a task of {env_name}; {hint}"
                f"known tasks: {', '.join(known)}"
            )
    return problems


def backend_problems(where: str, model: dict[str, Any] | None) -> list[str]:
    """A model must be loadable by its backend: a chat server needs a name and URL, a local engine weights."""
    if not model:
        return []
    backend = model.get("backend", "transformers")
    if backend == "openai" and not ("model" in model and "base_url" in model):
        return [f"{where}: backend 'openai' serves a model by name: give 'model' and 'base_url'"]
    if backend in ("transformers", "llamacpp") and not ("packaged" in model or "path" in model):
        return [
            f"{where}: backend '{backend}' loads local weights: give 'packaged' or 'path' "
            "(or set backend: openai for a served model)"
        ]
    return []


SCORING_BACKENDS = ("transformers", "vllm")  # the backends that give log-probabilities of given actions


def scoring_problems(config: dict[str, Any]) -> list[str]:
    """``policy: score`` ranks actions by their log-probability, which a chat server (openai) and the
    llamacpp backend do not give."""
    return [
        f"backbones.{name}.agent.policy: 'score' needs log-probabilities, which backend '{backend}' does not "
        "give; use policy: generate, or the transformers/vllm backend"
        for name, backbone in config["backbones"].items()
        if (backend := backbone["model"].get("backend", "transformers")) not in SCORING_BACKENDS
        and backbone["agent"]["policy"] == "score"  # defaults are filled before this check
    ]


def disabled_input_problems(config: dict[str, Any]) -> list[str]:
    """An evaluated method needs the stages that produce its library to do something."""
    searching = config["hillclimb"]["iterations"] > 0 or config["ucb"]["iterations"] > 0
    problems = []
    for method in ("masa", "rewriter"):
        if method in config["evaluation"]["methods"] and not searching:
            problems.append(
                f"evaluation.methods: '{method}' needs a search, but hillclimb.iterations and ucb.iterations "
                f"are both 0; set one of them above 0 or remove '{method}' from evaluation.methods"
            )
    if "rewriter_cross_env" in config["evaluation"]["methods"] and len(config["environments"]) < 2:
        problems.append(
            "evaluation.methods: 'rewriter_cross_env' learns from the other environments, but only "
            f"{', '.join(config['environments'])} is configured; add an environment or remove it"
        )
    return problems
