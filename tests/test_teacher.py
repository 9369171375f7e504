import json
import random
from dataclasses import dataclass, field
from typing import ClassVar

import jsonschema
import pytest

from masa.rollout.agent import EpisodeResult, Step
from masa.skills.library import Skill
from masa.teacher.teachers import (
    EDIT_OPERATORS,
    MISTAKES_SCHEMA,
    SKILLS_SCHEMA,
    WEAKNESSES_SCHEMA,
    EditTeacher,
    LLMTeacher,
    apply_edit,
    parse_skill_list,
)
from tests.fakes import ScriptedLLM

MISTAKE = '[{"mistake_id": "'  # the prefill of the attribution step


def without_prefill(text: str, prefill: str) -> str:
    assert text.startswith(prefill)
    return text[len(prefill) :]


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
    assert [(c.step, c.valid, c.attempt) for c in teacher.transcript] == [
        ("rewrite", False, 1),
        ("rewrite", False, 2),
        ("rewrite", True, 0),  # the fallback's answer is in the transcript too
    ]
    assert teacher.transcript[-1].note == "fallback: edit teacher"
    assert teacher.transcript[-1].reply.startswith(result.source)
    assert len(llm.prompts) == 2  # one try plus one retry


def test_unchanged_reply_is_not_accepted():
    unchanged = json.dumps([s.to_dict() for s in SKILLS])[len('[{"skill_id": "') :]
    teacher = LLMTeacher(ScriptedLLM(name="t", replies=[unchanged]), EditTeacher(POOL), retries=0)
    assert teacher.rewrite(SKILLS, "general", "", {}, [], seed=0).source.startswith("edit:")


def test_weaknesses_come_from_measured_behaviour():
    found = EditTeacher(POOL).weaknesses({}, [failed_episode()])
    assert any("change nothing" in w for w in found) and any("loops" in w for w in found)


def test_attribution_is_json_in_the_common_mistakes_format():
    reply = without_prefill(
        json.dumps(
            [
                {
                    "mistake_id": "x",
                    "description": "Repeats look around",
                    "why_it_happens": "no memory",
                    "how_to_avoid": "Move to a new room after one look",
                }
            ]
        ),
        MISTAKE,
    )
    llm = ScriptedLLM(name="t", replies=["{broken", reply])
    teacher = LLMTeacher(llm, EditTeacher(POOL), retries=1)
    analysis = teacher.attribute([failed_episode()], "general")
    assert "Repeats look around" in analysis and "instead: Move to a new room" in analysis
    assert "Observed:" in analysis and "sw/find/train/1" in analysis  # the measured digest stays
    assert [(c.step, c.valid, c.attempt) for c in teacher.transcript] == [
        ("attribute", False, 1),
        ("attribute", True, 2),
    ]
    assert "not the procedure of any task" in teacher.transcript[0].prompt  # Stage 1 asks for general causes


def test_attribution_without_a_valid_reply_falls_back_to_the_digest():
    teacher = LLMTeacher(
        ScriptedLLM(name="t", replies=['x", "description": "loops"}]']), EditTeacher(POOL), retries=0
    )
    analysis = teacher.attribute([failed_episode()], "find")
    assert analysis.startswith("Observed:") and teacher.fallbacks == 1
    assert "non-empty description" in teacher.transcript[0].note
    assert teacher.transcript[-1].note == "fallback: edit teacher"


def test_weaknesses_are_a_json_list_plus_the_measured_ones():
    reply = without_prefill(json.dumps(["Loops on one action for many steps"]), '["')
    teacher = LLMTeacher(ScriptedLLM(name="t", replies=[reply]), EditTeacher(POOL))
    found = teacher.weaknesses({"family": "X"}, [failed_episode()])
    assert found[0] == "Loops on one action for many steps"
    assert any("change nothing" in w for w in found)
    assert teacher.transcript[0].step == "weaknesses" and "family: X" in teacher.transcript[0].prompt


def test_stage2_prompt_shows_the_card_the_frozen_general_skills_and_the_best_past_sets():
    llm = ScriptedLLM(name="t", replies=["nope"])
    teacher = LLMTeacher(llm, EditTeacher(POOL), retries=0)
    history = [(SKILLS, 0.5), (SKILLS[:1], 0.25)]
    teacher.rewrite(POOL, "find", "loops", {"family": "SmolLM2"}, history, seed=0, frozen=[SKILLS[1]])
    prompt = teacher.transcript[0].prompt
    assert "family: SmolLM2" in prompt and "Never repeat a useless action." in prompt
    assert "reward 0.500:" in prompt and "reward 0.250:" in prompt
    teacher.rewrite(SKILLS, "general", "loops", {}, history, seed=0, frozen=[SKILLS[1]])
    assert "General skills the agent also follows" not in teacher.transcript[-2].prompt  # Stage 1 edits them


def test_hill_climbing_shows_the_teacher_the_k_best_past_sets_with_scores():
    from masa.search.hillclimb import HillClimbConfig, climb_general_skills
    from tests.test_search import INITIAL, CountingTeacher, general, scripted

    class Recording(CountingTeacher):
        def rewrite(self, skills, scope, analysis, card, history, seed, rejected=(), frozen=()):
            self.histories = [*getattr(self, "histories", []), [r for _, r in history]]
            return super().rewrite(skills, scope, analysis, card, history, seed)

    rewards = {f"v{i}": r for i, r in enumerate([0.1, 0.5, 0.2, 0.7, 0.3, 0.6, 0.4, 0.9])}
    teacher = Recording()
    climb_general_skills(
        INITIAL, scripted(rewards, general), teacher, {}, HillClimbConfig(iterations=7, patience=7, top_k=5)
    )
    assert teacher.histories[-1] == [0.7, 0.6, 0.5, 0.4, 0.3]  # the five best so far, best first
    assert [len(h) for h in teacher.histories] == [1, 2, 3, 4, 5, 5, 5]


def test_real_teacher_path_on_the_packaged_model(smollm2_dir):
    """SmolLM2-135M as the teacher: its replies rarely validate, so the transcript must show the real prompts,
    the model's actual replies and each fallback."""
    from masa.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM(name="teacher", path=str(smollm2_dir), threads=2)
    teacher = LLMTeacher(llm, EditTeacher(POOL), retries=0, max_new_tokens=24)
    card = {"family": "SmolLM2", "weaknesses": []}
    weaknesses = teacher.weaknesses(card, [failed_episode()])
    analysis = teacher.attribute([failed_episode()], "find")
    rewrite = teacher.rewrite(SKILLS, "find", analysis, card, [(SKILLS, 0.1)], seed=0, frozen=SKILLS)
    asked = [c for c in teacher.transcript if c.attempt > 0]
    assert [c.step for c in asked] == ["weaknesses", "attribute", "rewrite"]
    assert all(c.prompt and c.reply for c in asked)
    assert "family: SmolLM2" in asked[0].prompt and "sw/find/train/1" in asked[1].prompt
    assert "General skills the agent also follows" in asked[2].prompt
    assert llm.usage.calls == 3 and llm.usage.completion_tokens > 0
    fallbacks = [c for c in teacher.transcript if c.note == "fallback: edit teacher"]
    assert len(fallbacks) == teacher.fallbacks == sum(not c.valid for c in asked)
    assert weaknesses and rewrite.skills


@dataclass
class SchemaLLM(ScriptedLLM):
    """A scripted backend that, like llama.cpp or a structured-outputs server, is handed the reply's schema."""

    follows_schema: ClassVar[bool] = True
    asked: list[tuple[str, dict | None]] = field(default_factory=list)

    def generate(self, conversations, max_new_tokens, temperature=0.0, seed=0, prefill="", schema=None):
        self.asked.append((prefill, schema))
        return super().generate(conversations, max_new_tokens, temperature, seed, prefill, schema)


def test_a_backend_that_follows_schemas_gets_each_steps_schema_and_no_prefill():
    reply = {
        "skills": [{"title": "Focus", "principle": "Focus on the asked object.", "when_to_apply": "always"}]
    }
    llm = SchemaLLM(name="teacher", replies=[json.dumps(reply)])
    teacher = LLMTeacher(llm, EditTeacher(POOL), retries=0)
    rewrite = teacher.rewrite(SKILLS, "general", "", {}, [], seed=0)
    assert rewrite.source == "llm" and [s.principle for s in rewrite.skills] == ["Focus on the asked object."]
    assert rewrite.skills[0].skill_id == "gen_001"  # the schema asks for no id: the teacher assigns it
    llm.replies = [
        json.dumps({"mistakes": [{"description": "loops", "why_it_happens": "-", "how_to_avoid": "vary"}]})
    ]
    assert "loops" in teacher.attribute([failed_episode()], "general")
    assert llm.asked == [("", SKILLS_SCHEMA), ("", MISTAKES_SCHEMA)]


def test_a_backend_without_schemas_is_prefilled_instead():
    llm = ScriptedLLM(name="teacher", replies=['g", "title": "T", "principle": "P changed"}]'])
    calls = []
    original = llm.generate
    llm.generate = lambda *a, **k: calls.append(k) or original(*a, **k)
    LLMTeacher(llm, EditTeacher(POOL), retries=0).rewrite(SKILLS, "general", "", {}, [], seed=0)
    assert calls[0]["schema"] is None and calls[0]["prefill"] == '[{"skill_id": "'


def test_teacher_schemas_accept_what_the_parsers_accept_and_bound_their_text():
    good = {"skills": [{"title": "Look", "principle": "Look around first.", "when_to_apply": "at the start"}]}
    jsonschema.validate(good, SKILLS_SCHEMA)
    assert parse_skill_list(json.dumps(good), "gen")[0].title == "Look"
    runaway = {"skills": [{"title": "Look", "principle": "x" * 1000, "when_to_apply": "now"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(runaway, SKILLS_SCHEMA)
    jsonschema.validate({"weaknesses": ["loops on one action"]}, WEAKNESSES_SCHEMA)


def test_the_rewrite_prompt_shows_rejected_proposals_and_the_failures_trajectory():
    llm = SchemaLLM(
        name="teacher", replies=[json.dumps({"skills": [SKILLS[0].to_dict() | {"principle": "New."}]})]
    )
    teacher = LLMTeacher(llm, EditTeacher(POOL), retries=0)
    analysis = teacher.attribute([failed_episode()], "general")
    assert "what it saw: 'look around' -> (nothing changed) same" in llm.prompts[-1]
    tried = [Skill("x", "Wander", "Walk in circles until something happens.")]
    teacher.rewrite(SKILLS, "general", analysis, {}, [(SKILLS, 0.3)], seed=0, rejected=[(tried, 0.1)])
    assert "Rejected (scored 0.100" in llm.prompts[-1] and "Walk in circles" in llm.prompts[-1]


def test_the_weaknesses_prompt_hides_the_cards_own_lists_and_drops_the_nothing_seen_line():
    reply = json.dumps({"weaknesses": ["Picks up objects without ever focusing on one"]})
    llm = SchemaLLM(name="t", replies=[reply])
    card = {"family": "X", "strengths": ["very fast on a CPU"], "weaknesses": []}
    won = EpisodeResult("sw/find/train/2", "find", True, 1.0, 2, 0, 1.0, 2, 20, 2, 0.1, [])
    found = LLMTeacher(llm, EditTeacher(POOL)).weaknesses(card, [won])
    assert found == ["Picks up objects without ever focusing on one"]  # no "no systematic weakness" line
    assert "family: X" in llm.prompts[0] and "very fast" not in llm.prompts[0]


def test_rewrites_are_sampled_with_their_seed_and_analyses_start_greedy():
    changed = json.dumps([{"skill_id": "x", "title": "T", "principle": "P changed", "when_to_apply": ""}])
    llm = ScriptedLLM(name="t", replies=[changed[len('[{"skill_id": "') :]])
    calls = []
    original = llm.generate
    llm.generate = lambda *a, **k: calls.append(k) or original(*a, **k)
    teacher = LLMTeacher(llm, EditTeacher(POOL), retries=0, temperature=0.6)
    teacher.rewrite(SKILLS, "general", "", {}, [], seed=7)
    llm.replies = [MISTAKE[len('[{"mistake_id": "') :] + 'm", "description": "loops"}]']
    teacher.attribute([failed_episode()], "general")
    assert [(c["temperature"], c["seed"]) for c in calls] == [(0.6, 7), (0.0, 0)]
