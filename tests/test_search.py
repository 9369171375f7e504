"""Stage 1 and Stage 2 loops with a scripted evaluation: exact rewards make every decision checkable."""

from __future__ import annotations

import logging
import math
from statistics import fmean

import pytest

from masa.rollout.agent import EpisodeResult
from masa.rollout.evaluator import Evaluation, summarise
from masa.search.acceptance import decide, paired_bootstrap_p, sign_test_p
from masa.search.candidates import Candidate, load_candidates
from masa.search.hillclimb import HillClimbConfig, climb_general_skills
from masa.search.ucb import UCBConfig, backpropagate, best_node, search_task_skills, select, ucb1
from masa.skills.library import Skill, SkillLibrary
from masa.teacher.teachers import Rewrite, Teacher


class CountingTeacher(Teacher):
    """Each rewrite appends one skill named after the call number; rewards are scripted by that name."""

    def __init__(self):
        self.transcript, self.calls, self.rejected = [], 0, []

    def weaknesses(self, card, episodes):
        return []

    def attribute(self, failures, scope):
        return f"{len(failures)} failures"

    def rewrite(self, skills, scope, analysis, card, history, seed, rejected=(), frozen=()):
        self.calls += 1
        self.rejected.append([s.title for listed, _ in rejected for s in listed])
        return Rewrite([*skills, Skill(f"s{self.calls}", f"v{self.calls}", f"p{self.calls}")], "llm")


def scripted(rewards: dict[str, float], section):
    """An evaluate() whose reward is looked up from the newest skill's title (v0 = the initial set)."""
    seen = []

    def evaluate(library: SkillLibrary, label: str) -> Evaluation:
        skills = section(library)
        name = skills[-1].title if skills else "v0"
        seen.append(name)
        episode = EpisodeResult("t", "c", False, rewards[name], 1, 0, rewards[name], 0, 0, 0, 0.0)
        return Evaluation(summarise([episode]), [episode])

    evaluate.seen = seen
    return evaluate


INITIAL = SkillLibrary(
    general_skills=[Skill("g", "v0", "p0")], task_specific_skills={"c": [Skill("t", "v0", "p")]}
)


def general(lib):
    return lib.general_skills


def test_hill_climbing_accepts_only_strict_gains_and_stops_on_patience():
    evaluate = scripted(
        {"v0": 0.2, "v1": 0.2, "v2": 0.5, "v3": 0.4, "v4": 0.5, "v5": 0.1, "v6": 9.0}, general
    )
    result = climb_general_skills(
        INITIAL, evaluate, CountingTeacher(), {}, HillClimbConfig(iterations=10, patience=3)
    )
    assert [c.accepted for c in result.candidates] == [True, False, True, False, False, False]
    assert result.best.node_id == "g2" and result.best.reward == 0.5
    assert result.stopped_by == "patience"  # v6 (reward 9) is never tried
    assert result.candidates[3].parent_id == "g2"  # rewrites start from the incumbent
    assert (
        result.best.library.task_specific_skills == INITIAL.task_specific_skills
    )  # Stage 1 leaves task skills


def test_hill_climbing_min_gain_rule():
    evaluate = scripted({"v0": 0.2, "v1": 0.25, "v2": 0.5}, general)
    config = HillClimbConfig(iterations=2, patience=3, acceptance="min_gain", min_gain=0.1)
    result = climb_general_skills(INITIAL, evaluate, CountingTeacher(), {}, config)
    assert [c.accepted for c in result.candidates] == [True, False, True]


def test_hill_climbing_resumes_from_checkpoint_to_the_same_result(tmp_path):
    rewards = {"v0": 0.1, "v1": 0.3, "v2": 0.2, "v3": 0.6, "v4": 0.1}
    full = climb_general_skills(
        INITIAL, scripted(rewards, general), CountingTeacher(), {}, HillClimbConfig(iterations=4, patience=3)
    )
    checkpoint = tmp_path / "ckpt.json"
    climb_general_skills(
        INITIAL,
        scripted(rewards, general),
        CountingTeacher(),
        {},
        HillClimbConfig(iterations=2, patience=3),
        checkpoint=checkpoint,
    )
    teacher = CountingTeacher()
    teacher.calls = 2  # the teacher is deterministic; a resumed run continues its sequence
    evaluate = scripted(rewards, general)
    resumed = climb_general_skills(
        INITIAL, evaluate, teacher, {}, HillClimbConfig(iterations=4, patience=3), checkpoint=checkpoint
    )
    assert evaluate.seen == ["v3", "v4"]  # finished iterations are not evaluated again
    assert [c.to_dict() for c in resumed.candidates] == [c.to_dict() for c in full.candidates]


def task(lib):
    return lib.task_specific_skills["c"]


def test_ucb1_formula_and_unvisited_first():
    node = Candidate("n", "t0", 1, "task", "c", INITIAL, summarise([]), [], "llm", visits=2, value_sum=1.0)
    assert math.isclose(ucb1(node, 5, 1.4), 0.5 + 1.4 * math.sqrt(math.log(5) / 2))
    node.visits = 0
    assert ucb1(node, 5, 1.4) == math.inf


def test_ucb_tree_expands_by_ucb_and_backpropagates():
    rewards = {"v0": 0.0, "v1": 1.0, "v2": 0.0, "v3": 0.5, "v4": 0.2}
    evaluate = scripted(rewards, task)
    result = search_task_skills(
        INITIAL,
        "c",
        evaluate,
        CountingTeacher(),
        {},
        UCBConfig(iterations=4, exploration=1.4, max_children=2),
    )
    nodes = {n.node_id: n for n in result.nodes}
    # The root takes two children, then UCB descends to t1 (mean 1.0 beats t2's 0.0 at equal visits).
    assert nodes["t0"].children == ["t1", "t2"]
    assert nodes["t3"].parent_id == "t1" and nodes["t4"].parent_id == "t1"
    assert nodes["t0"].visits == 5 and math.isclose(nodes["t0"].value_sum, 1.7)
    assert nodes["t1"].visits == 3 and math.isclose(nodes["t1"].value_sum, 1.7)
    assert result.best.node_id == "t1" and nodes["t3"].depth == 2
    assert result.best.library.general_skills == INITIAL.general_skills  # general skills stay frozen


def test_best_node_ties_go_to_the_shallower_node():
    rewards = {"v0": 0.5, "v1": 0.5}
    result = search_task_skills(
        INITIAL, "c", scripted(rewards, task), CountingTeacher(), {}, UCBConfig(iterations=1)
    )
    assert best_node(result.nodes).node_id == "t0"


def test_ucb_resume_continues_the_tree(tmp_path):
    rewards = {"v0": 0.0, "v1": 1.0, "v2": 0.0, "v3": 0.5}
    full = search_task_skills(
        INITIAL, "c", scripted(rewards, task), CountingTeacher(), {}, UCBConfig(iterations=3, max_children=2)
    )
    checkpoint = tmp_path / "tree.json"
    search_task_skills(
        INITIAL,
        "c",
        scripted(rewards, task),
        CountingTeacher(),
        {},
        UCBConfig(iterations=1, max_children=2),
        checkpoint=checkpoint,
    )
    teacher = CountingTeacher()
    teacher.calls = 1
    resumed = search_task_skills(
        INITIAL,
        "c",
        scripted(rewards, task),
        teacher,
        {},
        UCBConfig(iterations=3, max_children=2),
        checkpoint=checkpoint,
    )
    assert [n.to_dict() for n in resumed.nodes] == [n.to_dict() for n in full.nodes]


# --- fair acceptance --------------------------------------------------------------------------------------------
def episodes_with(rewards, tasks=None):
    tasks = tasks or [f"t{i}" for i in range(len(rewards))]
    return [
        EpisodeResult(t, "c", False, r, 1, 0, r, 1, 10, 0, 0.0) for t, r in zip(tasks, rewards, strict=True)
    ]


def test_paired_rules_need_consistent_per_episode_gains():
    incumbent = episodes_with([0.0] * 10)
    nine_of_ten = episodes_with([0.1] * 9 + [-0.05])
    six_of_ten = episodes_with([0.5] * 6 + [-0.1] * 4)  # a larger mean gain, but from fewer episodes
    assert sign_test_p([1.0] * 9 + [-1.0]) == pytest.approx(11 / 1024)
    assert decide("sign_test", nine_of_ten, incumbent) and not decide("sign_test", six_of_ten, incumbent)
    assert decide("paired_bootstrap", nine_of_ten, incumbent)
    assert not decide("paired_bootstrap", episodes_with([0.3, -0.3, 0.1]), episodes_with([0.0] * 3))
    assert decide("strict", six_of_ten, incumbent) and not decide("min_gain", six_of_ten, incumbent, 0.3)
    assert not decide("strict", incumbent, incumbent)  # equal is not a gain
    assert paired_bootstrap_p([0.2] * 5) == 0.0 and sign_test_p([0.0, 0.0]) == 1.0


def test_acceptance_refuses_candidates_played_on_other_instances():
    with pytest.raises(ValueError, match="same task instances"):
        decide("strict", episodes_with([1.0, 1.0], ["a", "b"]), episodes_with([0.0, 0.0], ["a", "c"]))


def test_hill_climbing_plays_candidate_and_incumbent_on_the_same_instances(tmp_path):
    """Through the real Evaluator: every candidate's episodes are the incumbent's instances and seeds."""
    from masa.rollout.agent import Agent, AgentConfig
    from masa.rollout.evaluator import Evaluator
    from tests.fakes import CorridorEnv, HashLLM, fake_settings

    env = CorridorEnv(length=2, max_steps=4, spread=1)
    evaluator = Evaluator(Agent(HashLLM(name="fake"), AgentConfig()), env, fake_settings(), width=2)
    suite = env.instances("walk", "train")
    result = climb_general_skills(
        INITIAL,
        lambda lib, label: evaluator.run(lib, suite, seeds=(0, 1), label=label),
        CountingTeacher(),
        {},
        HillClimbConfig(iterations=3, patience=3, acceptance="sign_test"),
    )
    keys = [[e.task for e in c.episodes] for c in result.candidates]
    assert len(keys) == 4 and all(k == keys[0] for k in keys) and len(keys[0]) == 6


def test_hill_climbing_with_a_paired_test_rejects_an_unsupported_gain():
    # Each evaluation has one episode: no paired test can reach alpha 0.05, so only strict would accept.
    evaluate = scripted({"v0": 0.2, "v1": 0.9, "v2": 0.9, "v3": 0.9}, general)
    config = HillClimbConfig(iterations=5, patience=3, acceptance="sign_test")
    result = climb_general_skills(INITIAL, evaluate, CountingTeacher(), {}, config)
    assert [c.accepted for c in result.candidates] == [True, False, False, False]
    assert result.stopped_by == "patience" and result.best.node_id == "g0"


def test_unknown_acceptance_rule_fails_naming_the_key():
    with pytest.raises(ValueError, match=r"hillclimb\.acceptance"):
        HillClimbConfig(acceptance="vibes")


# --- budgets -----------------------------------------------------------------------------------------------------
def test_hill_climbing_stops_on_its_episode_budget_and_says_so(tmp_path):
    evaluate = scripted({"v0": 0.1, "v1": 0.2, "v2": 0.3, "v3": 0.4}, general)
    checkpoint = tmp_path / "ckpt.json"
    config = HillClimbConfig(iterations=5, patience=3, budget={"episodes": 2})
    result = climb_general_skills(INITIAL, evaluate, CountingTeacher(), {}, config, checkpoint=checkpoint)
    assert evaluate.seen == ["v0", "v1"]
    assert result.stopped_by == "budget: 2 of 2 episodes played"
    assert load_candidates(checkpoint)[1]["stopped_by"] == result.stopped_by


def test_ucb_stops_on_its_token_budget():
    def evaluate(library, label):
        episode = EpisodeResult("t", "c", False, 0.5, 2, 0, 0.5, 2, 700, 0, 1.0)
        return Evaluation(summarise([episode]), [episode])

    result = search_task_skills(
        INITIAL, "c", evaluate, CountingTeacher(), {}, UCBConfig(iterations=5, budget={"tokens": 2000})
    )
    assert len(result.nodes) == 3 and result.stopped_by == "budget: 2100 of 2000 tokens used"


def test_stage_record_counts_cost_apart_from_cache_hits():
    from masa.stages.records import stage_record

    fresh = EpisodeResult("t", "c", True, 1.0, 3, 0, 1.0, 3, 300, 0, 2.0)
    cached = EpisodeResult("u", "c", False, 0.0, 4, 1, 0.0, 4, 400, 0, 1.0, cached=True)
    candidate = Candidate(
        "g0", "", 0, "general", "", INITIAL, summarise([fresh, cached]), [fresh, cached], "initial"
    )
    record = stage_record([candidate], CountingTeacher(), 0.0, best="g0", stopped_by="iterations")
    assert record["cost"] == {
        "episodes": 1,
        "cache_hits": 1,
        "env_steps": 3,
        "llm_calls": 3,
        "prompt_tokens": 300,
        "completion_tokens": 0,
        "seconds": 2.0,
        "tokens": 300,
    }
    assert record["best"] == "g0" and record["wall_seconds"] > 0


# --- UCB1 selection and back-propagation, pinned on a hand-built tree ----------------------------------------------
def node(node_id, parent, visits, value_sum, children=()):
    return Candidate(
        node_id,
        parent,
        0,
        "task",
        "c",
        INITIAL,
        summarise([]),
        [],
        "llm",
        False,
        0,
        visits,
        value_sum,
        list(children),
    )


def test_select_descends_by_ucb1_through_full_nodes():
    nodes = {
        "t0": node("t0", "", 6, 3.0, ["a", "b"]),
        "a": node("a", "t0", 4, 2.4, ["a1", "a2"]),  # mean 0.6
        "b": node(
            "b", "t0", 1, 0.2
        ),  # mean 0.2 but rarely visited: UCB1 0.2 + 1.4 sqrt(ln 6) ~ 2.03 > a's ~1.55
        "a1": node("a1", "a", 1, 0.9),
        "a2": node("a2", "a", 2, 1.0),
    }
    config = UCBConfig(exploration=1.4, max_children=2)
    assert select(nodes, "t0", config).node_id == "b"
    assert (
        select(nodes, "t0", UCBConfig(exploration=0.0, max_children=2)).node_id == "a1"
    )  # pure exploitation
    assert (
        select(nodes, "t0", UCBConfig(exploration=0.0, max_children=3)).node_id == "t0"
    )  # root still has room


def test_backpropagation_keeps_subtree_means():
    nodes = {
        "t0": node("t0", "", 1, 0.2, ["a"]),
        "a": node("a", "t0", 1, 0.4, ["b"]),
        "b": node("b", "a", 0, 0.0),
    }
    backpropagate(nodes, nodes["b"], 1.0)
    assert [(n.visits, n.value_sum) for n in nodes.values()] == [(2, 1.2), (2, 1.4), (1, 1.0)]
    assert nodes["a"].value_sum / nodes["a"].visits == pytest.approx(
        fmean([0.4, 1.0])
    )  # mean over a's subtree


def test_a_repeated_search_is_served_from_the_rollout_cache_and_recorded_as_hits(tmp_path):
    from masa.rollout.agent import Agent, AgentConfig
    from masa.rollout.evaluator import Evaluator, RolloutCache
    from masa.stages.records import stage_record
    from tests.fakes import CorridorEnv, HashLLM, fake_settings

    def run():
        env = CorridorEnv(length=2, max_steps=4, spread=1)
        llm = HashLLM(name="fake")
        evaluator = Evaluator(
            Agent(llm, AgentConfig()), env, fake_settings(), cache=RolloutCache(tmp_path), width=3
        )
        suite = env.instances("walk", "train")
        teacher = CountingTeacher()
        result = climb_general_skills(
            INITIAL,
            lambda lib, label: evaluator.run(lib, suite, label=label),
            teacher,
            {},
            HillClimbConfig(iterations=2),
        )
        return result, llm, stage_record(result.candidates, teacher, 0.0)["cost"]

    first, first_llm, first_cost = run()
    second, second_llm, second_cost = run()
    assert first_llm.usage.calls > 0 and first_cost["episodes"] == 9 and first_cost["cache_hits"] == 0
    assert second_llm.usage.calls == 0  # zero model calls
    assert second_cost == {
        **first_cost,
        "episodes": 0,
        "cache_hits": 9,
        "env_steps": 0,
        "llm_calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "seconds": 0.0,
        "tokens": 0,
    }
    assert all(e.cached for c in second.candidates for e in c.episodes)
    assert [c.reward for c in second.candidates] == [c.reward for c in first.candidates]


class Killed(Exception):
    pass


def killed_after(evaluations: int, evaluate):
    """``evaluate`` that raises (as a kill would end the job) once it has run ``evaluations`` times."""
    count = {"n": 0}

    def run(lib, label):
        if count["n"] == evaluations:
            raise Killed
        count["n"] += 1
        return evaluate(lib, label)

    return run


@pytest.mark.parametrize("search", ["hillclimb", "ucb"])
def test_a_checkpoint_made_with_other_inputs_starts_the_search_over(tmp_path, caplog, search):
    """Issue 13 group 2: kill a search, change its base library (or a setting), re-run: it starts over."""
    caplog.set_level(logging.INFO)
    checkpoint = tmp_path / "checkpoint.json"
    changed = INITIAL.with_general([Skill("g", "v0", "a changed base principle")])
    rewards = {"v0": 0.2, "v1": 0.9, "v2": 0.9, "v3": 0.9}

    def run(library, evaluate, inputs=""):
        if search == "hillclimb":
            config = HillClimbConfig(iterations=3, patience=3)
            return climb_general_skills(
                library, evaluate, CountingTeacher(), {}, config, 0, checkpoint, inputs
            )
        return search_task_skills(
            library, "c", evaluate, CountingTeacher(), {}, UCBConfig(iterations=3), 0, checkpoint, inputs
        )

    section = general if search == "hillclimb" else task
    with pytest.raises(Killed):
        run(INITIAL, killed_after(2, scripted(rewards, section)))  # killed after iteration 1's checkpoint
    resumed = run(INITIAL, killed_after(2, scripted(rewards, section)))  # same inputs: 2 evaluations left
    assert "resuming" in caplog.text and len(getattr(resumed, "candidates", None) or resumed.nodes) == 4
    checkpoint.unlink()  # as the stage does when a search finishes
    with pytest.raises(Killed):
        run(INITIAL, killed_after(2, scripted(rewards, section)))
    caplog.clear()
    result = run(changed, scripted(rewards, section))
    assert "made with other inputs or settings, starting the search over" in caplog.text
    assert "resuming" not in caplog.text
    root = (getattr(result, "candidates", None) or result.nodes)[0]
    assert root.library.general_skills[0].principle == "a changed base principle"
    checkpoint.unlink()
    with pytest.raises(Killed):
        run(changed, killed_after(2, scripted(rewards, section)))
    caplog.clear()
    with pytest.raises(
        Killed
    ):  # a changed setting (the caller's inputs): no resume, the root is played again
        run(changed, killed_after(0, scripted(rewards, section)), inputs="other model")
    assert "made with other inputs or settings" in caplog.text


def test_a_ucb_node_whose_every_episode_failed_backs_up_nothing_and_is_never_the_best():
    good = scripted({"v0": 0.3, "v2": 0.5}, task)

    def evaluate(library: SkillLibrary, label: str) -> Evaluation:
        if task(library)[-1].title != "v1":
            return good(library, label)
        dead = EpisodeResult("t", "c", False, 0.0, 0, 0, 0.0, 0, 0, 0, 0.0, error="simulator died twice")
        return Evaluation(summarise([dead]), [dead])

    config = UCBConfig(iterations=2, exploration=1.4, max_children=2)
    teacher = CountingTeacher()
    result = search_task_skills(INITIAL, "c", evaluate, teacher, {}, config)
    nodes = {n.node_id: n for n in result.nodes}
    assert teacher.rejected == [[], []]  # t1 was never played, so it did not "score no better" than t0
    assert not nodes["t1"].played and nodes["t1"].visits == 0  # its 0.0 would pull the root's mean down
    assert nodes["t0"].visits == 2 and math.isclose(nodes["t0"].value_sum, 0.8)  # root and t2 only
    assert result.best.node_id == "t2"


@pytest.mark.parametrize("search", ["hillclimb", "ucb"])
def test_a_checkpoint_of_another_format_version_is_refused_with_a_message(tmp_path, caplog, search):
    from masa.io import read_checked_json, write_checked_json
    from masa.search.loop import CHECKPOINT_VERSION

    caplog.set_level(logging.INFO)
    checkpoint = tmp_path / "checkpoint.json"
    section = general if search == "hillclimb" else task
    rewards = {"v0": 0.2, "v1": 0.9, "v2": 0.9, "v3": 0.9}

    def run(evaluate):
        if search == "hillclimb":
            config = HillClimbConfig(iterations=3, patience=3)
            return climb_general_skills(INITIAL, evaluate, CountingTeacher(), {}, config, 0, checkpoint)
        return search_task_skills(
            INITIAL, "c", evaluate, CountingTeacher(), {}, UCBConfig(iterations=3), 0, checkpoint
        )

    with pytest.raises(Killed):
        run(killed_after(2, scripted(rewards, section)))
    saved = read_checked_json(checkpoint)
    assert saved["state"]["version"] == CHECKPOINT_VERSION and "teacher" in saved["state"]
    del saved["state"]["version"]  # as a checkpoint written before versions were saved
    write_checked_json(checkpoint, saved)
    caplog.clear()
    with pytest.raises(Killed):
        run(killed_after(0, scripted(rewards, section)))  # the root is played again: no resume
    assert f"format version 1 and this masa reads version {CHECKPOINT_VERSION}" in caplog.text
    assert "resuming" not in caplog.text
