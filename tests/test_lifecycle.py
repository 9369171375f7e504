"""The skill lifecycle: retire / retain / expand follow the stated rules (masa.search.lifecycle) on scripted
contribution tables and failures; the stage measures on the search instances only; the workflow plans it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from masa.io import read_json
from masa.rollout.agent import Agent, AgentConfig, EpisodeResult, Step
from masa.rollout.cost import record_cost
from masa.rollout.evaluator import Evaluator
from masa.search import lifecycle as lc
from masa.skills.library import Mistake, Skill, SkillLibrary
from masa.stages import lifecycle as stage
from masa.stages.context import Context, TaskSets
from masa.stages.lifecycle_report import write_lifecycle_report
from masa.teacher.teachers import EditTeacher, LLMTeacher
from tests.conftest import REPO, SNAKEMAKE
from tests.fakes import CorridorEnv, ScriptedLLM, fake_settings

RULES = lc.LifecycleRules(retire_margin=0.02, min_exposure=4, expand_min_failures=2, max_new_skills=1)


def row(skill_id, mean, low, high, exposure=4, group="general"):
    return lc.ContributionRow(skill_id, group, skill_id.title(), mean, low, high, 10, exposure)


def decided(rows, rules=RULES):
    return {d.skill_id: d for d in lc.judge(rows, rules)}


def test_retire_and_retain_follow_the_stated_rule_on_a_scripted_table():
    table = [
        row("negligible", 0.0, -0.01, 0.019),
        row("young", 0.0, -0.01, 0.019, exposure=3),  # the same numbers, one episode short
        row("valuable", 0.2, 0.05, 0.3),
        row("harmful", -0.3, -0.5, -0.1),
        row("wide", 0.0, -0.2, 0.2),
        row("at_margin", 0.01, 0.0, 0.02),  # the upper end equal to the margin is not below it
    ]
    d = decided(table)
    assert {k: v.action for k, v in d.items()} == {
        "negligible": lc.RETIRE,
        "young": lc.RETAIN,
        "valuable": lc.RETAIN,
        "harmful": lc.RETIRE,
        "wide": lc.RETAIN,
        "at_margin": lc.RETAIN,
    }
    assert d["negligible"].rule.startswith("negligible") and d["harmful"].rule.startswith("harmful")
    assert d["young"].rule.startswith("not enough exposure: 3 < min_exposure 4")
    assert d["valuable"].rule.startswith("valuable") and d["wide"].rule.startswith("interval too wide")
    assert d["negligible"].evidence["contribution"]["exposure"] == 4  # the evidence is the measured row


def test_a_group_is_never_emptied_the_best_of_it_stays():
    table = [
        row("only_heat", -0.2, -0.4, -0.1, group="task:heat"),
        row("cool_a", -0.2, -0.4, -0.1, group="task:cool"),
        row("cool_b", -0.05, -0.1, 0.0, group="task:cool"),
        row("general_a", 0.0, -0.01, 0.01),
        row("general_b", 0.3, 0.1, 0.5),
    ]
    d = decided(table)
    assert d["only_heat"].action == lc.RETAIN and d["only_heat"].rule.startswith(
        "last skill of group task:heat"
    )
    assert d["cool_b"].action == lc.RETAIN and d["cool_a"].action == lc.RETIRE  # the higher mean stays
    assert d["general_a"].action == lc.RETIRE  # another general skill remains


def step(action, observation="nothing happens", no_op=True):
    return Step(action, observation, 0.0, no_op, True)


def failure(task, category, actions, observation="nothing happens"):
    trajectory = [step(a, observation) for a in actions]
    return EpisodeResult(
        task, category, False, 0.0, len(actions), len(actions), -0.25, 0, 0, 0, 0.0, trajectory
    )


HEAT = Skill("heat_1", "Heat with the microwave", "Put the apple in the microwave and heat it.", "heat tasks")
LAMP = Skill("lamp_1", "Find the lamp", "Turn on the desklamp to examine objects.", "examine tasks")
HEATING = failure("t/heat/0", "heat", ["open microwave 1", "heat apple 1 with microwave 1"])
DRAWERS = [
    failure(f"t/heat/{i}", "heat", ["go to drawer 3", "open drawer 3", "open drawer 3"]) for i in (1, 2)
]


def test_the_word_rule_attributes_a_failure_to_the_skill_whose_words_it_shares():
    assert lc.covering_skill(HEATING, [LAMP, HEAT]) == "heat_1"
    assert lc.covering_skill(DRAWERS[0], [LAMP, HEAT]) is None  # shares no content word with either
    one_word = failure("t/heat/9", "heat", ["take apple 1"])
    assert lc.covering_skill(one_word, [HEAT]) is None  # one shared word is below MIN_SHARED_WORDS


def expanded(failures, rules=RULES, teacher=None):
    teacher = teacher or EditTeacher([])
    library = SkillLibrary(task_specific_skills={"heat": [HEAT]})
    attributions = lc.attribute_failures(failures, {"heat": [HEAT]}, teacher, 0, 200)
    return lc.expand(library, failures, attributions, rules, teacher, {"family": "Fake"}, 0, 200), teacher


def test_expansion_fires_at_expand_min_failures_uncovered_failures_and_not_one_below():
    below, _ = expanded([HEATING, DRAWERS[0]])  # one uncovered: the heating failure is covered
    assert below == []
    added, teacher = expanded([HEATING, *DRAWERS])
    assert len(added) == 1
    skill, decision = added[0]
    assert decision.action == lc.ADD and decision.group == "task:heat"
    assert decision.evidence["tasks"] == ["t/heat/1", "t/heat/2"] and decision.evidence["source"] == "digest"
    assert "open drawer 3" in skill.principle  # the deterministic skill names what the failures repeated
    assert any(c.step == "lifecycle_expand:heat" for c in teacher.transcript)  # its answer is recorded
    none, _ = expanded([HEATING, *DRAWERS], RULES.__class__(0.02, 4, 2, 0))
    assert none == []


def test_a_valid_teacher_skill_is_used_and_at_most_max_new_skills_are_added():
    new = [
        {"title": f"Search drawers {i}", "principle": "Open each drawer once.", "when_to_apply": "x"}
        for i in range(3)
    ]
    replies = ['none", "none"]}', json.dumps({"skills": new})[len('{"skills": [{"title": "') :]]
    teacher = LLMTeacher(ScriptedLLM(name="t", replies=replies), EditTeacher([]), retries=0)
    added, _ = expanded(DRAWERS, teacher=teacher)
    assert [s.title for s, _ in added] == ["Search drawers 0"]  # max_new_skills = 1
    assert added[0][1].evidence["source"] == "teacher" and added[0][0].skill_id == "lifecycle_heat_001"
    assert teacher.fallbacks == 0


def test_an_invalid_teacher_reply_falls_back_and_is_logged():
    # coverage names an id that is not the library's; the new skill repeats the category's own title
    replies = ['heat_9", "none"]}', 'Heat with the microwave", "principle": "p", "when_to_apply": "w"}]}']
    teacher = LLMTeacher(ScriptedLLM(name="t", replies=replies), EditTeacher([]), retries=0)
    added, _ = expanded(DRAWERS, teacher=teacher)
    assert teacher.fallbacks == 2 and added[0][1].evidence["source"] == "digest"
    rejected = [c.note for c in teacher.transcript if not c.valid]
    assert any("not a skill id" in n for n in rejected) and any("not new" in n for n in rejected)


def test_the_lifecycle_library_drops_the_retired_and_appends_the_added():
    library = SkillLibrary(
        general_skills=[Skill("g1", "A", "a."), Skill("g2", "B", "b.")],
        task_specific_skills={"heat": [HEAT]},
        common_mistakes=[Mistake("m1", "loops", "", "")],
    )
    decisions = lc.judge([row("g1", 0.0, -0.1, 0.0), row("g2", 0.3, 0.1, 0.5)], RULES)
    new = Skill("lifecycle_heat_001", "New", "n.")
    added = [(new, lc.Decision(new.skill_id, "task:heat", lc.ADD, "expand"))]
    out = lc.apply_decisions(library, decisions, added)
    assert [s.skill_id for s in out.general_skills] == ["g2"]
    assert [s.skill_id for s in out.task_specific_skills["heat"]] == ["heat_1", "lifecycle_heat_001"]
    assert out.common_mistakes == library.common_mistakes


# --- the stage, on a fake environment and model ---------------------------------------------------------------


class TwoCorridors(CorridorEnv):
    """The corridor with two categories: 'walk' is searched, 'run' is held out."""

    def categories(self):
        return ["walk", "run"]


class SkillReader(ScriptedLLM):
    """Goes forward only when its prompt holds the word MOVE (one skill's text); otherwise waits."""

    def score(self, conversation, candidates, prefill=""):
        self.prompts.append(conversation[-1].content)
        self.usage.add(calls=1, prompt_tokens=10)
        wanted = "go forward" if "MOVE" in conversation[-1].content else "wait"
        return [1.0 if c == wanted else 0.0 for c in candidates]


LIBRARY = SkillLibrary(
    general_skills=[
        Skill("g_move", "Advance", "MOVE ahead every step."),
        Skill("g_noise", "Breathe", "Stay calm."),
    ],
    task_specific_skills={
        "walk": [Skill("w_only", "Walk", "Walking is fine.")],
        "run": [Skill("r1", "Run", "Run.")],
    },
)


def test_the_stage_measures_on_search_instances_of_searched_categories_only(tmp_path, monkeypatch):
    env = TwoCorridors()
    search = {c: env.instances(c, "train") for c in env.categories()}
    evaluation = {c: env.instances(c, "test") for c in env.categories()}
    llm = SkillReader(name="fake")
    ctx = Context(
        Evaluator(Agent(llm, AgentConfig()), env, fake_settings()),
        env,
        TaskSets(search, [], evaluation),
        LIBRARY,
        0,
    )
    monkeypatch.setattr(stage, "open_context", lambda *args, **kwargs: ctx)
    LIBRARY.save(tmp_path / "library.json")
    (tmp_path / "card.yaml").write_text("family: Fake\nparameter_count: 1000\nweaknesses: [waits]\n")
    out = {k: str(tmp_path / f"out_{k}") for k in ("library", "decisions", "record", "transcript")}
    stage.run_lifecycle(
        {"name": "fake", "spec": {}},
        {"name": "corridor"},
        {},
        {"kind": "edit"},
        {"retire_margin": 0.02, "min_exposure": 3, "expand_min_failures": 1, "max_new_skills": 1},
        ["run"],
        200,
        None,
        None,
        "unused",
        str(tmp_path / "library.json"),
        str(tmp_path / "card.yaml"),
        out["library"],
        out["decisions"],
        out["record"],
        out["transcript"],
    )
    decisions = {d["skill_id"]: d for d in read_json(out["decisions"])["decisions"]}
    assert {k: d["action"] for k, d in decisions.items()} == {
        "g_move": "retain",  # without MOVE the agent waits: contribution 1.25 on every pair
        "g_noise": "retire",
        "w_only": "retain",  # contributes nothing, but is the last of task:walk
        "r1": "not_judged",
    }
    assert decisions["g_move"]["evidence"]["contribution"]["exposure"] == 3
    assert decisions["g_move"]["evidence"]["contribution"]["mean"] == pytest.approx(1.25)
    result = SkillLibrary.load(out["library"])
    assert [s.skill_id for s in result.general_skills] == ["g_move"] and "r1" in {
        s.skill_id for s in result.task_specific_skills["run"]
    }
    # full library + the three judged items left out, 3 walk instances each: nothing of 'run' or 'test'
    record = read_json(out["record"])
    assert record["rollouts"]["episodes"] == 12 and record_cost(out["record"]).episodes == 12
    assert llm.prompts and not any("Run." in p for p in llm.prompts)  # no 'run' episode was played

    report = tmp_path / "report"
    table = write_lifecycle_report(
        [out["decisions"]], [out["record"]], ["fake"], str(report / "l.csv"), str(report / "l.md")
    )
    assert table.set_index("skill_id").loc["g_noise", "fake:decision"] == "retire"
    markdown = (report / "l.md").read_text()
    assert (
        "**retire** +0.000 [+0.000, +0.000], n=3" in markdown and "| r1: Run | **not_judged** |" in markdown
    )


# --- the workflow --------------------------------------------------------------------------------------------


def planned(tmp_path, enabled: bool) -> dict[str, int]:
    """Rule -> job count of a dry run of the tiny config with the lifecycle on or off."""
    (tmp_path / "resources" / "external").mkdir(parents=True)
    shutil.copytree(REPO / "resources" / "skills", tmp_path / "resources" / "skills")
    shutil.copy(REPO / "tests" / "config" / "release-alfworld-bank.json", tmp_path / "resources" / "external")
    overlay = tmp_path / "lifecycle.yaml"
    overlay.write_text(yaml.safe_dump({"lifecycle": {"enabled": enabled}}))
    tiny = REPO / "tests" / "config" / "tiny.yaml"
    result = subprocess.run(
        [*SNAKEMAKE, "-n", "--directory", str(tmp_path), "--configfile", str(tiny), str(overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs: dict[str, int] = {}
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            name = line.split()[1].rstrip(":")
            jobs[name] = jobs.get(name, 0) + 1
    methods = [
        line
        for line in result.stdout.splitlines()
        if "wildcards:" in line and "method=masa_lifecycle" in line
    ]
    jobs["masa_lifecycle evaluations"] = len(methods)
    return jobs


def test_with_the_lifecycle_on_the_plan_holds_it_per_backbone_and_env_its_evaluations_and_report(tmp_path):
    tiny = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
    cells = len(tiny["backbones"]) * len(tiny["environments"])
    on = planned(tmp_path / "on", True)
    assert on["run_lifecycle"] == cells and on["masa_lifecycle evaluations"] == cells
    assert on["report_lifecycle"] == 1
    off = planned(tmp_path / "off", False)
    assert (
        "run_lifecycle" not in off
        and "report_lifecycle" not in off
        and off["masa_lifecycle evaluations"] == 0
    )


def test_enabling_the_lifecycle_adds_its_method_to_the_evaluation_once():
    from masa.config import SCHEMA, validate_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["lifecycle"] = {"enabled": True}
    methods = validate_config(config, SCHEMA)["evaluation"]["methods"]
    assert methods.count("masa_lifecycle") == 1 and methods[-1] == "masa_lifecycle"
    assert validate_config(config, SCHEMA)["evaluation"]["methods"].count("masa_lifecycle") == 1
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert "masa_lifecycle" not in validate_config(config, SCHEMA)["evaluation"]["methods"]  # off by default


def test_the_report_puts_each_backbones_decision_on_the_same_skill_side_by_side(tmp_path):
    from masa.stages.lifecycle_report import lifecycle_table

    def record(backbone, rows):
        return {
            "backbone": backbone,
            "env": "corridor",
            "decisions": [d.as_dict() for d in lc.judge(rows, RULES)],
        }

    big = record("big", [row("g1", 0.3, 0.1, 0.5), row("g2", 0.3, 0.1, 0.5)])
    small = record("small", [row("g1", 0.0, -0.01, 0.01), row("g2", 0.3, 0.1, 0.5)])
    table = lifecycle_table([big, small], ["big", "small"]).set_index("skill_id")
    assert list(table.index) == ["g1", "g2"]  # one row per skill, not one per backbone
    assert (table.loc["g1", "big:decision"], table.loc["g1", "small:decision"]) == ("retain", "retire")
    assert table.loc["g1", "small:high"] == 0.01 and table.loc["g1", "big:exposure"] == 4
