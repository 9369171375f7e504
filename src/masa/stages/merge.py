"""The MASA library as a function of files: Stage 1's general skills with each category's Stage 2 task skills."""

from __future__ import annotations

from masa.skills.library import SkillLibrary


def merge_library(general_library: str, category_libraries: dict[str, str], out_path: str) -> SkillLibrary:
    """Stage 1's general skills with each searched category's best task skills; other categories keep
    their initial task skills."""
    merged = SkillLibrary.load(general_library)
    for category, path in category_libraries.items():
        merged.task_specific_skills[category] = SkillLibrary.load(path).task_specific_skills.get(category, [])
    merged.save(out_path)
    return merged
