"""ALFWorld: generated games are winnable by their stored walkthroughs, splits never share a game file, and
an official-style data folder is read with the paper's split and categories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("alfworld")

from masa.envs.alfworld import ALFWorld, collect
from masa.envs.alfworld_games import CATEGORIES, GameSettings, build_games, check_disjoint, file_hash
from masa.stages.context import make_environment, task_sets

# Small scenes keep the build at ~2 s per game: one search and one evaluation game per task type.
SETTINGS = GameSettings(games=(("train", 1), ("test", 1)), max_receptacles=5, distractors=1, seed=3)


@pytest.fixture(scope="session")
def games_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("alfworld") / "alfworld-generated"
    build_games(out, SETTINGS)
    return out


@pytest.fixture(scope="session")
def manifest(games_dir: Path) -> dict:
    return json.loads((games_dir / "manifest.json").read_text())


@pytest.fixture
def env(games_dir: Path):
    environment = ALFWorld("alfworld-generated", "generated", games_dir, max_steps=50)
    yield environment
    environment.close()


def walkthrough(env: ALFWorld, instance: str) -> list[str]:
    env.games()
    return json.loads(env._paths[instance].read_text())["walkthrough"]


def test_every_task_type_is_built_for_search_and_evaluation(manifest: dict) -> None:
    for split in ("train", "test"):
        assert sorted(g["category"] for g in manifest["games"] if g["split"] == split) == sorted(CATEGORIES)


@pytest.mark.parametrize("category", CATEGORIES)
def test_stored_walkthrough_wins(env: ALFWorld, category: str) -> None:
    [task] = env.instances(category, "train")
    observation = env.reset(task)
    assert observation.task_description.startswith("Your task is to:")
    steps = walkthrough(env, task.instance)
    outcomes = []
    for action in steps:
        assert action in observation.candidates  # the expert only uses admissible commands
        outcome = env.step(action)
        outcomes.append(outcome)
        observation = outcome.observation
    assert outcomes[-1].won and outcomes[-1].done and outcomes[-1].score == 1.0
    assert not any(o.won or o.done for o in outcomes[:-1])
    assert not any(o.no_op for o in outcomes)


def test_search_and_evaluation_games_are_disjoint_by_file_hash(games_dir: Path, manifest: dict) -> None:
    hashes = {split: set() for split in ("train", "test")}
    for game in manifest["games"]:
        digest = file_hash(games_dir / game["path"])
        assert digest == game["sha256"]  # the manifest describes the files on disk
        hashes[game["split"]].add(digest)
    assert len(hashes["train"]) == len(hashes["test"]) == len(CATEGORIES)
    assert not hashes["train"] & hashes["test"]
    overlapping = {"games": [dict(manifest["games"][0], split=s) for s in ("train", "test")]}
    with pytest.raises(ValueError, match="share game files"):
        check_disjoint(overlapping)


def test_generation_is_seeded(tmp_path: Path, manifest: dict) -> None:
    one = GameSettings(
        categories=("look_at_obj_in_light",), games=(("train", 1),), max_receptacles=5, distractors=1, seed=3
    )
    again = build_games(tmp_path / "again", one)
    expected = [g["sha256"] for g in manifest["games"] if g["category"] == "look_at_obj_in_light"][:1]
    assert [g["sha256"] for g in again["games"]] == expected


def test_no_op_and_success_detection(env: ALFWorld) -> None:
    [task] = env.instances("pick_and_place", "test")
    env.reset(task)
    outcome = env.step("examine the moon")
    assert outcome.no_op and not outcome.won and outcome.score == 0.0 and not outcome.done
    assert outcome.observation.text == "Nothing happens."
    env.reset(task)
    for action in walkthrough(env, task.instance):
        outcome = env.step(action)
    assert outcome.won and not outcome.no_op


def test_episode_ends_at_max_steps(games_dir: Path) -> None:
    short = ALFWorld("alfworld-generated", "generated", games_dir, max_steps=2)
    [task] = short.instances("heat", "train")
    short.reset(task)
    assert not short.step("look").done
    assert short.step("look").done
    with pytest.raises(RuntimeError):
        short.step("look")
    short.close()


def official_folder(root: Path, games_dir: Path, manifest: dict) -> Path:
    """A tiny copy of alfworld-download's layout: generated trials under train/ and valid_seen/ names, plus
    a movable trial and an unsolvable game that ALFWorld itself would skip."""
    data = root / "json_2.1.1"
    for game in manifest["games"]:
        trial = (games_dir / game["path"]).parent
        folder = "train" if game["split"] == "train" else "valid_seen"
        shutil.copytree(trial, data / folder / trial.parent.name / "trial_T2019_0")
    source = next(g for g in manifest["games"] if g["split"] == "train")
    trial = (games_dir / source["path"]).parent
    shutil.copytree(trial, data / "train" / "pick_and_place_with_movable_recep-X-Y-Z-1" / "trial_T1")
    unsolvable = data / "train" / f"{trial.parent.name}-copy" / "trial_T2"
    shutil.copytree(trial, unsolvable)
    game = json.loads((unsolvable / "game.tw-pddl").read_text())
    (unsolvable / "game.tw-pddl").write_text(json.dumps(dict(game, solvable=False)))
    return data


def test_official_layout_gives_the_paper_split_and_categories(
    tmp_path: Path, games_dir: Path, manifest: dict
) -> None:
    data = official_folder(tmp_path, games_dir, manifest)
    assert len(collect(data, "train")) == len(CATEGORIES)  # movable and unsolvable trials skipped
    env = make_environment(
        "alfworld-official", {"source": "official", "data_dir": str(data), "tasks": list(CATEGORIES)}
    )
    assert env.label == "ALFWorld (official games)" and env.max_steps == 50
    for category in CATEGORIES:
        [test] = env.instances(category, "test")
        assert test.instance.startswith("valid_seen/")
        searchable = env.instances(category, "train") + env.instances(category, "dev")
        assert [t.instance.split("/")[0] for t in searchable] == ["train"]
        outcome = None
        env.reset(test)
        for action in walkthrough(env, test.instance):
            outcome = env.step(action)
        assert outcome is not None and outcome.won
    env.close()
    with pytest.raises(FileNotFoundError, match="valid_unseen"):
        ALFWorld("alfworld-official", "official", data, eval_split="valid_unseen").games()


def test_generated_task_sets_are_disjoint_and_labelled(games_dir: Path) -> None:
    params = {"source": "generated", "data_dir": str(games_dir), "tasks": ["clean", "cool"], "max_steps": 9}
    env = make_environment("alfworld-generated", params)
    assert "not comparable" in env.label and env.categories() == ["clean", "cool"]
    search = task_sets(env, {"search_instances": 1}, seed=0, use="search")
    evaluation = task_sets(env, {"eval_instances": 1}, seed=0, use="evaluation")
    assert [t.split for ts in search.search.values() for t in ts] == ["train", "train"]
    assert [t.split for ts in evaluation.evaluation.values() for t in ts] == ["test", "test"]


def test_an_environment_name_must_state_its_source() -> None:
    with pytest.raises(ValueError, match="alfworld-official"):
        make_environment("alfworld-generated", {"source": "official", "data_dir": "x"})
    with pytest.raises(ValueError, match="alfworld-generated"):
        make_environment("alfworld", {"source": "generated"})


def test_config_defaults_to_all_six_task_types_and_keeps_sources_apart() -> None:
    import copy

    import yaml

    from masa.config import ConfigError, validate_config
    from tests.conftest import REPO

    schema = REPO / "config" / "schema.yaml"
    base = yaml.safe_load(
        (REPO / "tests" / "config" / "tiny.yaml").read_text()
    )  # the default has no ALFWorld
    base["evaluation"].pop("external_libraries")  # a path inside the tiny run's working directory
    config = copy.deepcopy(base)
    del config["environments"]["alfworld-generated"]["tasks"]
    validate_config(config, schema)
    assert config["environments"]["alfworld-generated"]["tasks"] == list(CATEGORIES)
    assert config["environments"]["alfworld-generated"]["source"] == "generated"
    for env, settings in (
        ("alfworld-generated", {"data_dir": "/data/json_2.1.1"}),  # official games under the generated name
        ("alfworld-official", {"source": "generated", "data_dir": "/data/json_2.1.1"}),
        ("alfworld-official", {}),  # official without its data folder
    ):
        config = copy.deepcopy(base)
        config["environments"][env] = {**config["environments"].get(env, {}), **settings}
        with pytest.raises(ConfigError, match=env):
            validate_config(config, schema)


def test_the_engine_plays_generated_games_in_lockstep_as_one_at_a_time(games_dir: Path) -> None:
    """Two games side by side in one process (a spawned environment) play exactly as one by one."""
    from dataclasses import asdict

    from masa.rollout.agent import Agent, AgentConfig
    from masa.rollout.engine import Engine, EpisodeJob, environment_pool
    from tests.fakes import HashLLM

    env = ALFWorld("alfworld-generated", "generated", games_dir, max_steps=6)
    jobs = [
        EpisodeJob(task, "", 0) for c in ("clean", "pick_and_place") for task in env.instances(c, "train")
    ]
    config = AgentConfig(policy="score", repeat_penalty=0.5)
    alone = [Agent(HashLLM(name="fake"), config).play(env, j.task, j.skills_text, j.seed, 0.25) for j in jobs]
    pool = environment_pool(env, 2)
    together = Engine(Agent(HashLLM(name="fake"), config), pool, 0.25).play(jobs)
    assert len({id(e._env) for e in pool}) == 2  # two game engines, one per environment

    def played(episode):
        return {k: v for k, v in asdict(episode).items() if k != "seconds"}

    assert [played(e) for e in together] == [played(e) for e in alone]
    assert sum(e.steps for e in together) > len(jobs)  # episodes ran past their first step
    for environment in pool:
        environment.close()
