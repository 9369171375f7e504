"""The skill lifecycle as a function of files: a backbone's MASA library measured skill by skill on the search
instances, its negligible skills retired and missing ones added (the rules: ``masa.search.lifecycle``).

Only the search instances of the searched categories are played, never an evaluation instance (the held-out
evaluation of the result, method ``masa_lifecycle``, stays unseen) and never a held-out category, whose task
skills are ``not_judged``. Episodes use the searches' settings and seed, so the full library's episodes that a
search already played come from the rollout cache. Each left-out library is played only on the categories
whose prompt it changes: elsewhere it renders the same text, the same episode, a difference of exactly 0.
"""

from __future__ import annotations

import time
from typing import Any

from masa.config import with_schema_defaults
from masa.envs.base import TaskInstance
from masa.io import write_json
from masa.rollout.agent import EpisodeResult
from masa.rollout.cost import Cost, episodes_cost
from masa.rollout.evaluator import Evaluation, episode_to_dict
from masa.search.lifecycle import (
    ContributionRow,
    Decision,
    LifecycleRules,
    apply_decisions,
    attribute_failures,
    expand,
    judge,
    not_judged,
)
from masa.skills.library import Skill, SkillLibrary
from masa.stages.context import Context, Machine, make_teacher, open_context
from masa.stages.contribution import Omission, leave_one_out
from masa.stages.records import searched_categories, teacher_usage, write_transcript
from masa.stats import paired_difference
from masa.teacher.card import load_card
from masa.teacher.replies import log_rejections, teacher_record
from masa.teacher.teachers import Teacher

SEED = 0  # the episode seed of the searches (Evaluator.run's default): their episodes are this stage's too


def rewards(evaluation: Evaluation) -> dict[tuple[str, int], float]:
    """(task, seed) -> reward of the episodes that played (a failed episode has no reward to pair)."""
    return {(e.task, SEED): e.reward for e in evaluation.episodes if not e.error}


def reached_categories(
    ctx: Context, full: SkillLibrary, omission: Omission, categories: list[str]
) -> list[str]:
    """The categories whose prompt holds the item: leaving it out changes the rendered skill text there
    (with ``retrieval: category`` a task skill reaches its own category only; ``topk`` those that retrieve it)."""
    render = ctx.evaluator.skills_text
    return [c for c in categories if render(full, c) != render(omission.library, c)]


def measure(
    ctx: Context,
    full: SkillLibrary,
    full_played: Evaluation,
    omission: Omission,
    suite: dict[str, list[TaskInstance]],
    resamples: int,
    label: str,
) -> tuple[ContributionRow, Evaluation | None]:
    """The item's contribution over the episodes it reached, and the left-out library's evaluation (None
    when it reached none: exposure 0, nothing to play)."""
    reached = reached_categories(ctx, full, omission, list(suite))
    tasks = [t for c in reached for t in suite[c]]
    if not tasks:
        pairs = len(rewards(full_played))
        return ContributionRow(
            omission.item_id, omission.group, omission.title, 0.0, 0.0, 0.0, pairs, 0
        ), None
    without = ctx.evaluator.run(omission.library, tasks, (SEED,), label=f"{label} without {omission.item_id}")
    keys = {(t.key, SEED) for t in tasks}
    with_item = {k: r for k, r in rewards(full_played).items() if k in keys}
    diff = paired_difference(with_item, rewards(without), resamples, ctx.seed)
    pairs = len(rewards(full_played))  # the unreached pairs replay the same episode: difference 0
    row = ContributionRow(
        omission.item_id, omission.group, omission.title, diff.mean, diff.low, diff.high, pairs, diff.pairs
    )
    return row, without


def prompt_skills(ctx: Context, full: SkillLibrary, categories: list[str]) -> dict[str, list[Skill]]:
    """The skills (not mistakes) that reached each category's prompts: a failure can only be covered by one."""
    skills = {s.skill_id: s for s in full.skills()}
    out: dict[str, list[Skill]] = {c: [] for c in categories}
    for omission in leave_one_out(full):
        if omission.group == "mistakes":
            continue
        for c in reached_categories(ctx, full, omission, categories):
            out[c].append(skills[omission.item_id])
    return out


def run_lifecycle(
    backbone: dict[str, Any],
    env: dict[str, Any],
    run: dict[str, Any],
    teacher_spec: dict[str, Any],
    lifecycle: dict[str, Any],
    heldout: list[str],
    resamples: int,
    model_dir: str | None,
    teacher_model_dir: str | None,
    base_library: str,
    library: str,
    card_path: str,
    out_library: str,
    out_decisions: str,
    out_record: str,
    out_transcript: str,
    threads: int | None = None,
    machine: Machine | None = None,
) -> list[Decision]:
    """Measure, decide, write: the lifecycle library, every decision with its evidence, the cost record
    and the teacher's transcript."""
    started = time.perf_counter()
    rules = LifecycleRules.of(with_schema_defaults(lifecycle, "lifecycle"))
    tokens = with_schema_defaults(teacher_spec, "teacher")["max_new_tokens"]
    ctx = open_context(backbone, env, run, model_dir, base_library, "search", threads, machine=machine)
    teacher = make_teacher(teacher_spec, teacher_model_dir, ctx.base, threads)
    full = SkillLibrary.load(library)
    categories = searched_categories(ctx.env.categories(), heldout)
    suite = {c: ctx.tasks.search[c] for c in categories}
    label = f"{backbone['name']} lifecycle"
    rows: list[ContributionRow] = []
    skipped: list[Decision] = []
    try:
        full_played = ctx.evaluator.run(full, [t for c in categories for t in suite[c]], (SEED,), label=label)
        played = [full_played]
        for omission in leave_one_out(full):
            category = omission.group.split(":", 1)[1] if omission.group.startswith("task:") else None
            if category is not None and category not in categories:
                reason = f"held-out category {category}: never played by the lifecycle, kept as it is"
                skipped.append(not_judged(omission.item_id, omission.group, reason, omission.title))
                continue
            row, without = measure(ctx, full, full_played, omission, suite, resamples, label)
            rows.append(row)
            played += [without] if without else []
        failures = [e for e in full_played.episodes if not e.won and not e.error]
        attributions = attribute_failures(
            failures, prompt_skills(ctx, full, categories), teacher, ctx.seed, tokens
        )
        added = expand(full, failures, attributions, rules, teacher, load_card(card_path), ctx.seed, tokens)
    finally:
        ctx.close()
    decisions = judge(rows, rules) + skipped + [d for _, d in added]
    result = apply_decisions(full, decisions, added)
    result.save(out_library)
    write_json(
        out_decisions,
        {
            "backbone": backbone["name"],
            "env": env["name"],
            "rules": vars(rules),
            "categories": categories,
            "full_library": {"reward_mean": full_played.summary.reward_mean, "failures": len(failures)},
            "attributions": [vars(a) for a in attributions],
            "decisions": [d.as_dict() for d in decisions],
        },
    )
    write_json(out_record, lifecycle_record(played, teacher, started))
    log_rejections(label, teacher.transcript)
    write_transcript(out_transcript, teacher)
    return decisions


def lifecycle_record(played: list[Evaluation], teacher: Teacher, started: float) -> dict[str, Any]:
    """What the lifecycle cost: its rollouts at their recorded cost (a cache hit counted as played, as every
    method's cost is: ``masa.rollout.cost``), what this job itself played (``played``: cache hits free), the
    teacher's usage and the wall-clock seconds."""
    episodes: list[EpisodeResult] = [e for evaluation in played for e in evaluation.episodes]
    rollouts = episodes_cost([episode_to_dict(e) for e in episodes])
    return {
        "rollouts": rollouts.as_dict(),
        "played": Cost.of([evaluation.summary for evaluation in played]).as_dict(),
        "usage": {**teacher_usage(teacher), "fallbacks": getattr(teacher, "fallbacks", 0)},
        "teacher": teacher_record(teacher),
        "wall_seconds": time.perf_counter() - started,
    }
