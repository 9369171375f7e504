"""The model profile's preliminary rollouts never touch a search or evaluation instance (checked in code)."""

from __future__ import annotations

import json

import pytest

from masa.agent import Agent, AgentConfig
from masa.envs.base import TaskInstance
from masa.rollout import Evaluator
from masa.runtime import Context, TaskSets, task_sets
from masa.skills import Skill, SkillLibrary
from masa.stages import search as stages
from tests.fakes import CorridorEnv, ScriptedLLM, fake_settings

BASE = SkillLibrary(general_skills=[Skill("g1", "Move", "Keep moving.")])


def corridor_context(sets: TaskSets, llm: ScriptedLLM) -> Context:
    env = CorridorEnv()
    return Context(Evaluator(Agent(llm, AgentConfig()), env, fake_settings()), env, sets, BASE, 0)


def run_profile(tmp_path, monkeypatch, sets, llm):
    monkeypatch.setattr(stages, "open_context", lambda *args, **kwargs: corridor_context(sets, llm))
    return stages.build_model_profile(
        {"name": "fake", "spec": {"provenance": {"family": "Fake"}}},
        {"name": "corridor"},
        {},
        {"kind": "edit"},
        None,
        None,
        "unused",
        str(tmp_path / "card.yaml"),
        str(tmp_path / "rollouts.json"),
        str(tmp_path / "teacher.jsonl"),
    )


def test_task_sets_are_disjoint_and_overlaps_are_refused():
    sets = task_sets(
        CorridorEnv(), {"search_instances": 2, "profile_instances": 1, "eval_instances": 2}, seed=0
    )
    sets.check_disjoint()
    shared = sets.search["walk"][0]
    for broken in (
        TaskSets(sets.search, [shared], sets.evaluation),
        TaskSets(sets.search, sets.profile, {"walk": [shared]}),
    ):
        with pytest.raises(ValueError, match="overlap"):
            broken.check_disjoint()


def test_profile_stage_refuses_overlapping_instances_before_playing_any(tmp_path, monkeypatch):
    task = TaskInstance("corridor", "walk", "0", "dev")
    llm = ScriptedLLM(name="fake", liked="forward")
    with pytest.raises(ValueError, match="profile/evaluation task sets overlap"):
        run_profile(tmp_path, monkeypatch, TaskSets({"walk": []}, [task], {"walk": [task]}), llm)
    assert llm.usage.calls == 0 and not (tmp_path / "card.yaml").exists()


def test_profile_stage_summarises_weaknesses_from_its_own_instances(tmp_path, monkeypatch):
    env = CorridorEnv()
    sets = task_sets(env, {"search_instances": 1, "profile_instances": 2, "eval_instances": 1}, seed=0)
    card = run_profile(tmp_path, monkeypatch, sets, ScriptedLLM(name="fake"))  # waits forever: loops
    rollouts = json.loads((tmp_path / "rollouts.json").read_text())
    assert rollouts["tasks"] == [t.key for t in sets.profile] and all("/dev/" in k for k in rollouts["tasks"])
    assert rollouts["disjoint_from"] == {"search": 1, "evaluation": 1}
    assert any("change nothing" in w for w in card["weaknesses"])
