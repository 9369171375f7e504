"""The model profile's preliminary rollouts never touch a search or evaluation instance (checked in code)."""

from __future__ import annotations

import json

import pytest

from masa.rollout.agent import Agent, AgentConfig
from masa.rollout.evaluator import Evaluator
from masa.skills.library import Skill, SkillLibrary
from masa.stages import profile as stages
from masa.stages.context import Context, TaskSets, task_sets
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


def test_a_stage_draws_only_its_own_instances_and_refuses_any_in_another_split():
    env = CorridorEnv()
    sets = task_sets(env, {"profile_instances": 2}, seed=0, use="profile")  # no other count needed
    assert len(sets.profile) == 2 and all(t.split == "dev" for t in sets.profile)
    assert sets.search == {"walk": []} and sets.evaluation == {"walk": []}
    search = task_sets(env, {"search_instances": 2}, seed=0, use="search")
    shared = search.search["walk"][0]
    for broken in (
        TaskSets({"walk": []}, [shared], {"walk": []}),
        TaskSets({"walk": []}, [], {"walk": [shared]}),
    ):
        with pytest.raises(ValueError, match="/search task sets overlap"):
            broken.check_disjoint(env)  # against the whole train split, not only what a search drew


def test_heldout_tasks_are_checked_against_the_other_splits_before_any_is_played():
    llm = ScriptedLLM(name="fake", liked="forward")
    dev = CorridorEnv().instances("walk", "dev")[0]
    ctx = corridor_context(TaskSets({"walk": []}, [], {"walk": [dev]}), llm)
    with pytest.raises(ValueError, match="evaluation/profile task sets overlap"):
        ctx.heldout_tasks()
    assert llm.usage.calls == 0


def test_profile_stage_summarises_weaknesses_from_its_own_instances(tmp_path, monkeypatch):
    env = CorridorEnv()
    sets = task_sets(env, {"profile_instances": 2}, seed=0, use="profile")
    card = run_profile(tmp_path, monkeypatch, sets, ScriptedLLM(name="fake"))  # waits forever: loops
    rollouts = json.loads((tmp_path / "rollouts.json").read_text())
    assert rollouts["tasks"] == [t.key for t in sets.profile] and all("/dev/" in k for k in rollouts["tasks"])
    assert any("change nothing" in w for w in card["weaknesses"])
