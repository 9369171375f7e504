import json
import random

from masa.agent import EpisodeResult, Step
from masa.skills import Skill
from masa.teacher import EDIT_OPERATORS, EditTeacher, LLMTeacher, apply_edit
from tests.fakes import ScriptedLLM

SKILLS = [
    Skill("g1", "Explore", "Look around first. Then move.", "at the start"),
    Skill("g2", "No loops", "Never repeat a useless action.", "after a no-op"),
]
POOL = [Skill("p1", "Open doors", "Open a closed door before going through it.", "a door blocks you")]


def failed_episode():
    steps = [Step("look around", "same", 0.0, True, True)] * 3
    return EpisodeResult("sw/find/train/1", "find", False, 0.0, 3, 3, -0.25, 3, 30, 3, 0.1, steps)


def test_every_edit_operator_changes_the_list_and_keeps_it_valid():
    for operator in EDIT_OPERATORS:
        edited = apply_edit(operator, SKILLS, POOL, random.Random(0))
        assert edited is not None, operator
        assert [s.to_dict() for s in edited] != [s.to_dict() for s in SKILLS], operator
        assert all(s.title and s.principle for s in edited)
    assert apply_edit("delete", SKILLS[:1], POOL, random.Random(0)) is None  # never empties a list


def test_edit_teacher_is_deterministic_for_a_seed():
    a = EditTeacher(POOL).rewrite(SKILLS, "general", "", {}, [], seed=3)
    b = EditTeacher(POOL).rewrite(SKILLS, "general", "", {}, [], seed=3)
    assert [s.to_dict() for s in a.skills] == [s.to_dict() for s in b.skills] and a.source == b.source


def test_llm_teacher_accepts_valid_json_and_assigns_ids():
    reply = json.dumps(
        [
            {
                "skill_id": "../../etc/passwd",
                "title": "Move on",
                "principle": "Leave a room after one look.",
                "when_to_apply": "after looking",
            }
        ]
    )[len('[{"skill_id": "') :]
    teacher = LLMTeacher(ScriptedLLM(name="t", replies=[reply]), EditTeacher(POOL))
    result = teacher.rewrite(SKILLS, "general", "loops", {"family": "X"}, [(SKILLS, 0.1)], seed=0)
    assert result.source == "llm"
    assert [s.skill_id for s in result.skills] == ["gen_001"]
    assert result.skills[0].principle == "Leave a room after one look."
    assert teacher.transcript[-1].valid and "family: X" in teacher.transcript[-1].prompt


def test_llm_teacher_retries_then_falls_back_to_edit_operators():
    llm = ScriptedLLM(name="t", replies=["not json at all", "also bad"])
    teacher = LLMTeacher(llm, EditTeacher(POOL), retries=1)
    result = teacher.rewrite(SKILLS, "general", "loops", {}, [], seed=0)
    assert result.source.startswith("edit:")
    assert teacher.fallbacks == 1
    assert [c.valid for c in teacher.transcript] == [False, False]
    assert len(llm.prompts) == 2  # one try plus one retry


def test_unchanged_reply_is_not_accepted():
    unchanged = json.dumps([s.to_dict() for s in SKILLS])[len('[{"skill_id": "') :]
    teacher = LLMTeacher(ScriptedLLM(name="t", replies=[unchanged]), EditTeacher(POOL), retries=0)
    assert teacher.rewrite(SKILLS, "general", "", {}, [], seed=0).source.startswith("edit:")


def test_weaknesses_come_from_measured_behaviour():
    found = EditTeacher(POOL).weaknesses({}, [failed_episode()])
    assert any("change nothing" in w for w in found) and any("loops" in w for w in found)
