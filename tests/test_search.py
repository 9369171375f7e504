"""Stage 1 and Stage 2 loops with a scripted evaluation: exact rewards make every decision checkable."""

from __future__ import annotations

import math

from masa.agent import EpisodeResult
from masa.hillclimb import HillClimbConfig, climb_general_skills
from masa.rollout import Evaluation, summarise
from masa.skills import Skill, SkillLibrary
from masa.teacher import Rewrite, Teacher
from masa.ucb import UCBConfig, best_node, search_task_skills, ucb1


class CountingTeacher(Teacher):
    """Each rewrite appends one skill named after the call number; rewards are scripted by that name."""

    def __init__(self):
        self.transcript, self.calls = [], 0

    def weaknesses(self, card, episodes):
        return []

    def attribute(self, failures, scope):
        return f"{len(failures)} failures"

    def rewrite(self, skills, scope, analysis, card, history, seed):
        self.calls += 1
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
    from masa.candidates import Candidate

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
