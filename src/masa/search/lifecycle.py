"""The skill lifecycle's decisions (SLIM, arXiv 2605.10923): retain, retire or add skills by stated rules.

A backbone's finished MASA library is played on the search instances of the searched categories, whole and
with each skill left out in turn (``masa.stages.lifecycle``); this module decides from the resulting table,
so every rule can be pinned on a scripted one.

Contribution of a skill = reward with it - reward without it, paired over the (task, seed) episodes whose
prompt it reached (its *exposure*; with ``skills.retrieval: category`` a task skill reaches only its own
category's episodes, the others replay the same prompt and differ by exactly 0, so they are not counted).

RETIRE a skill when exposure >= ``min_exposure`` AND the upper end of the 95% paired interval of its
contribution < ``retire_margin``: removing it costs at most a negligible amount, with confidence (a harmful
skill, whose whole interval is below 0, is retired by the same rule). Otherwise RETAIN it, saying why:
``not enough exposure``, ``valuable`` (the lower end >= ``retire_margin``) or ``interval too wide`` (the
interval holds the margin). The last skill of a group (the general skills, one category's task skills, the
mistakes) is never retired: when the rule would empty a group, the item with the highest mean contribution
(ties: library order) stays, with that reason.

EXPAND a category when at least ``expand_min_failures`` failed episodes of the full library in it are
covered by no skill: the teacher writes up to ``max_new_skills`` task skills for it from those failures
(validated JSON), else a deterministic skill written from what the failures repeated. Coverage: the teacher
says which skill id (or none) each failure concerns, checked against the ids of the skills that reached that
failure's prompt; its deterministic fallback (``covering_skill``) attributes a failure to the skill sharing
the most content words (at least ``MIN_SHARED_WORDS``) with the failure's actions and last observations.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from masa.rollout.agent import EpisodeResult
from masa.skills.library import LibraryFormatError, Skill, SkillLibrary
from masa.teacher.teachers import (
    Teacher,
    card_text,
    describe_failure,
    first_json_array,
    list_reply,
    parse_skill_list,
    record,
    skills_json,
)

RETAIN, RETIRE, ADD, NOT_JUDGED = "retain", "retire", "add", "not_judged"
MIN_SHARED_WORDS = 2  # content words a failure must share with a skill's text to count as covered by it
SHOWN_OBSERVATIONS = 3  # the failure's last observations compared (what describe_failure shows the teacher)
FAILURES_PER_QUESTION = 6  # failures in one coverage question to the teacher
_WORD = re.compile(r"[a-z]+")
# Words every action or skill of the environments says; sharing them says nothing about the capability.
_STOPWORD_TEXT = """about after again also always before being check could does each first from have into just
least more most must never next nothing only other same should some step steps take than that their them then
there these they this those through until very want were what when where which while will with would your task
tasks happens action actions"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class LifecycleRules:
    """The ``lifecycle`` config section's thresholds (the schema holds their defaults)."""

    retire_margin: float
    min_exposure: int
    expand_min_failures: int
    max_new_skills: int

    @classmethod
    def of(cls, section: dict[str, Any]) -> LifecycleRules:
        return cls(
            **{
                k: section[k]
                for k in ("retire_margin", "min_exposure", "expand_min_failures", "max_new_skills")
            }
        )


@dataclass(frozen=True)
class ContributionRow:
    """One item's leave-one-out measurement on the search instances."""

    skill_id: str
    group: str  # "general", "task:<category>" or "mistakes" (masa.stages.contribution.Omission.group)
    title: str
    mean: float
    low: float
    high: float
    pairs: int  # (task, seed) pairs of the suite (those the item did not reach replay one episode: 0)
    exposure: int  # of those, the pairs whose prompt held the item: the interval is over these

    @property
    def category(self) -> str | None:
        return self.group.split(":", 1)[1] if self.group.startswith("task:") else None


@dataclass(frozen=True)
class Decision:
    skill_id: str
    group: str
    action: str  # retain | retire | add | not_judged
    rule: str  # the rule that fired, in words
    evidence: dict[str, Any] = field(default_factory=dict)
    title: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(rows: Sequence[ContributionRow], rules: LifecycleRules) -> list[Decision]:
    """RETIRE / RETAIN for every measured row (module docstring), in row order, the group rule applied."""
    decisions = [_judge_one(row, rules) for row in rows]
    for group in dict.fromkeys(row.group for row in rows):
        members = [i for i, row in enumerate(rows) if row.group == group]
        if all(decisions[i].action == RETIRE for i in members):
            keep = max(members, key=lambda i: (rows[i].mean, -i))
            decisions[keep] = Decision(
                rows[keep].skill_id,
                group,
                RETAIN,
                f"last skill of group {group}: a group is never emptied (the rule alone would retire it: "
                f"{decisions[keep].rule})",
                decisions[keep].evidence,
                rows[keep].title,
            )
    return decisions


def _judge_one(row: ContributionRow, rules: LifecycleRules) -> Decision:
    evidence = {"contribution": asdict(row), "rules": asdict(rules)}
    interval = f"[{row.low:+.3f}, {row.high:+.3f}]"
    if row.exposure < rules.min_exposure:
        rule = f"not enough exposure: {row.exposure} < min_exposure {rules.min_exposure}"
        return Decision(row.skill_id, row.group, RETAIN, rule, evidence, row.title)
    if row.high < rules.retire_margin:
        kind = "harmful" if row.high < 0 else "negligible"
        rule = f"{kind}: 95% interval {interval} below retire_margin {rules.retire_margin} after {row.exposure} episodes"
        return Decision(row.skill_id, row.group, RETIRE, rule, evidence, row.title)
    if row.low >= rules.retire_margin:
        rule = f"valuable: 95% interval {interval} at or above retire_margin {rules.retire_margin}"
        return Decision(row.skill_id, row.group, RETAIN, rule, evidence, row.title)
    rule = f"interval too wide: 95% interval {interval} holds retire_margin {rules.retire_margin}"
    return Decision(row.skill_id, row.group, RETAIN, rule, evidence, row.title)


def not_judged(skill_id: str, group: str, reason: str, title: str = "") -> Decision:
    """An item the lifecycle does not measure (a held-out category's task skill): kept as it is."""
    return Decision(skill_id, group, NOT_JUDGED, reason, title=title)


# --- coverage of failures ------------------------------------------------------------------------------------


def content_words(text: str) -> set[str]:
    """Lowercase words of 4+ letters outside ``STOPWORDS``: what a failure and a skill can share."""
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 4 and w not in STOPWORDS}


def failure_words(episode: EpisodeResult) -> set[str]:
    """Content words of every action of the failure and of its last ``SHOWN_OBSERVATIONS`` observations."""
    actions = " ".join(s.action for s in episode.trajectory)
    seen = " ".join(s.observation for s in episode.trajectory[-SHOWN_OBSERVATIONS:])
    return content_words(f"{actions} {seen}")


def covering_skill(episode: EpisodeResult, skills: Sequence[Skill]) -> str | None:
    """The deterministic coverage rule: the skill sharing the most content words with the failure (at least
    ``MIN_SHARED_WORDS``; ties to the first in ``skills``), or None when no skill shares that many."""
    words = failure_words(episode)
    best, most = None, MIN_SHARED_WORDS - 1
    for skill in skills:
        shared = len(words & content_words(f"{skill.title} {skill.principle} {skill.when_to_apply}"))
        if shared > most:
            best, most = skill.skill_id, shared
    return best


@dataclass(frozen=True)
class Attribution:
    task: str
    category: str
    skill_id: str | None  # the skill that covers the failure, None when none does
    source: str  # "teacher" or "words" (the deterministic rule)


COVERAGE_PROMPT = """An agent failed these {category} episodes. For each failure, in order, say which one of \
the skills below it concerns (the skill whose advice applies to what went wrong), or "none" when no skill \
covers it.

Skills:
{skills}

Failures:
{failures}

Answer as JSON: {{"skill_ids": [one id or "none" per failure, in order]}}."""


def parse_coverage(reply: str, ids: Sequence[str], count: int) -> list[str | None]:
    """One id of ``ids`` or "none" per failure; raises LibraryFormatError with what was wrong."""
    items = first_json_array(reply)
    if len(items) != count:
        raise LibraryFormatError(f"expected {count} answers, one per failure, got {len(items)}")
    unknown = [i for i in items if i != "none" and i not in ids]
    if unknown:
        raise LibraryFormatError(f"not a skill id of the library: {unknown[:3]} (ids: {', '.join(ids)})")
    return [None if i == "none" else i for i in items]


def attribute_failures(
    failures: Sequence[EpisodeResult],
    skills: dict[str, list[Skill]],
    teacher: Teacher,
    seed: int,
    tokens: int,
) -> list[Attribution]:
    """Which skill each failure concerns; ``skills`` by category are those that reached its prompts. The
    teacher answers per batch of failures; without a valid answer the word-overlap rule does (logged)."""
    out: list[Attribution] = []
    by_category: dict[str, list[EpisodeResult]] = {}
    for episode in failures:
        by_category.setdefault(episode.category, []).append(episode)
    for category, episodes in by_category.items():
        reached = skills.get(category, [])
        for start in range(0, len(episodes), FAILURES_PER_QUESTION):
            out += _coverage(
                category, episodes[start : start + FAILURES_PER_QUESTION], reached, teacher, seed, tokens
            )
    return out


def _coverage(
    category: str,
    batch: list[EpisodeResult],
    reached: list[Skill],
    teacher: Teacher,
    seed: int,
    tokens: int,
) -> list[Attribution]:
    """One coverage question: the teacher's valid answer, else the word-overlap rule's (logged as a
    fallback); with no skill in the prompts there is nothing to ask, every failure is uncovered."""
    if not reached:
        return [Attribution(e.task, category, None, "words") for e in batch]
    ids = [s.skill_id for s in reached]
    step = f"lifecycle_coverage:{category}"
    prompt = COVERAGE_PROMPT.format(
        category=category,
        skills="\n".join(f"- {s.skill_id}: {s.title}. {s.principle}" for s in reached),
        failures="\n".join(f"{i + 1}. {describe_failure(e)}" for i, e in enumerate(batch)),
    )
    schema = list_reply("skill_ids", {"enum": [*ids, "none"]}, len(batch))
    parse = partial(parse_coverage, ids=ids, count=len(batch))
    answer = teacher.ask(step, prompt, parse, schema, '{"skill_ids": ["', seed, tokens)
    if answer is not None:
        return [Attribution(e.task, category, a, "teacher") for e, a in zip(batch, answer, strict=True)]
    found = [Attribution(e.task, category, covering_skill(e, reached), "words") for e in batch]
    teacher.fell_back(step, json.dumps([a.skill_id or "none" for a in found]))
    return found


# --- expansion -------------------------------------------------------------------------------------------------

EXPAND_PROMPT = """A {category} agent with this profile:
{card}

failed these {category} episodes, and none of its skills covers what went wrong:
{failures}

Its current {category} skills:
{skills}

Write at most {most} new skill(s) for {category} tasks that would have prevented these failures: each a \
short title, a principle (what to do, concretely), and when to apply it. Do not repeat a current skill.
Answer as JSON: {{"skills": [{{"title": ..., "principle": ..., "when_to_apply": ...}}]}}."""

NEW_SKILL_SCHEMA_FIELDS = {"title": 80, "principle": 400, "when_to_apply": 200}


def parse_new_skills(reply: str, prefix: str, most: int, existing: Sequence[Skill]) -> list[Skill]:
    """At most ``most`` new skills with ids ``<prefix>_001``...; a title the category already has is not new."""
    skills = parse_skill_list(reply, prefix)[:most]
    titles = {s.title.strip().lower() for s in existing}
    repeated = [s.title for s in skills if s.title.strip().lower() in titles]
    if repeated:
        raise LibraryFormatError(f"not new: the category already has {repeated[:2]}")
    return skills


def digest_skill(category: str, failures: Sequence[EpisodeResult], skill_id: str) -> Skill:
    """The deterministic new skill: what the uncovered failures did over and over, turned into advice."""
    repeated: Counter[str] = Counter()
    for episode in failures:
        counts = Counter(s.action for s in episode.trajectory if s.action)
        repeated.update({a: n for a, n in counts.items() if n > 1})
    steps = sum(e.steps for e in failures)
    no_op = sum(e.no_op_steps for e in failures) / steps if steps else 0.0
    facts = f"In {len(failures)} failed {category} episodes that no skill covered, {no_op:.0%} of the steps changed nothing"
    if repeated:
        action, times = repeated.most_common(1)[0]
        title = f"Do not loop on '{action}'"
        principle = (
            f"{facts} and the agent repeated '{action}' {times} times. An action that did not move the task "
            "forward will not work when repeated: pick an admissible action not yet tried in this state, "
            "go where the task's object can be found, and act on it."
        )
    else:
        title = f"Make progress on every {category} step"
        principle = (
            f"{facts}. Before each action, name the next sub-goal of the task and choose the admissible "
            "action that advances it; an action whose observation is unchanged was wasted."
        )
    when = f"{category} tasks, when the last action left the state unchanged or an action is about to repeat"
    return Skill(skill_id, title, principle, when)


def expand(
    library: SkillLibrary,
    failures: Sequence[EpisodeResult],
    attributions: Sequence[Attribution],
    rules: LifecycleRules,
    teacher: Teacher,
    card: dict,
    seed: int,
    tokens: int,
) -> list[tuple[Skill, Decision]]:
    """The skills added per category where at least ``expand_min_failures`` failures are uncovered, each with
    its ``add`` decision holding the failures that motivated it."""
    by_task = {(e.task, e.category): e for e in failures}
    uncovered: dict[str, list[EpisodeResult]] = {}
    for a in attributions:
        if a.skill_id is None:
            uncovered.setdefault(a.category, []).append(by_task[(a.task, a.category)])
    added: list[tuple[Skill, Decision]] = []
    for category, episodes in uncovered.items():
        if len(episodes) < rules.expand_min_failures or rules.max_new_skills < 1:
            continue
        existing = library.task_specific_skills.get(category, [])
        prefix = f"lifecycle_{category}"
        prompt = EXPAND_PROMPT.format(
            category=category,
            card=card_text(card),
            failures="\n".join(f"- {describe_failure(e)}" for e in episodes[:FAILURES_PER_QUESTION]),
            skills=skills_json(existing) if existing else "(none)",
            most=rules.max_new_skills,
        )
        step = f"lifecycle_expand:{category}"
        schema = list_reply("skills", record(NEW_SKILL_SCHEMA_FIELDS), rules.max_new_skills)
        skills = teacher.ask(
            step,
            prompt,
            partial(parse_new_skills, prefix=prefix, most=rules.max_new_skills, existing=existing),
            schema,
            '{"skills": [{"title": "',
            seed,
            tokens,
        )
        source = "teacher"
        if skills is None:
            skills, source = [digest_skill(category, episodes, f"{prefix}_001")], "digest"
            teacher.fell_back(step, skills_json(skills))
        rule = (
            f"{len(episodes)} failures of {category} covered by no skill >= expand_min_failures "
            f"{rules.expand_min_failures}: written by the {source}"
        )
        evidence = {
            "failures": [describe_failure(e) for e in episodes],
            "tasks": [e.task for e in episodes],
            "source": source,
        }
        for skill in skills:
            decision = Decision(
                skill.skill_id,
                f"task:{category}",
                ADD,
                rule,
                {**evidence, "skill": skill.to_dict()},
                skill.title,
            )
            added.append((skill, decision))
    return added


def apply_decisions(
    library: SkillLibrary, decisions: Sequence[Decision], added: Sequence[tuple[Skill, Decision]]
) -> SkillLibrary:
    """The library without its retired items and with the added skills at the end of their categories."""
    retired = {(d.group, d.skill_id) for d in decisions if d.action == RETIRE}
    out = library.copy()
    out.general_skills = [s for s in out.general_skills if ("general", s.skill_id) not in retired]
    out.task_specific_skills = {
        c: [s for s in skills if (f"task:{c}", s.skill_id) not in retired]
        for c, skills in out.task_specific_skills.items()
    }
    out.common_mistakes = [m for m in out.common_mistakes if ("mistakes", m.mistake_id) not in retired]
    for skill, decision in added:
        out.task_specific_skills.setdefault(decision.group.split(":", 1)[1], []).append(skill)
    return out
