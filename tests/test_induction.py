"""The induced library (masa.search.induction, masa.stages.induction, workflow/rules/induction.smk): analysts'
parse and deterministic answer, the hierarchical consolidation and its log, and the plan the workflow makes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from masa.rollout.agent import Agent, AgentConfig, EpisodeResult, Step
from masa.rollout.cost import record_cost
from masa.rollout.evaluator import Evaluator
from masa.search.induction import (
    ConsolidationLog,
    Lesson,
    analyse,
    compact_episode,
    consolidate,
    episode_slice,
    into_library,
    parse_lessons,
    reword_merged,
    rule_lessons,
)
from masa.skills.library import LibraryFormatError, Skill, SkillLibrary
from masa.stages import induction as induction_stage
from masa.stages.context import Context, TaskSets
from masa.stages.induction import analyse_episodes, consolidate_lessons
from masa.teacher.teachers import EditTeacher, LLMTeacher
from tests.conftest import REPO, snakemake
from tests.fakes import CorridorEnv, HashLLM, ScriptedLLM, fake_settings

CATEGORIES = ["boil", "find-plant"]


def episode(
    task: str, category: str, actions: list[str], scores: list[float], won: bool, backbone="b1"
) -> dict:
    steps = [Step(a, f"you {a}", s, no_op=False, valid=True) for a, s in zip(actions, scores, strict=True)]
    result = EpisodeResult(
        task, category, won, scores[-1], len(steps), 0, scores[-1], len(steps), 10 * len(steps), 3, 0.5, steps
    )
    return compact_episode(backbone, 0, result)


def lesson(title: str, principle: str, scope="general", evidence=("b1/t/0",)) -> Lesson:
    return Lesson(title, principle, "Always.", scope, tuple(evidence))


EPISODES = [
    episode("boil-1", "boil", ["go kitchen", "open stove", "look"], [0.2, 0.6, 1.0], True),
    episode("boil-2", "boil", ["go hallway", "look", "look"], [0.0, 0.0, 0.0], False),
    episode("plant-1", "find-plant", ["go outside", "pick up plant"], [0.5, 1.0], True),
    episode("plant-2", "find-plant", ["look", "look", "look"], [0.0, 0.0, 0.0], False, backbone="b2"),
]


def test_the_deterministic_analyst_names_a_failures_repeated_action_loop():
    failure = episode("boil-9", "boil", ["look", "open door", "look", "look"], [0, 0, 0, 0], False)
    lessons = rule_lessons([failure], CATEGORIES, 4)
    loops = [x for x in lessons if x.source == "loops"]
    assert len(loops) == 1 and loops[0].scope == "general" and loops[0].evidence == ("b1/boil-9/0",)
    assert "look" in loops[0].principle and "open door" not in loops[0].principle  # only the repeated one
    stalled = [x for x in lessons if x.source == "stalled"]
    assert stalled and stalled[0].scope == "boil"


def test_the_deterministic_analyst_names_the_actions_that_made_progress_in_successes():
    lessons = rule_lessons(EPISODES, CATEGORIES, 8)
    progress = {x.scope: x for x in lessons if x.source == "progress"}
    assert set(progress) == set(CATEGORIES)
    assert "open stove" in progress["boil"].principle and "go hallway" not in progress["boil"].principle
    assert len(rule_lessons(EPISODES, CATEGORIES, 2)) == 2


def test_each_slice_mixes_successes_and_failures_and_the_slices_cover_every_episode_once():
    slices = [episode_slice(EPISODES, k, 2) for k in range(2)]
    for share in slices:
        assert {e["success"] for e in share} == {True, False}
    ids = sorted(e["task"] for share in slices for e in share)
    assert ids == sorted(e["task"] for e in EPISODES)


@pytest.mark.parametrize(
    ("reply", "wrong"),
    [
        ('[{"title": "T", "principle": "P", "when_to_apply": "W", "scope": "cook"}]', "scope: 'cook'"),
        ('[{"title": "T", "principle": "  ", "when_to_apply": "W", "scope": "general"}]', "principle"),
        ('[{"title": "T", "principle": "P", "scope": "general"}]', "when_to_apply"),
        ('["just a string"]', "expected an object"),
        ("no json here", "no JSON array"),
    ],
)
def test_the_analysts_parse_rejects_invalid_replies_saying_what_was_wrong(reply, wrong):
    with pytest.raises(LibraryFormatError, match=wrong):
        parse_lessons(reply, ["general", *CATEGORIES], 4)


def test_a_valid_teacher_reply_is_used_and_an_edit_teacher_gets_the_deterministic_lessons():
    reply = json.dumps(
        {
            "lessons": [
                {
                    "title": "Heat water",
                    "principle": "Put the pot on the stove.",
                    "when_to_apply": "Boiling.",
                    "scope": "boil",
                }
            ]
        }
    )
    prefill = '{"lessons": [{"title": "'  # the model continues the prefill (a backend without schemas)
    assert reply.startswith(prefill)
    teacher = LLMTeacher(ScriptedLLM(name="t", replies=[reply[len(prefill) :]]), EditTeacher([]), retries=0)
    found = analyse(teacher, "scienceworld", EPISODES, CATEGORIES, 4, 0, 64)
    assert [(x.title, x.scope, x.source) for x in found] == [("Heat water", "boil", "llm")]
    assert found[0].evidence == ("b1/boil-1/0", "b1/boil-2/0")  # the slice's boil episodes
    edit = EditTeacher([])
    fallback = analyse(edit, "scienceworld", EPISODES, CATEGORIES, 4, 0, 64)
    assert fallback == rule_lessons(EPISODES, CATEGORIES, 4)
    assert edit.transcript[-1].step == "lessons"


def test_two_analysts_near_identical_lessons_become_one_logged_skill():
    a = lesson("Do not repeat actions", "Never repeat an action that changed nothing.", evidence=["b1/x/0"])
    b = lesson("Do not repeat actions", "Never repeat the action that changed nothing.", evidence=["b2/y/0"])
    log = ConsolidationLog()
    merged = consolidate({0: [a], 1: [b]}, log)
    assert len(merged) == 1 and merged[0].evidence == ("b1/x/0", "b2/y/0")
    assert len(log.merges) == 1 and log.merges[0]["evidence"] == ["b1/x/0", "b2/y/0"]
    library = into_library(SkillLibrary(), merged, log)
    assert [s.skill_id for s in library.general_skills] == ["ind_gen_001"]


def test_the_slices_are_merged_in_a_binary_tree_whose_rounds_are_logged():
    same = [
        lesson("Read the goal", f"Read the task goal before acting {n}.", evidence=[f"e{n}"]) for n in "ab"
    ]
    slices = {3: [same[0]], 0: [], 2: [same[1]], 1: [lesson("Open doors", "Open doors to move on.", "boil")]}
    log = ConsolidationLog()
    merged = consolidate(slices, log)
    assert log.rounds == [[[0, 1], [2, 3]], [[0, 1, 2, 3]]]
    assert [m["round"] for m in log.merges] == [1]  # the two goal lessons meet in slices 2 and 3's node
    assert sorted(x.title for x in merged) == ["Open doors", "Read the goal"]


def test_a_merged_lesson_is_reworded_by_the_teacher_only_when_the_rewording_keeps_its_sense():
    a = lesson("Do not repeat actions", "Never repeat an action that changed nothing.", evidence=["e1"])
    b = lesson("Do not repeat actions", "Never repeat the action that changed nothing.", evidence=["e2"])
    single = lesson("Open doors", "Open doors to move on.", "boil")
    merged = consolidate({0: [a, single], 1: [b]}, ConsolidationLog())
    assert [x.variants for x in merged] == [(), ("Never repeat the action that changed nothing.",)]

    def reply(principle: str) -> str:  # the continuation of the prefill, as a backend without schemas gives
        item = {"principle": principle, "when_to_apply": "After an action.", "scope": "general"}
        return 'Repeat nothing useless", ' + json.dumps(item)[1:] + "]}"

    flipped = reply("Repeat an action that changed nothing until it works.")
    good = reply("Never repeat an action that changed nothing; try another one.")
    llm = ScriptedLLM(name="t", replies=[flipped, good])
    log = ConsolidationLog()
    out = reword_merged(LLMTeacher(llm, EditTeacher([]), retries=1), merged, log, 0, 64)
    assert out[0] == single and len(llm.prompts) == 2  # only the merged lesson is asked about, retried once
    assert out[1].principle == "Never repeat an action that changed nothing; try another one."
    assert out[1].evidence == ("e1", "e2") and out[1].source == "llm-reworded"
    assert log.rewordings == [{"before": merged[1].as_dict(), "after": out[1].as_dict()}]
    kept = reword_merged(
        LLMTeacher(ScriptedLLM(name="t", replies=[flipped]), EditTeacher([]), retries=0),
        merged,
        ConsolidationLog(),
        0,
        64,
    )
    assert kept == merged  # the polarity flip is refused and the merged text kept


def test_a_conflict_keeps_the_better_supported_lesson_and_is_logged():
    do = lesson("Open the door first", "Open the door before moving.", evidence=["e1", "e2"])
    dont = lesson("Open the door first", "Do not open the door before moving.", evidence=["e3"])
    other = lesson("Read the goal", "Read the task goal carefully before acting.", scope="boil")
    log = ConsolidationLog()
    kept = consolidate({0: [dont], 1: [do, other]}, log)
    assert do in kept and dont not in kept and other in kept
    assert len(log.conflicts) == 1 and log.conflicts[0]["dropped"]["principle"] == dont.principle
    assert not log.merges


def test_deepen_keeps_the_given_librarys_skills_and_ids_and_absorbs_duplicates():
    start = SkillLibrary(
        general_skills=[Skill("gen_001", "Explore before acting", "Look around the room before you act.")],
        task_specific_skills={"boil": [Skill("boil_001", "Use the stove", "Heat the pot on the stove.")]},
    )
    lessons = [
        lesson("Explore before acting", "Look around the room before acting."),  # duplicate of gen_001
        lesson("Check the thermometer", "Read the thermometer after heating.", scope="boil"),
    ]
    log = ConsolidationLog()
    deepened = into_library(start, lessons, log)
    assert deepened.general_skills == start.general_skills
    assert [s.skill_id for s in deepened.task_specific_skills["boil"]] == ["boil_001", "ind_boil_001"]
    assert [x["skill_id"] for x in log.into_library] == ["gen_001"]


def write_episodes(tmp_path: Path) -> list[str]:
    paths = []
    for backbone in ("b1", "b2"):
        path = tmp_path / f"{backbone}.json"
        own = [e for e in EPISODES if e["backbone"] == backbone]
        path.write_text(json.dumps({"backbone": backbone, "env": "scienceworld", "episodes": own}))
        paths.append(str(path))
    return paths


def induce(tmp_path: Path, run: str, order: list[int], seed: int = 0) -> Path:
    out = tmp_path / run
    out.mkdir()
    episodes = write_episodes(tmp_path)
    lessons = []
    for k in range(2):
        lessons.append(str(out / f"{k}.json"))
        analyse_episodes(
            {"kind": "edit"}, None, "scienceworld", episodes, CATEGORIES, k, 2, 4, seed, lessons[-1]
        )
    consolidate_lessons(
        {"kind": "edit"},
        None,
        "scienceworld",
        None,
        {},
        seed,
        [lessons[k] for k in order],
        episodes,
        str(out / "library.json"),
        str(out / "consolidation.json"),
        str(out / "record.json"),
        str(out / "t.jsonl"),
    )
    return out


def test_the_induction_is_byte_identical_under_a_fixed_seed_whatever_the_order_of_the_slices(tmp_path):
    first, second = induce(tmp_path, "one", [0, 1]), induce(tmp_path, "two", [1, 0])
    library = (first / "library.json").read_bytes()
    assert library == (second / "library.json").read_bytes()
    assert (first / "consolidation.json").read_bytes() == (second / "consolidation.json").read_bytes()
    induced = SkillLibrary.load(first / "library.json")
    assert induced.general_skills and induced.task_specific_skills  # real lessons from both sides
    cost = record_cost(first / "record.json")
    assert cost.episodes == len(EPISODES) and cost.prompt_tokens == sum(e["prompt_tokens"] for e in EPISODES)


def config_with(**induction) -> dict:
    config = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
    config["evaluation"]["external_libraries"] = {}
    config["induction"] = induction
    return config


def plan(tmp_path: Path, config: dict) -> str:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copytree(REPO / "resources" / "skills", tmp_path / "resources" / "skills")
    result = snakemake(tmp_path, "-n", "-p", timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def job_counts(dry_run: str) -> dict[str, int]:
    table = dry_run.split("Job stats:")[1].split("total")[0]
    rows = [line.split() for line in table.splitlines()]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}


def test_the_plan_induces_a_library_per_environment_and_evaluates_it(tmp_path):
    start = "resources/skills/scienceworld.json"
    config = config_with(enabled=True, mode="deepen", analysts=3, library={"scienceworld": start})
    config["skills"]["base"]["scienceworld"] = "induced"
    out = plan(tmp_path, config)
    counts = job_counts(out)
    assert counts["play_induction_episodes"] == 2  # one backbone x two environments
    assert counts["analyse_episodes"] == 3 * 2 and counts["consolidate_lessons"] == 2
    assert "results/smollm2-135m/scienceworld/eval/induced.json" in out
    assert "results/smollm2-135m/alfworld-generated/eval/induced.json" in out
    blocks = out.split("rule ")
    climbs = [b for b in blocks if b.startswith("climb_general_skills:")]
    sw = next(b for b in climbs if "env=scienceworld" in b)
    assert "results/induced/scienceworld/library.json" in sw
    plays = [b for b in blocks if b.startswith("play_induction_episodes:")]
    sw_play = next(b for b in plays if "env=scienceworld" in b)
    assert start in sw_play.split("output:")[0]  # deepen plays induction.library, not the induced library
    assert not any("results/induced" in b.split("output:")[0] for b in plays)  # no cycle


class TwoCorridors(CorridorEnv):
    """The corridor under two categories: one searched, one held out."""

    def categories(self):
        return ["walk", "held"]


@pytest.mark.parametrize("start", ["resources/skills/scienceworld.json", None])
def test_the_episodes_are_the_searched_categories_search_instances_played_with_the_start_library(
    tmp_path, monkeypatch, start
):
    env = TwoCorridors()
    search = {c: env.instances(c, "train")[:2] for c in env.categories()}
    base = SkillLibrary(general_skills=[Skill("gen_001", "Walk on", "Go forward until the end.")])
    evaluator = Evaluator(Agent(HashLLM(name="fake"), AgentConfig()), env, fake_settings())
    ctx = Context(evaluator, env, TaskSets(search, [], {c: [] for c in env.categories()}), base, 0)
    played = []
    run = evaluator.run
    monkeypatch.setattr(
        evaluator, "run", lambda lib, tasks, **kw: played.append(lib) or run(lib, tasks, **kw)
    )
    monkeypatch.setattr(induction_stage, "open_context", lambda *args, **kwargs: ctx)
    out = tmp_path / "episodes.json"
    induction_stage.play_induction_episodes(
        {"name": "b1", "spec": {}}, {"name": "corridor"}, {}, ["held"], start, None, str(out)
    )
    episodes = json.loads(out.read_text())["episodes"]
    assert [(e["category"], e["task"]) for e in episodes] == [("walk", t.key) for t in search["walk"]]
    assert played == [base if start else None]
    assert all(e["trajectory"] and e["trajectory"][0]["action"] for e in episodes)
