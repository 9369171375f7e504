"""The Adapter baseline: one teacher rewrite of the base library conditioned on the backbone's card.

No rollout and no search: the teacher sees the card and the base skills only, once per skill group (general,
then each category's task skills). It isolates what card conditioning alone buys, against MASA's search.
"""

from __future__ import annotations

import time
from typing import Any

from masa.io import read_yaml, write_json
from masa.skills.library import SkillLibrary
from masa.stages.context import make_teacher
from masa.stages.records import teacher_usage, write_transcript
from masa.teacher.teachers import Teacher

ANALYSIS = "No rollouts were played: adapt the skills to the strengths and weaknesses in this model's card."


def one_shot_rewrite(
    base: SkillLibrary, teacher: Teacher, card: dict[str, Any], categories: list[str], seed: int
) -> tuple[SkillLibrary, dict[str, str]]:
    """The adapted library and, per rewritten group, where its text came from ("llm" or "edit:<op>").

    Categories without task skills in the base library are left as they are: there is nothing to adapt."""
    general = teacher.rewrite(base.general_skills, "general", ANALYSIS, card, [], seed)
    library = base.with_general(general.skills)
    sources = {"general": general.source}
    for category in categories:
        skills = base.task_specific_skills.get(category)
        if not skills:
            continue
        rewritten = teacher.rewrite(skills, category, ANALYSIS, card, [], seed)
        library = library.with_task_skills(category, rewritten.skills)
        sources[category] = rewritten.source
    return library, sources


def adapt_library(
    teacher_spec: dict[str, Any],
    teacher_model_dir: str | None,
    base_library: str,
    card_path: str,
    categories: list[str],
    seed: int,
    out_library: str,
    out_record: str,
    out_transcript: str,
    threads: int | None = None,
) -> SkillLibrary:
    base = SkillLibrary.load(base_library)
    started = time.monotonic()
    teacher = make_teacher(teacher_spec, teacher_model_dir, base, threads)
    library, sources = one_shot_rewrite(base, teacher, read_yaml(card_path), categories, seed)
    library.save(out_library)
    write_json(
        out_record,
        {"sources": sources, "usage": teacher_usage(teacher), "seconds": time.monotonic() - started},
    )
    write_transcript(out_transcript, teacher)
    return library
