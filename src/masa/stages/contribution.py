"""Per-skill contribution: leave each skill of the final library out in turn and measure the paired change.

contribution(skill) = reward(full library) - reward(library without the skill), paired over the same
(task, seed) pairs: positive means the skill helps this backbone, negative that it hurts. With
``retrieval: category`` a task skill only reaches its own category's prompts, so the other episodes replay
identical prompts and come from the rollout cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from masa.io import write_json
from masa.skills.library import SkillLibrary
from masa.stages.context import Machine, open_context
from masa.stats import paired_difference


@dataclass(frozen=True)
class Omission:
    group: str  # "general", "task:<category>" or "mistakes"
    item_id: str
    title: str
    library: SkillLibrary  # the library without this item


def leave_one_out(library: SkillLibrary) -> list[Omission]:
    """Every library that lacks exactly one skill or mistake, in library order."""
    out = []
    for i, skill in enumerate(library.general_skills):
        smaller = library.with_general(library.general_skills[:i] + library.general_skills[i + 1 :])
        out.append(Omission("general", skill.skill_id, skill.title, smaller))
    for category, skills in library.task_specific_skills.items():
        for i, skill in enumerate(skills):
            smaller = library.with_task_skills(category, skills[:i] + skills[i + 1 :])
            out.append(Omission(f"task:{category}", skill.skill_id, skill.title, smaller))
    for i, mistake in enumerate(library.common_mistakes):
        smaller = library.copy()
        del smaller.common_mistakes[i]
        out.append(Omission("mistakes", mistake.mistake_id, mistake.description, smaller))
    return out


def skill_contribution(
    backbone: dict[str, Any],
    env: dict[str, Any],
    run: dict[str, Any],
    evaluation: dict[str, Any],
    model_dir: str | None,
    base_library: str,
    library: str,
    out_path: str,
    threads: int | None = None,
    machine: Machine | None = None,
) -> list[dict[str, Any]]:
    ctx = open_context(
        backbone,
        env,
        run,
        model_dir,
        base_library,
        "evaluation",
        threads,
        evaluation["temperature"],
        machine=machine,
    )
    tasks = ctx.heldout_tasks()
    seeds = tuple(evaluation["seeds"])
    keys = [(t.key, s) for s in seeds for t in tasks]  # Evaluator.run's order
    full_library = SkillLibrary.load(library)

    def rewards(lib: SkillLibrary, label: str) -> dict[tuple[str, int], float]:
        played = ctx.evaluator.run(lib, tasks, seeds, label=label).episodes
        return {k: e.reward for k, e in zip(keys, played, strict=True)}

    rows = []
    try:
        full = rewards(full_library, f"{backbone['name']} full library")
        for omission in leave_one_out(full_library):
            without = rewards(omission.library, f"{backbone['name']} without {omission.item_id}")
            diff = paired_difference(full, without, evaluation["bootstrap_resamples"])
            rows.append(
                {"group": omission.group, "id": omission.item_id, "title": omission.title, **diff.as_dict()}
            )
    finally:
        ctx.close()
    write_json(out_path, {"backbone": backbone["name"], "env": env["name"], "skills": rows})
    return rows
