"""Bad teacher and rewriter replies: each kind is retried a bounded number of times, then the documented
fallback is used, and every case is logged and counted for the stage record."""

from __future__ import annotations

import json
import logging

import pytest

from masa.rewriter.infer import rewrite
from masa.skills.library import Skill, SkillLibrary
from masa.teacher.replies import classify_reply, log_rejections, rewriter_rejections, teacher_record
from masa.teacher.teachers import EditTeacher, LLMTeacher
from tests.fakes import ScriptedLLM

PREFILL = '[{"skill_id": "'  # the teacher's prefill: its replies continue it
SKILLS = [Skill("gen_001", "Look", "Look around first.")]
POOL = [Skill("pool_001", "Wait", "Wait when unsure.")]
BAD_CONTINUATIONS = {
    "empty": "",
    "truncated": 'x", "title": "Explore", "principle": "Open every do',
    "not_json": 'x" "title": oops}]',
    "wrong_schema": 'x", "title": "Explore"}]',
    "unchanged": 'x", "title": "Look", "principle": "Look around first."}]',
}
VALID = 'x", "title": "Explore", "principle": "Open every door before you focus."}]'


@pytest.mark.parametrize(
    ("reply", "note", "kind"),
    [
        ("", "", "empty"),
        ("   \n", "", "empty"),
        (PREFILL, "", "empty"),
        ("{}", "", "empty"),
        ("Sure! Here are the skills you asked for.", "", "not_json"),
        ('{"general_skills": [{"skill_id": "g1", "title": "T", "princ', "", "truncated"),
        ('Here: {"general_skills": [}', "", "not_json"),
        ('{"general_skills": []}', "", "wrong_schema"),
        (PREFILL + BAD_CONTINUATIONS["unchanged"], "reply repeats the input skills unchanged", "unchanged"),
        (PREFILL + VALID, "reply is far longer than the input (runaway generation)", "runaway"),
    ],
)
def test_reply_kinds(reply, note, kind):
    assert classify_reply(reply, note) == kind


def teacher(replies, retries):
    llm = ScriptedLLM("teacher", replies=replies)
    return llm, LLMTeacher(llm, EditTeacher(POOL), retries=retries)


def test_every_bad_kind_is_rejected_and_retried_until_a_valid_reply(caplog):
    _, llm_teacher = teacher([*BAD_CONTINUATIONS.values(), VALID], retries=len(BAD_CONTINUATIONS))
    result = llm_teacher.rewrite(SKILLS, "general", "analysis", {}, [], seed=0)
    assert result.source == "llm" and result.skills[0].principle == "Open every door before you focus."
    record = teacher_record(llm_teacher)
    assert record == {
        "replies": {"rewrite": {"calls": 6, "valid": 1, "rejected": dict.fromkeys(BAD_CONTINUATIONS, 1)}},
        "fallbacks": 0,
    }
    with caplog.at_level(logging.WARNING, logger="masa.teacher.replies"):
        log_rejections("smollm2 stage 1", llm_teacher.transcript)
    for kind in BAD_CONTINUATIONS:
        assert f"smollm2 stage 1: rewrite reply rejected ({kind}" in caplog.text
    assert len([r for r in caplog.records if r.name == "masa.teacher.replies"]) == len(BAD_CONTINUATIONS)


@pytest.mark.parametrize("kind", list(BAD_CONTINUATIONS))
def test_bounded_retries_then_the_edit_fallback(kind):
    llm, llm_teacher = teacher([BAD_CONTINUATIONS[kind]], retries=2)
    result = llm_teacher.rewrite(SKILLS, "general", "analysis", {}, [], seed=0)
    assert llm.usage.calls == 3  # one attempt and two retries, no more
    assert result.source.startswith("edit:") and result.skills != SKILLS  # the documented fallback
    assert teacher_record(llm_teacher) == {
        "replies": {"rewrite": {"calls": 3, "valid": 0, "rejected": {kind: 3}}},
        "fallbacks": 1,
    }
    assert llm_teacher.fallbacks == 1


def test_fallbacks_are_counted_per_rewrite_from_the_transcript():
    _, llm_teacher = teacher(["", "", VALID, "", ""], retries=1)
    sources = [llm_teacher.rewrite(SKILLS, "general", "a", {}, [], seed=i).source for i in range(3)]
    # rewrite 1: two empty replies -> fallback; rewrite 2: valid at once; rewrite 3: two empty -> fallback
    assert [s.split(":")[0] for s in sources] == ["edit", "llm", "edit"]
    assert teacher_record(llm_teacher)["fallbacks"] == 2 == llm_teacher.fallbacks


BASE = SkillLibrary.load("resources/skills/scienceworld.json")
CATEGORY = "find-living-thing"
GOOD_VIEW = json.dumps(
    {
        "general_skills": [{"skill_id": "g1", "title": "Explore", "principle": "Open doors."}],
        "task_specific_skills": {
            CATEGORY: [{"skill_id": "t1", "title": "Life", "principle": "Seek animals."}]
        },
    }
)
REWRITER_BAD = {
    "empty": "",
    "not_json": "I would suggest exploring more.",
    "truncated": GOOD_VIEW[: len(GOOD_VIEW) // 2],
    "wrong_schema": json.dumps({"general_skills": [{"skill_id": "g1", "title": "no principle"}]}),
}


@pytest.mark.parametrize("kind", list(REWRITER_BAD))
def test_rewriter_bad_reply_is_retried_then_keeps_the_input_and_is_counted(kind):
    llm = ScriptedLLM("rewriter", replies=[REWRITER_BAD[kind]])
    result = rewrite(llm, "card", BASE, CATEGORY, "find a living thing", retries=2)
    assert llm.usage.calls == 3 and result.fell_back and result.library == BASE
    assert rewriter_rejections(result.raw, result.valid) == {kind: 3}


def test_rewriter_recovers_on_a_retry_and_counts_only_the_rejected_reply():
    llm = ScriptedLLM("rewriter", replies=[REWRITER_BAD["truncated"], GOOD_VIEW])
    result = rewrite(llm, "card", BASE, CATEGORY, "find a living thing", retries=2)
    assert result.valid and result.attempts == 2
    assert rewriter_rejections(result.raw, result.valid) == {"truncated": 1}
