import copy
from pathlib import Path

import pytest
import yaml

from masa.config import ConfigError, schema_entry, validate_config, with_schema_defaults
from tests.conftest import REPO, snakemake

SCHEMA = Path("config/schema.yaml")


def default():
    return yaml.safe_load(Path("config/config.yaml").read_text())


def test_default_config_validates_and_gets_defaults():
    config = validate_config(default(), SCHEMA)
    assert config["backbones"]["smollm2-135m"]["agent"]["history"] == 2
    assert config["hillclimb"]["min_gain"] == 0.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["ucb"].update(explore=1.0),
            r"ucb: .*'explore' was unexpected.*allowed keys: budget, exploration",
        ),
        (lambda c: c["hillclimb"].update(patience=0), r"hillclimb.patience: 0 is less than the minimum of 1"),
        (
            lambda c: c["backbones"]["gemma3-270m"]["agent"].update(policy="guess"),
            r"backbones.gemma3-270m.agent.policy: 'guess' is not one of",
        ),
        (lambda c: c["evaluation"].update(methods=["masa", "oracle"]), r"evaluation.methods.1: 'oracle'"),
        (lambda c: c["teacher"]["model"].update(path="/x"), r"teacher.model: give exactly one of"),
        (
            lambda c: c["rewriter"].update(heldout_categories=["boil"]),
            r"rewriter.heldout_categories: 'boil' is not a task",
        ),
        (
            lambda c: c["backbones"]["smollm2-135m"].update(
                model={"backend": "openai", "model": "m", "base_url": "u"}
            ),
            r"backbones.smollm2-135m.agent.policy: 'score' needs log-probabilities",
        ),
        (lambda c: c["skills"]["base"].pop("scienceworld"), r"skills.base: no base library for environment"),
        # wrong types and out-of-range values name the key and what is allowed
        (
            lambda c: c["hillclimb"].update(iterations="ten"),
            r"hillclimb.iterations: 'ten' is not of type 'integer' \(allowed: integer, >= 0\)",
        ),
        (
            lambda c: c["reward"].update(noop_penalty=1.5),
            r"reward.noop_penalty: 1.5 is greater than the maximum of 1 \(allowed: number, >= 0, <= 1\)",
        ),
        (
            lambda c: c["teacher"].update(retries=-1),
            r"teacher.retries: -1 is less than the minimum of 0 \(allowed: integer, >= 0, <= 10\)",
        ),
        (
            lambda c: c["backbones"]["smollm2-135m"]["model"].update(timeout=0),
            r"backbones.smollm2-135m.model.timeout: 0 is less than or equal to the minimum of 0 "
            r"\(allowed: number, > 0\)",
        ),
        (lambda c: c.update(seed=1.5), r"seed: 1.5 is not of type 'integer'"),
        # a backbone without a model, or with a model its backend cannot load
        (
            lambda c: c["backbones"]["gemma3-270m"].pop("model"),
            r"backbones.gemma3-270m: 'model' is a required",
        ),
        (
            lambda c: c["backbones"]["gemma3-270m"]["model"].pop("packaged"),
            r"backbones.gemma3-270m.model: give exactly one of 'packaged', 'path', or 'model' with 'base_url'",
        ),
        (
            lambda c: c["backbones"]["gemma3-270m"]["model"].update(packaged="llama-70b"),
            r"backbones.gemma3-270m.model.packaged: 'llama-70b' is not one of \['smollm2-135m-instruct', "
            r"'gemma3-270m', 'qwen2.5-coder-1.5b-instruct'\]",
        ),
        (
            lambda c: c["backbones"]["gemma3-270m"]["model"].update(backend="llamacpp"),
            r"backbones.gemma3-270m.agent.policy: 'score' needs log-probabilities, which backend 'llamacpp'",
        ),
        (
            lambda c: c["backbones"]["gemma3-270m"].update(
                model={"backend": "openai", "packaged": "gemma3-270m"}, agent={"policy": "generate"}
            ),
            r"backbones.gemma3-270m.model: backend 'openai' serves a model by name: give 'model' and 'base_url'",
        ),
        (
            lambda c: c["teacher"].update(model={"backend": "transformers", "model": "m", "base_url": "u"}),
            r"teacher.model: backend 'transformers' loads local weights: give 'packaged' or 'path'",
        ),
        (lambda c: c["teacher"].pop("model"), r"teacher: 'model' is a required property"),
        # categories the environment does not have
        (
            lambda c: c["environments"]["scienceworld"].update(tasks=["find-living-thing", "boill"]),
            r"environments.scienceworld.tasks: 'boill' is not a task of scienceworld; did you mean 'boil'\?",
        ),
        (
            lambda c: c["rewriter"].update(heldout_categories=["find-living-thing", "find-non-living-thing"]),
            r"rewriter.heldout_categories: holding out every category of 'scienceworld' leaves nothing to train on",
        ),
        # the induced library (induction): as a base or a method only with the induction on, and deepen mode
        # needs a library file to start from, not the induced library itself
        (
            lambda c: c["skills"]["base"].update(scienceworld="induced"),
            r"skills.base.scienceworld: 'induced' needs induction.enabled: true; set it or name a library file",
        ),
        (
            lambda c: (
                c.setdefault("induction", {}).update(enabled=True),
                c["skills"]["base"].update(scienceworld="induced"),
            ),
            r"skills.base.scienceworld: 'induced' with induction.mode deepen has no library to deepen; set "
            r"induction.library.scienceworld to a library file, or induction.mode: scratch",
        ),
        (
            lambda c: c["evaluation"]["methods"].append("induced"),
            r"evaluation.methods: 'induced' needs induction.enabled: true",
        ),
        (
            lambda c: c.setdefault("induction", {}).update(enabled=True, backbones=["gpt-5"]),
            r"induction.backbones: 'gpt-5' is not a backbone",
        ),
        # a method enabled whose inputs are disabled
        (
            lambda c: (c["hillclimb"].update(iterations=0), c["ucb"].update(iterations=0)),
            r"evaluation.methods: 'masa' needs a search, but hillclimb.iterations and ucb.iterations are both 0",
        ),
    ],
)
def test_bad_config_fails_naming_the_key(edit, message):
    config = copy.deepcopy(default())
    edit(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config, SCHEMA)


@pytest.mark.parametrize(
    "induction",
    [
        {"enabled": True, "mode": "scratch"},
        {
            "enabled": True,
            "mode": "deepen",
            "library": {"scienceworld": "resources/skills/scienceworld.json"},
        },
    ],
)
def test_an_induced_base_is_fine_with_a_library_to_start_from_or_from_scratch(induction):
    config = default()
    config["induction"] = induction
    config["skills"]["base"]["scienceworld"] = "induced"
    assert validate_config(config, SCHEMA)["skills"]["base"]["scienceworld"] == "induced"


def test_a_search_free_config_is_fine_without_the_methods_that_need_a_search():
    config = default()
    config["hillclimb"]["iterations"] = config["ucb"]["iterations"] = 0
    config["evaluation"]["methods"] = ["no_skill", "base_skill"]
    validate_config(config, SCHEMA)


def test_every_problem_is_reported_at_once():
    config = default()
    config["hillclimb"]["patience"] = 0
    config["ucb"]["exploration"] = "high"
    with pytest.raises(ConfigError) as err:
        validate_config(config, SCHEMA)
    assert "hillclimb.patience" in str(err.value) and "ucb.exploration" in str(err.value)


def test_tasks_sets_that_overlap_are_refused():
    from masa.envs.base import TaskInstance
    from masa.stages.context import task_sets
    from tests.fakes import CorridorEnv

    class SharedSplits(CorridorEnv):  # an environment whose test split repeats its train split
        def instances(self, category, split):
            return [TaskInstance(self.name, category, str(i), "train") for i in range(3)]

    params = {"search_instances": 2, "profile_instances": 1, "eval_instances": 2}
    with pytest.raises(ValueError, match=r"evaluation/search task sets overlap: \['corridor/walk/train/"):
        task_sets(SharedSplits(), params, 0, "evaluation")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["environments"]["scienceworld"].update(simplifications="eassy"),
            r"environments.scienceworld.simplifications: 'eassy' does not match .*each one of easy",
        ),
        (
            lambda c: c["evaluation"].update(seeds=[0, 0]),
            r"evaluation.seeds: \[0, 0\] has non-unique elements",
        ),
        (
            lambda c: c["backbones"]["smollm2-135m"].update(model={"path": "/no/such/model"}),
            r"backbones.smollm2-135m.model.path: '/no/such/model' is not a folder",
        ),
        (
            lambda c: c["teacher"].update(model={"backend": "llamacpp", "path": "/no/such/teacher.gguf"}),
            r"teacher.model.path: '/no/such/teacher.gguf' does not exist \(a .gguf file, or a folder with one\)",
        ),
        (
            lambda c: c["backbones"].update(rewriter=c["backbones"]["smollm2-135m"]),
            r"backbones: 'rewriter' is the name of a results/ folder that is not a backbone's",
        ),
        (
            lambda c: c.update(cache_dir="$MASA_SURELY_UNSET_VARIABLE/cache"),
            r"cache_dir: '\$MASA_SURELY_UNSET_VARIABLE/cache' names an environment variable that is not set",
        ),
        (
            lambda c: c["evaluation"].update(external_libraries={"release": {"alfworld": "bank.json"}}),
            r"evaluation.external_libraries.release: 'alfworld' is not an environment \(scienceworld\)",
        ),
        (
            lambda c: c["evaluation"].update(
                external_libraries={"release": {"scienceworld": "/no/bank.json"}}
            ),
            r"evaluation.external_libraries.release.scienceworld: '/no/bank.json' does not exist",
        ),
        (
            lambda c: c["evaluation"].update(external_libraries={"a release": {"scienceworld": "x.json"}}),
            r"evaluation.external_libraries: 'a release' does not match",
        ),
    ],
)
def test_values_that_change_the_experiment_are_checked_at_start(edit, message):
    """Issue 13 group 4: each of these was accepted and then ran another experiment (or failed late)."""
    config = default()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config, SCHEMA)


def test_paths_have_home_and_environment_variables_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("MASA_MODELS", str(tmp_path))
    config = default()
    config["cache_dir"] = "~/masa-cache"
    config["environments"]["scienceworld"]["simplifications"] = "teleportAction,openDoors"
    config["backbones"]["smollm2-135m"]["model"] = {"path": "$MASA_MODELS"}
    validate_config(config, SCHEMA)
    assert config["cache_dir"] == str(Path.home() / "masa-cache")
    assert config["backbones"]["smollm2-135m"]["model"]["path"] == str(tmp_path)


def test_the_profile_environment_is_configurable_and_checked():
    """Issue 13 group 7: the card's environment was silently the first key of environments."""
    config = validate_config(default(), SCHEMA)
    assert config["profile_environment"] == next(iter(config["environments"]))
    chosen = default()
    chosen["profile_environment"] = list(chosen["environments"])[-1]
    assert validate_config(chosen, SCHEMA)["profile_environment"] == list(chosen["environments"])[-1]
    wrong = default()
    wrong["profile_environment"] = "alfworld"
    with pytest.raises(ConfigError, match=r"profile_environment: 'alfworld' is not an environment"):
        validate_config(wrong, SCHEMA)


def test_both_alfworld_environments_know_their_categories():
    """So a base library's category typo is an error for ALFWorld too (runtime.open_context), not a warning."""
    from masa.config import known_tasks
    from masa.envs.alfworld_games import CATEGORIES

    assert known_tasks("alfworld-generated") == known_tasks("alfworld-official") == list(CATEGORIES)


def test_a_yaml_syntax_error_in_the_config_names_its_line_and_column(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("seed: 0\nbackbones: [a, b\nteacher: {}\n")
    result = snakemake(tmp_path, "-n", timeout=120)
    assert result.returncode != 0
    assert "config/config.yaml: not valid YAML at line 3, column 8" in result.stdout + result.stderr


def test_code_called_from_python_gets_the_workflows_defaults():
    """Issue 15: defaults were written twice and had drifted (max_candidates 30 vs 24, TrainConfig's
    target_modules, epochs, max_steps, max_length vs the schema's); now config/schema.yaml is their one source."""
    from masa.rewriter.train import TrainConfig
    from masa.stages.context import make_environment
    from masa.stages.rewriter import train_config

    assert TrainConfig() == train_config(with_schema_defaults({}, "rewriter"), seed=0)
    assert TrainConfig().target_modules == tuple(schema_entry("rewriter", "target_modules")["default"])
    env = make_environment("scienceworld", {"tasks": ["find-living-thing"]})  # no JVM until a reset
    assert (
        env.builder.max_candidates
        == schema_entry("environments", "scienceworld", "max_candidates")["default"]
    )
    assert env.max_steps == schema_entry("environments", "scienceworld", "max_steps")["default"]
    alfworld = with_schema_defaults({}, "environments", "alfworld-generated")
    assert alfworld["max_steps"] == 50 and alfworld["source"] == "generated"  # the shared $defs, then its own


def test_a_registered_method_is_a_valid_config_value_and_has_its_label(monkeypatch):
    """Adding a method is one masa.methods entry: the schema's enum and the report's label follow it."""
    from masa import methods

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["evaluation"]["methods"] = ["base_skill", "trial"]
    with pytest.raises(ConfigError, match="'trial' is not one of"):
        validate_config(copy.deepcopy(config), SCHEMA)
    trial = methods.Method("trial", "Trial", "results/{backbone}/{env}/general/library.json")
    monkeypatch.setitem(methods.METHODS, "trial", trial)
    assert validate_config(copy.deepcopy(config), SCHEMA)["evaluation"]["methods"] == ["base_skill", "trial"]
    assert methods.method_label("trial") == "Trial"


def test_no_settings_class_defines_a_default_of_its_own():
    """Every field of a settings dataclass that is a config key defaults to the schema's value: the schema is
    the one source of defaults, for the workflow and for Python callers alike."""
    import dataclasses

    from masa.config import load_schema
    from masa.rewriter.train import TrainConfig
    from masa.rollout.agent import AgentConfig
    from masa.search.hillclimb import HillClimbConfig
    from masa.search.ucb import UCBConfig
    from masa.stages.context import Machine
    from masa.teacher.teachers import LLMTeacher

    agent = load_schema()["properties"]["backbones"]["additionalProperties"]["properties"]["agent"]
    sections = [
        (HillClimbConfig, schema_entry("hillclimb")),
        (UCBConfig, schema_entry("ucb")),
        (TrainConfig, schema_entry("rewriter")),
        (LLMTeacher, schema_entry("teacher")),
        (AgentConfig, agent),
        (
            Machine,
            {"properties": {**schema_entry("engine")["properties"], "cache_dir": schema_entry("cache_dir")}},
        ),
    ]
    compared = 0
    for cls, section in sections:
        for field in dataclasses.fields(cls):
            schema = section["properties"].get(field.name, {})
            if "default" not in schema:
                continue  # not a config key with a default (an internal constant, or a required value)
            default = field.default_factory() if field.default is dataclasses.MISSING else field.default
            expected = schema["default"]
            assert (list(default) if isinstance(default, tuple) else default) == expected, (cls, field.name)
            compared += 1
    assert compared >= 30


def test_the_rewriters_base_model_is_a_packaged_model_a_folder_or_a_model_name(tmp_path):
    """Issue 17: the paper's rewriter is Qwen3-4B, which no package ships; a cluster names it or its folder."""
    folder = tmp_path / "qwen3-4b"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    for name in ("gemma3-270m", str(folder), "Qwen/Qwen3-4B"):
        config = default()
        config["rewriter"]["base_model"] = name
        assert validate_config(config, SCHEMA)["rewriter"]["base_model"] == name
    for name in (str(tmp_path / "missing"), str(tmp_path), "qwen3"):  # no folder, no config.json, no org/
        config = default()
        config["rewriter"]["base_model"] = name
        with pytest.raises(ConfigError, match=r"rewriter.base_model: .* is neither a packaged model"):
            validate_config(config, SCHEMA)


def test_a_cross_environment_rewriter_needs_another_environment():
    config = default()
    config["evaluation"]["methods"].append("rewriter_cross_env")
    with pytest.raises(ConfigError, match="'rewriter_cross_env' learns from the other environments"):
        validate_config(config, SCHEMA)
