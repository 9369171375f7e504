"""Training data for the skill rewriter: (model card, input skills, task) -> evolved skills.

The rewriter reads and writes one *category view* at a time (general skills + that category's task skills,
no mistakes, compact JSON) so a whole input/target pair fits the small model's context. Inputs deliberately
span quality, from the four sources of the paper (each example's ``source`` says which):

- search intermediates: ``intermediate_early|middle|late``, from that third of the backbone's searches;
- cross-model transfer: ``cross_backbone``, another backbone's evolved set for the same category;
- one-shot teacher rewrites: ``teacher_oneshot``, the card-conditioned teacher rewrite of the base skills
  (the ``adapter`` baseline's library when given, else the searches' first teacher rewrite of their root);
- augmented variants: ``base`` and its ``noisy`` (30% of words swapped), ``partial`` (60% of skills kept) and
  ``verbose`` copies;

so the model learns to move any starting point toward the backbone's best set instead of copying its input.
The target is "high-scoring": at least the ``min_reward_quantile`` of the backbone's rewards in that env, and
better than its search's root.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from masa.io import read_parquet, write_parquet
from masa.llm.base import Message
from masa.skills.library import Skill, SkillLibrary

SOURCES = (
    "intermediate_early",
    "intermediate_middle",
    "intermediate_late",
    "cross_backbone",
    "teacher_oneshot",
    "base",
    "noisy",
    "partial",
    "verbose",
)
PHASES = ("early", "middle", "late")

# Appended by the "verbose" augmentation: generic elaborations that add words but no information, so the
# rewriter learns to tighten bloated principles back to the evolved wording.
ELABORATIONS = (
    "In other words, keep this in mind at every step and re-check it before acting, even when the task "
    "looks simple or you have already made progress.",
    "This matters because small oversights early on tend to compound later, so it is worth spending an "
    "extra moment to confirm it before moving on to the next action.",
    "Put differently, treat this as a standing rule: apply it consistently, verify the outcome afterwards, "
    "and do not skip it just because a previous attempt seemed to work.",
)


@dataclass
class AugmentConfig:
    """Which corrupted copies of the base skills become extra training inputs, and how strong they are."""

    noisy: bool = True
    noisy_ratio: float = 0.3  # fraction of each principle's words replaced by words from other skills
    partial: bool = True
    partial_keep: float = 0.6  # fraction of each skill list kept
    verbose: bool = True


@dataclass
class RewriterExample:
    backbone: str
    env: str
    category: str
    source: str  # one of SOURCES: where the input skills came from
    card_text: str
    input_skills_json: str
    task_description: str
    target_skills_json: str


# --- category views -----------------------------------------------------------------------------------------
def category_view(library: SkillLibrary, category: str) -> SkillLibrary:
    """General skills + one category's task skills (mistakes and other categories dropped)."""
    copied = library.copy()
    return SkillLibrary(
        general_skills=copied.general_skills,
        task_specific_skills={category: copied.task_specific_skills.get(category, [])},
    )


def merge_category_view(base_library: SkillLibrary, view: SkillLibrary, category: str) -> SkillLibrary:
    """A copy of ``base_library`` whose general skills and ``category`` task skills come from ``view``."""
    merged = base_library.with_general(view.general_skills)
    return merged.with_task_skills(category, view.task_specific_skills.get(category, []))


def view_json(view: SkillLibrary, category: str) -> str:
    """Compact JSON of a category view: the exact text the rewriter reads and must write."""
    data = {
        "general_skills": [s.to_dict() for s in view.general_skills],
        "task_specific_skills": {
            category: [s.to_dict() for s in view.task_specific_skills.get(category, [])]
        },
    }
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def card_text(card: dict[str, Any]) -> str:
    """A model card as ``key: value`` lines (lists joined), the form the rewriter is conditioned on."""
    lines = []
    for key, value in card.items():
        if value is None or value == "" or value == []:
            continue
        text = "; ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
        lines.append(f"{key}: {text}")
    return "\n".join(lines)


# --- prompt -------------------------------------------------------------------------------------------------
SYSTEM_PROMPT = "You adapt the skills of an LLM agent to one specific model. Reply with one JSON object only."


def format_prompt(
    card_text: str, input_skills_json: str, task_description: str, category: str
) -> list[Message]:
    """The rewriter's conversation; training and inference both use it, so the two never drift apart.

    Kept short on purpose: every prompt token costs training time on CPU.
    """
    user = (
        f"## Model card\n{card_text}\n\n"
        f"## Task category: {category}\n{task_description}\n\n"
        f"## Current skills\n{input_skills_json}\n\n"
        "Rewrite these skills for this model: play to its strengths, guard against its weaknesses, keep "
        "what works, fix or drop what does not. Output ONLY the JSON of the evolved skills, same format: "
        '{"general_skills":[...],"task_specific_skills":{"' + category + '":[...]}}, both lists non-empty.'
    )
    return [Message("system", SYSTEM_PROMPT), Message("user", user)]


# --- augmentation -------------------------------------------------------------------------------------------
def noisy_view(view: SkillLibrary, ratio: float, rng: random.Random) -> SkillLibrary:
    """Replace ``round(ratio * n)`` of each principle's n words with different words from the other skills.

    Swapping in on-topic words (not random tokens) gives plausible-looking but muddled principles, the kind of
    degradation a weak search step produces.
    """
    noisy = view.copy()
    skills = noisy.skills()
    for index, skill in enumerate(skills):
        words = skill.principle.split()
        others = [w for j, s in enumerate(skills) if j != index for w in s.principle.split()] or words
        for pos in rng.sample(range(len(words)), round(ratio * len(words))):
            choices = [w for w in others if w != words[pos]]
            if choices:
                words[pos] = rng.choice(choices)
        skill.principle = " ".join(words)
    return noisy


def partial_view(view: SkillLibrary, keep: float, rng: random.Random) -> SkillLibrary:
    """Keep ``round(keep * n)`` (at least one) skills of each non-empty list, in their original order."""

    def subset(skills: list[Skill]) -> list[Skill]:
        if not skills:
            return []
        kept = sorted(rng.sample(range(len(skills)), max(1, round(keep * len(skills)))))
        return [skills[i] for i in kept]

    partial = view.copy()
    partial.general_skills = subset(partial.general_skills)
    partial.task_specific_skills = {cat: subset(s) for cat, s in partial.task_specific_skills.items()}
    return partial


def verbose_view(view: SkillLibrary, rng: random.Random) -> SkillLibrary:
    """Append one elaboration sentence to every principle."""
    verbose = view.copy()
    for skill in verbose.skills():
        skill.principle = f"{skill.principle.rstrip()} {rng.choice(ELABORATIONS)}"
    return verbose


# --- target and input selection -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    view: SkillLibrary
    node_ids: frozenset[str]  # the candidates it was built from (never reused as inputs)


def _best(rows: pd.DataFrame) -> pd.Series:
    """Highest mean reward; ties go to the higher lower bound, then the earlier candidate."""
    ordered = rows.sort_values(
        ["reward_mean", "reward_low", "iteration", "node_id"], ascending=[False, False, True, True]
    )
    return ordered.iloc[0]


def _root(rows: pd.DataFrame) -> pd.Series:
    """The search's starting candidate (no parent); the earliest row if the export lost the root."""
    roots = rows[rows["parent_id"] == ""]
    return (roots if len(roots) else rows).sort_values(["iteration", "node_id"]).iloc[0]


def _library(row: pd.Series) -> SkillLibrary:
    return SkillLibrary.from_json(row["library_json"], source=f"candidate {row['node_id']}")


def _combine(general_row: pd.Series | None, task_row: pd.Series | None, category: str) -> SkillLibrary:
    """General skills of the general-stage candidate + category skills of the task-stage candidate."""
    if task_row is None:
        assert general_row is not None
        return category_view(_library(general_row), category)
    view = category_view(_library(task_row), category)
    return view if general_row is None else view.with_general(_library(general_row).general_skills)


def _target(
    general: pd.DataFrame, task: pd.DataFrame, category: str, threshold: float, require_gain: bool
) -> _Target | None:
    """The best evolved set for one category, if it clears the quality bar; ``None`` otherwise.

    The target combines the best general skills with the category's best task skills. It counts as evolved
    when either search strictly beat its own root: a Stage 1 gain is already inside every Stage 2 node (the
    task root is evaluated with Stage 1's result), so requiring a Stage 2 gain alone would discard it. The
    reward held against the quantile ``threshold`` is the task-stage one when the category had a task search
    (it was measured on that category), else the general-stage one. Without ``require_gain`` (rewriter.targets:
    best) the best candidate is the target even when it is a root: the rewriter then also learns to keep.
    """
    if general.empty and task.empty:
        return None
    best_general = _best(general) if len(general) else None
    general_gain = best_general is not None and float(best_general["reward_mean"]) > float(
        _root(general)["reward_mean"]
    )
    task_gain = len(task) > 0 and float(_best(task)["reward_mean"]) > float(_root(task)["reward_mean"])
    pool = task if len(task) else general
    best = _best(pool)
    if float(best["reward_mean"]) < threshold or (require_gain and not (general_gain or task_gain)):
        return None
    used = {str(best["node_id"])} | ({str(best_general["node_id"])} if best_general is not None else set())
    return _Target(_combine(best_general, best if len(task) else None, category), frozenset(used))


def _phase_row(rows: pd.DataFrame, phase: int, rng: random.Random) -> pd.Series | None:
    """One candidate from the early/middle/late third of a search (ordered by iteration)."""
    if rows.empty:
        return None
    ordered = rows.sort_values(["iteration", "node_id"]).reset_index(drop=True)
    thirds = [ordered.iloc[i * len(ordered) // 3 : (i + 1) * len(ordered) // 3] for i in range(3)]
    chunk = thirds[phase] if len(thirds[phase]) else ordered
    return chunk.iloc[rng.randrange(len(chunk))]


def _intermediates(
    general: pd.DataFrame, task: pd.DataFrame, category: str, rng: random.Random
) -> list[tuple[str, SkillLibrary]]:
    """Early/middle/late inputs: the same phase of the general search and of the category's task search."""
    out = []
    for phase, name in enumerate(PHASES):
        general_row = _phase_row(general, phase, rng)
        task_row = _phase_row(task, phase, rng)
        if general_row is not None or task_row is not None:
            out.append((f"intermediate_{name}", _combine(general_row, task_row, category)))
    return out


def _first_rewrites(rows: pd.DataFrame, root_ids: set[str]) -> pd.DataFrame:
    """The searches' one-shot teacher rewrites: LLM-teacher children of a search root, i.e. what the teacher
    wrote from the base skills and the card alone, before any search feedback."""
    return rows[rows["parent_id"].isin(sorted(root_ids)) & (rows["teacher"] == "llm")]


def _teacher_oneshot(
    general: pd.DataFrame, task: pd.DataFrame, category: str, rng: random.Random
) -> SkillLibrary | None:
    """One general and one task-stage first rewrite combined into a category view (``None`` if neither)."""

    def pick(rows: pd.DataFrame) -> pd.Series | None:
        return rows.iloc[rng.randrange(len(rows))] if len(rows) else None

    general_row, task_row = pick(general), pick(task)
    if general_row is None and task_row is None:
        return None
    return _combine(general_row, task_row, category)


def _augmented(
    base_view: SkillLibrary, augment: AugmentConfig, rng: random.Random
) -> list[tuple[str, SkillLibrary]]:
    out = [("base", base_view)]
    if augment.noisy:
        out.append(("noisy", noisy_view(base_view, augment.noisy_ratio, rng)))
    if augment.partial:
        out.append(("partial", partial_view(base_view, augment.partial_keep, rng)))
    if augment.verbose:
        out.append(("verbose", verbose_view(base_view, rng)))
    return out


# --- dataset ------------------------------------------------------------------------------------------------
def build_examples(
    trajectories: pd.DataFrame,
    cards: dict[str, dict[str, Any]],
    base_library: SkillLibrary,
    task_descriptions: dict[str, str],
    heldout_categories: list[str],
    heldout_backbones: list[str],
    min_reward_quantile: float,
    augment: AugmentConfig,
    seed: int,
    *,
    require_gain: bool,
    teacher_rewrites: dict[str, SkillLibrary] | None = None,
) -> list[RewriterExample]:
    """Rewriter examples from the exported search trajectories (one Parquet row per evaluated candidate).

    ``teacher_rewrites`` maps a backbone to its one-shot teacher rewrite of the base library (the ``adapter``
    baseline); for a backbone without one, the trajectories' first teacher rewrites stand in.

    ``task_descriptions`` names the training categories. Held-out categories and backbones are filtered out
    first and the result is then checked again (``check_no_heldout``), because a leak would invalidate the
    transfer evaluation silently. A group's target must reach the ``min_reward_quantile`` of all of that
    backbone's rewards in the env and, with ``require_gain``, beat its search root; groups without such a target
    give no examples.
    Deterministic given ``seed``.
    """
    heldout_cat, heldout_bb = set(heldout_categories), set(heldout_backbones)
    rows = trajectories[~trajectories["backbone"].isin(heldout_bb)]
    rows = rows[~rows["category"].isin(sorted(heldout_cat - {""}))]
    categories = sorted(c for c in task_descriptions if c not in heldout_cat)
    targets: dict[tuple[str, str, str], _Target] = {}
    for (backbone, env), group in rows.groupby(["backbone", "env"], sort=True):
        threshold = float(group["reward_mean"].quantile(min_reward_quantile))
        general = group[group["stage"] == "general"]
        for category in categories:
            task = group[(group["stage"] == "task") & (group["category"] == category)]
            target = _target(general, task, category, threshold, require_gain)
            if target is not None:
                targets[(str(backbone), str(env), category)] = target
    examples = []
    for (backbone, env, category), target in targets.items():
        if backbone not in cards:
            raise ValueError(f"no model card for backbone '{backbone}'")
        rng = random.Random(f"{seed}:{backbone}:{env}:{category}")
        group = rows[(rows["backbone"] == backbone) & (rows["env"] == env)]
        root_ids = set(group.loc[group["parent_id"] == "", "node_id"].astype(str))
        # intermediates: neither the root (that is the base input) nor the target's own candidates
        group = group[(group["parent_id"] != "") & ~group["node_id"].isin(sorted(target.node_ids))]
        general = group[group["stage"] == "general"]
        task = group[(group["stage"] == "task") & (group["category"] == category)]
        first_general, first_task = _first_rewrites(general, root_ids), _first_rewrites(task, root_ids)
        teacher = (
            category_view(teacher_rewrites[backbone], category)
            if teacher_rewrites and backbone in teacher_rewrites
            else _teacher_oneshot(first_general, first_task, category, rng)
        )
        # the first rewrites are the teacher's source; the intermediates come from the rest of the searches
        general, task = general.drop(first_general.index), task.drop(first_task.index)
        inputs = _intermediates(general, task, category, rng)
        if teacher is not None:
            inputs.append(("teacher_oneshot", teacher))
        others = sorted(b for (b, e, c) in targets if e == env and c == category and b != backbone)
        if others:
            inputs.append(("cross_backbone", targets[(rng.choice(others), env, category)].view))
        inputs += _augmented(category_view(base_library, category), augment, rng)
        target_json = view_json(target.view, category)
        seen = {target_json}
        for source, view in inputs:
            text = view_json(view, category)
            if text in seen:
                continue  # identical inputs teach nothing new; input == target only teaches copying
            seen.add(text)
            examples.append(
                RewriterExample(
                    backbone=backbone,
                    env=env,
                    category=category,
                    source=source,
                    card_text=card_text(cards[backbone]),
                    input_skills_json=text,
                    task_description=task_descriptions[category],
                    target_skills_json=target_json,
                )
            )
    check_no_heldout(examples, heldout_categories, heldout_backbones)
    return examples


def check_no_heldout(
    examples: Iterable[RewriterExample],
    heldout_categories: list[str],
    heldout_backbones: list[str],
    heldout_environments: Sequence[str] = (),
) -> None:
    """Raise ``ValueError`` naming the first held-out backbone, environment or category found anywhere in
    the examples."""
    heldout_cat, heldout_bb = set(heldout_categories), set(heldout_backbones)
    for ex in examples:
        if ex.env in heldout_environments:
            raise ValueError(f"held-out environment '{ex.env}' entered the rewriter data ({ex.source})")
        if ex.backbone in heldout_bb:
            raise ValueError(f"held-out backbone '{ex.backbone}' entered the rewriter data ({ex.source})")
        for text in (ex.input_skills_json, ex.target_skills_json):
            leaked = ({ex.category} | set(json.loads(text).get("task_specific_skills", {}))) & heldout_cat
            if leaked:
                raise ValueError(
                    f"held-out category '{sorted(leaked)[0]}' entered the rewriter data "
                    f"(backbone '{ex.backbone}', {ex.source})"
                )


def write_dataset(
    examples: list[RewriterExample], path: str | Path, metadata: dict[str, Any] | None = None
) -> None:
    """Parquet with one plain string column per field (readable by pandas and ``datasets``); ``metadata``
    (what the data came from) is kept as JSON under the schema's ``masa`` key (``dataset_metadata``)."""
    names = [f.name for f in fields(RewriterExample)]
    extra = {"masa": json.dumps(metadata, sort_keys=True)} if metadata else None
    schema = pa.schema([(name, pa.string()) for name in names], metadata=extra)
    table = pa.Table.from_pylist([asdict(ex) for ex in examples], schema=schema)
    write_parquet(path, table)


def dataset_metadata(path: str | Path) -> dict[str, Any]:
    """What ``write_dataset`` recorded about the data's origin ({} for a file without it)."""
    stored = (read_parquet(path).schema.metadata or {}).get(b"masa")
    return json.loads(stored) if stored else {}


def read_dataset(path: str | Path) -> list[RewriterExample]:
    frame = read_parquet(path).to_pandas()
    return [RewriterExample(**{k: str(v) for k, v in row.items()}) for row in frame.to_dict("records")]
