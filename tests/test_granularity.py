"""The granularity study: rewording keeps ids and categories, levels grow in length, the table pairs each level
with Base Skill and marks each backbone's best level."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from masa.skills.granularity import level_problems, level_words, principle_words, truncated_level
from masa.skills.library import SkillLibrary
from masa.stages.granularity import granularity_markdown, granularity_table, reword_levels
from masa.teacher.rewording import reword_library, reword_schema
from masa.teacher.teachers import EditTeacher, LLMTeacher
from tests.fakes import ScriptedLLM

REPO = Path(__file__).resolve().parents[1]
BASE = SkillLibrary.load(REPO / "resources" / "skills" / "scienceworld.json")


def ids_and_categories(library: SkillLibrary) -> tuple:
    return (
        [(s.skill_id, s.title) for s in library.general_skills],
        {c: [s.skill_id for s in ss] for c, ss in library.task_specific_skills.items()},
        library.common_mistakes,
    )


@pytest.mark.parametrize("base_file", ["scienceworld.json", "alfworld.json"])
@pytest.mark.parametrize("levels", [2, 3, 5])
def test_truncated_levels_keep_ids_and_categories_and_grow_in_length(base_file, levels):
    base = SkillLibrary.load(REPO / "resources" / "skills" / base_file)
    cut = [truncated_level(base, k, levels) for k in range(1, levels + 1)]
    assert level_problems(base, cut) == []
    assert all(ids_and_categories(level) == ids_and_categories(base) for level in cut)
    lengths = [principle_words(level) for level in cut]
    assert lengths == sorted(set(lengths))


def test_the_check_names_a_changed_id_a_moved_skill_and_lengths_out_of_order():
    levels = [truncated_level(BASE, k, 3) for k in range(1, 4)]
    renamed = levels[0].copy()
    renamed.general_skills[0].skill_id = "gen_999"
    moved = levels[1].copy()
    category = next(iter(moved.task_specific_skills))
    moved.task_specific_skills["elsewhere"] = moved.task_specific_skills.pop(category)
    problems = level_problems(BASE, [renamed, moved, levels[0]])
    assert any(p.startswith("level 1: its skills") for p in problems)
    assert any(
        p.startswith("level 2: its task skills are not in the base library's categories") for p in problems
    )
    assert any(p.startswith("level 3 has") and "must grow" in p for p in problems)


def reply_for(skills, words: int) -> str:
    """A reply as the model writes it after the prefill the teacher starts it with."""
    text = json.dumps([{"title": s.title, "principle": " ".join(["act"] * words) + "."} for s in skills])
    return text.removeprefix('[{"title": "')


def test_a_valid_teacher_rewording_is_used_and_keeps_ids_titles_and_categories():
    groups = [BASE.general_skills, *BASE.task_specific_skills.values()]
    llm = ScriptedLLM(name="t", replies=[reply_for(g, 8) for g in groups])
    teacher = LLMTeacher(llm, EditTeacher([]), retries=0)
    library, sources = reword_library(teacher, BASE, 1, 3, seed=0)
    assert set(sources.values()) == {"llm"}
    assert ids_and_categories(library) == ids_and_categories(BASE)
    assert [s.when_to_apply for s in library.general_skills] == [s.when_to_apply for s in BASE.general_skills]
    assert all(s.principle == " ".join(["act"] * 8) + "." for s in library.general_skills)
    assert "about 8 words per principle" in llm.prompts[0]


def test_a_reply_of_the_wrong_length_or_count_falls_back_to_the_truncation_and_says_so():
    general = BASE.general_skills
    too_long = reply_for(general, 70)  # level 1 of 3 asks for about 8 words
    too_few = reply_for(general[:-1], 8)
    for reply in (too_long, too_few):
        teacher = LLMTeacher(ScriptedLLM(name="t", replies=[reply]), EditTeacher([]), retries=0)
        library, sources = reword_library(teacher, BASE, 1, 3, seed=0)
        assert sources["general"] == "truncated"
        assert library.general_skills == truncated_level(BASE, 1, 3).general_skills
        assert teacher.fallbacks == list(sources.values()).count("truncated")
        assert any(not c.valid for c in teacher.transcript)


def test_the_stage_writes_every_level_and_falls_back_as_a_whole_when_the_levels_are_out_of_order(tmp_path):
    """A teacher that answers every level at the same length breaks the order: every level is the truncation."""
    base_path = REPO / "resources" / "skills" / "scienceworld.json"
    outs = [str(tmp_path / f"level{k}.json") for k in (1, 2, 3)]
    spec = {"kind": "edit"}
    reword_levels(
        spec,
        None,
        str(base_path),
        "scienceworld",
        {"seed": 0},
        ["find-living-thing"],
        3,
        0,
        outs,
        str(tmp_path / "record.json"),
        str(tmp_path / "teacher.jsonl"),
    )
    written = [SkillLibrary.load(p) for p in outs]
    assert written == [truncated_level(BASE, k, 3, ["find-living-thing"]) for k in (1, 2, 3)]
    record = json.loads((tmp_path / "record.json").read_text())
    shown = ["find-living-thing"]  # words are counted where the agent reads them: general + its categories
    assert [lv["principle_words"] for lv in record["levels"]] == [principle_words(w, shown) for w in written]
    assert record["base_principle_words"] == principle_words(BASE, shown) < principle_words(BASE)


def record(backbone: str, method: str, rewards: list[float], source: str | None = None) -> dict:
    return {
        "env": "scienceworld",
        "backbone": backbone,
        "method": method,
        "library_source": source or backbone,
        "summary": {"reward_mean": sum(rewards) / len(rewards)},
        "episodes": [{"task": f"t{i}", "seed": 0, "reward": r} for i, r in enumerate(rewards)],
    }


def test_the_table_pairs_each_level_with_its_backbones_base_and_marks_the_best_level():
    controls = [record("a", "base_skill", [0.5, 0.5, 0.5]), record("b", "base_skill", [0.2, 0.2, 0.2])]
    levels = [
        record("a", "granularity", [0.4, 0.5, 0.3], "level 1"),
        record("a", "granularity", [0.6, 0.7, 0.8], "level 2"),
        record("b", "granularity", [0.3, 0.3, 0.3], "level 1"),
        record("b", "granularity", [0.3, 0.3, 0.3], "level 2"),
    ]
    records = {
        "scienceworld": {
            "levels": [
                {"name": "concise", "principle_words": 20},
                {"name": "detailed", "principle_words": 90},
            ],
            "base_principle_words": 50,
        }
    }
    df = granularity_table(levels, controls, records, resamples=200)
    a = df[df["backbone"] == "a"].set_index("level")
    assert a.loc[1, "diff"] == pytest.approx(-0.1) and a.loc[2, "diff"] == pytest.approx(0.2)
    assert list(a["best"]) == [False, True]
    b = df[df["backbone"] == "b"].set_index("level")
    assert list(b["best"]) == [True, False]  # a tie goes to the more concise level
    assert a.loc[2, "pairs"] == 3 and a.loc[2, "excludes_zero"]
    text = granularity_markdown(df)
    assert "**+0.200 [+0.100, +0.300] *" in text and "| a | 0.500 |" in text


@pytest.mark.parametrize("levels", [2, 3, 6])
def test_every_rewording_schema_compiles_to_a_llama_cpp_grammar(levels):
    """A schema that llama.cpp cannot compile leaves the reply unconstrained (seen with a 760-character
    principle: "maximum recursion depth exceeded")."""
    llama_cpp = pytest.importorskip("llama_cpp")
    for level in range(1, levels + 1):
        schema = reword_schema(level_words(level, levels), 8)
        assert llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False) is not None
