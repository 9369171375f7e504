"""A skill library induced from trajectories (Trace2Skill, arXiv 2603.25158): analysts propose lessons from
slices of episodes, a consolidation merges them into one library.

Pure logic, no model and no environment: the analyst's parse and its deterministic answer, the slicing of the
episodes, and the hierarchical consolidation with its log. Episodes arrive as the compact dicts the
``play_induction_episodes`` stage writes (``compact_episode``).

Similarity (duplicates and conflicts): two lessons are *about the same thing* when the token Jaccard of their
title + principle, lowercased, stop words and negations removed, is at least ``SAME_THRESHOLD``. Two lessons of
one scope about the same thing with the same polarity are duplicates (merged); with opposite polarity (one
says "do X", the other "do not / never / avoid X") they conflict, and the one with more supporting episodes is
kept, ties going to the earlier lesson in the stable order (scope, title, principle). Both decisions are
logged with their evidence. A merged lesson may then be reworded by the teacher from its group's principles
(``reword_merged``; validated, else kept as merged). Nothing here draws a random number; the teacher's
sampling is seeded: the same lessons and seed give the same library.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

from masa.skills.library import LibraryFormatError, Skill, SkillLibrary
from masa.teacher.teachers import Teacher, first_json_array, list_reply, record

SAME_THRESHOLD = 0.6
NEGATIONS = frozenset({"not", "never", "avoid", "dont", "don't", "stop", "no", "without"})
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "and",
        "or",
        "is",
        "are",
        "be",
        "it",
        "its",
        "this",
        "that",
        "with",
        "from",
        "by",
        "as",
        "when",
        "you",
        "your",
        "do",
    ]
)
OBSERVATION_CHARS = 160  # of each step's observation kept in episodes.json
LESSON_FIELDS = {"title": 80, "principle": 320, "when_to_apply": 160}


@dataclass(frozen=True)
class Lesson:
    """One trajectory-local lesson: a skill's text, the scope it applies to ("general" or a category) and the
    episodes it was drawn from."""

    title: str
    principle: str
    when_to_apply: str
    scope: str
    evidence: tuple[str, ...] = ()
    source: str = "rule"  # "llm", "llm-reworded" or the deterministic rule that wrote it
    variants: tuple[str, ...] = ()  # the principles of the duplicates merged into it, besides its own

    def order(self) -> tuple[str, str, str]:
        return (self.scope, self.title, self.principle)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "evidence": list(self.evidence), "variants": list(self.variants)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lesson:
        return cls(
            **{
                **data,
                "evidence": tuple(data.get("evidence", ())),
                "variants": tuple(data.get("variants", ())),
            }
        )


def episode_id(episode: dict[str, Any]) -> str:
    return f"{episode['backbone']}/{episode['task']}/{episode['seed']}"


def compact_episode(backbone: str, seed: int, episode: Any) -> dict[str, Any]:
    """An ``EpisodeResult`` as the analysts read it: outcome, cost counters and each step's action with a
    short observation (``OBSERVATION_CHARS``)."""
    return {
        "backbone": backbone,
        "task": episode.task,
        "category": episode.category,
        "seed": seed,
        "reward": episode.reward,
        "score": episode.score,
        "success": episode.won,
        **{
            k: getattr(episode, k)
            for k in ("steps", "no_op_steps", "llm_calls", "prompt_tokens", "completion_tokens", "seconds")
        },
        "trajectory": [
            {
                "action": s.action,
                "observation": " ".join(s.observation.split())[:OBSERVATION_CHARS],
                "score": s.score,
                "no_op": s.no_op,
                "valid": s.valid,
            }
            for s in episode.trajectory
        ],
    }


def episode_slice(episodes: list[dict[str, Any]], index: int, analysts: int) -> list[dict[str, Any]]:
    """Analyst ``index``'s share: successes and failures each sorted by (backbone, task, seed) and dealt
    round-robin, so every slice mixes both as far as there are enough of each."""
    ordered = sorted(episodes, key=lambda e: (e["backbone"], e["task"], e["seed"]))
    wins = [e for e in ordered if e["success"]]
    losses = [e for e in ordered if not e["success"]]
    return wins[index::analysts] + losses[index::analysts]


def lesson_schema(most: int) -> dict:
    item = record({**LESSON_FIELDS, "scope": 64})
    return list_reply("lessons", item, most)


def parse_lessons(reply: str, scopes: list[str], most: int) -> list[Lesson]:
    """A JSON list of at most ``most`` lessons, each with a non-empty title, principle, when_to_apply and a
    scope among ``scopes``; anything else is a ``LibraryFormatError`` saying what was wrong."""
    items = first_json_array(reply)
    if len(items) > most:
        raise LibraryFormatError(f"reply has {len(items)} lessons, at most {most} were asked for")
    lessons = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise LibraryFormatError(f"reply[{i}]: expected an object, got {type(item).__name__}")
        values = {}
        for name in (*LESSON_FIELDS, "scope"):
            value = item.get(name)
            if not isinstance(value, str) or not value.strip():
                raise LibraryFormatError(f"reply[{i}].{name}: required non-empty string")
            values[name] = " ".join(value.split())
        if values["scope"] not in scopes:
            raise LibraryFormatError(
                f"reply[{i}].scope: {values['scope']!r} is not one of {', '.join(scopes)}"
            )
        lessons.append(Lesson(**values, source="llm"))
    return lessons


def digest(episodes: list[dict[str, Any]], last: int = 8) -> str:
    """The episodes as an analyst prompt shows them: outcome, then the actions with their observations."""
    lines = []
    for e in episodes:
        outcome = "SUCCESS" if e["success"] else "FAILURE"
        steps = " | ".join(
            f"{s['action'] or '(invalid)'} -> {s['observation'][:60]}" for s in e["trajectory"][-last:]
        )
        lines.append(f"- [{outcome}] {e['category']} reward {e['reward']:.2f}: {steps}")
    return "\n".join(lines) or "- no episodes"


ANALYST_PROMPT = """An AI agent played these episodes of {env} (successes and failures):
{episodes}

From these episodes only, write at most {most} lessons that would help the agent succeed: what the successes
did that worked, what the failures did wrong. Each lesson is an object with a short "title", a "principle"
(one or two imperative sentences), "when_to_apply" and "scope": "general" for any task, or one of
{categories} for that task only. Output only a JSON object {{"lessons": [...]}}."""


def analyst_prompt(env: str, episodes: list[dict[str, Any]], categories: list[str], most: int) -> str:
    return ANALYST_PROMPT.format(
        env=env, episodes=digest(episodes), most=most, categories=", ".join(categories)
    )


def _ids(episodes: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(sorted(episode_id(e) for e in episodes))


def _verb(action: str) -> str:
    return action.split()[0] if action.split() else action


def rule_lessons(episodes: list[dict[str, Any]], categories: list[str], most: int) -> list[Lesson]:
    """The deterministic analyst, from the episodes alone. Its rules:

    - progress (per category, from successes): the actions right after which the score rose, most frequent
      first, become that category's procedure;
    - loops (general, from failures): an action taken more than once in one failed episode, or a step that
      changed nothing, becomes "do not repeat an action that changed nothing", naming the repeated actions;
    - invalid (general, from failures): inadmissible or unparsable actions become "choose only admissible
      actions";
    - stalled (per category, from failures that never gained progress): their opening actions are named as
      the ones that did not lead anywhere.

    Lessons are ranked by how many episodes support them (ties by the stable order) and the first ``most``
    kept."""
    lessons = []
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in episodes:
        by_category[e["category"]].append(e)
    for category in sorted(by_category):
        if category not in categories:
            continue
        group = by_category[category]
        wins = [e for e in group if e["success"]]
        gains: Counter[str] = Counter()
        for e in wins:
            before = 0.0
            for s in e["trajectory"]:
                if s["score"] > before and s["action"]:
                    gains[s["action"]] += 1
                before = max(before, s["score"])
        if gains:
            steps = [a for a, _ in sorted(gains.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
            lessons.append(
                Lesson(
                    f"What made progress in {category}",
                    f"Successful {category} episodes gained progress right after: {'; '.join(steps)}. "
                    f"Take such steps toward the goal, in that order.",
                    f"When solving a {category} task.",
                    category,
                    _ids(wins),
                    "progress",
                )
            )
        stalled = [e for e in group if not e["success"] and all(s["score"] <= 0 for s in e["trajectory"])]
        openings = sorted({_verb(e["trajectory"][0]["action"]) for e in stalled if e["trajectory"]} - {""})
        if openings:
            lessons.append(
                Lesson(
                    f"Openings that stalled in {category}",
                    f"Failed {category} episodes never made progress after opening with "
                    f"{', '.join(openings)}. Do not keep going that way: look for the object the task "
                    "names and act on it.",
                    f"When a {category} task has made no progress after a few steps.",
                    category,
                    _ids(stalled),
                    "stalled",
                )
            )
    losses = [e for e in episodes if not e["success"]]
    looping = [e for e in losses if _repeats(e) or e["no_op_steps"]]
    if looping:
        repeated = sorted({a for e in looping for a in _repeats(e)})[:3]
        named = f" (as with: {'; '.join(repeated)})" if repeated else ""
        lessons.append(
            Lesson(
                "Do not repeat an action that changed nothing",
                f"Failed episodes repeated actions or took steps that changed nothing{named}. Never repeat "
                "an action whose observation did not change; try a different object or location instead.",
                "When the last action's observation showed no change.",
                "general",
                _ids(looping),
                "loops",
            )
        )
    invalid = [e for e in losses if any(not s["valid"] for s in e["trajectory"])]
    if invalid:
        lessons.append(
            Lesson(
                "Choose only admissible actions",
                "Failed episodes lost steps to inadmissible or unparsable actions. Pick an action from the "
                "ones the environment offers, written exactly as listed.",
                "Before every action.",
                "general",
                _ids(invalid),
                "invalid",
            )
        )
    ranked = sorted(lessons, key=lambda lesson: (-len(lesson.evidence), lesson.order()))
    return ranked[:most]


def _repeats(episode: dict[str, Any]) -> list[str]:
    counts = Counter(s["action"] for s in episode["trajectory"] if s["action"])
    return sorted(a for a, n in counts.items() if n > 1)


def analyse(
    teacher: Teacher,
    env: str,
    episodes: list[dict[str, Any]],
    categories: list[str],
    most: int,
    seed: int,
    tokens: int,
) -> list[Lesson]:
    """The teacher's lessons on these episodes when it gives a valid reply (each supported by the slice's
    episodes of its scope), else the deterministic analyst's (``rule_lessons``), recorded as a fallback."""
    scopes = ["general", *categories]
    prompt = analyst_prompt(env, episodes, categories, most)
    found = teacher.ask(
        "lessons",
        prompt,
        lambda reply: parse_lessons(reply, scopes, most),
        lesson_schema(most),
        '{"lessons": [{"title": "',
        seed,
        tokens,
    )
    if found is None:
        lessons = rule_lessons(episodes, categories, most)
        teacher.fell_back("lessons", json.dumps([lesson.as_dict() for lesson in lessons]))
        return lessons
    support = {
        scope: _ids([e for e in episodes if scope == "general" or e["category"] == scope]) for scope in scopes
    }
    return [replace(lesson, evidence=support[lesson.scope]) for lesson in found]


# --- consolidation ------------------------------------------------------------------------------------------


def _tokens(text: str) -> frozenset[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return frozenset(w for w in words if w not in STOP_WORDS and w not in NEGATIONS)


def negative(text: str) -> bool:
    """Whether a lesson forbids (``not``, ``never``, ``avoid``, ...) rather than prescribes."""
    return bool(set(re.findall(r"[a-z']+", text.lower())) & NEGATIONS)


def similarity(a: str, b: str) -> float:
    """Token Jaccard of two texts, stop words and negations removed."""
    ta, tb = _tokens(a), _tokens(b)
    return len(ta & tb) / len(ta | tb) if ta | tb else 1.0


def _text(title: str, principle: str) -> str:
    return f"{title} {principle}"


@dataclass
class ConsolidationLog:
    """Every decision of a consolidation, with its evidence: the file results/induced/{env}/consolidation.json."""

    rounds: list[list[list[int]]] = field(default_factory=list)  # per round, the slice groups merged
    merges: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    rewordings: list[dict[str, Any]] = field(default_factory=list)  # merged lessons the teacher rewrote
    into_library: list[dict[str, Any]] = field(default_factory=list)  # lessons absorbed by existing skills

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_pair(lessons: list[Lesson], log: ConsolidationLog, round_index: int) -> list[Lesson]:
    """One node of the tree: ``lessons`` (two children's) with duplicates merged and conflicts resolved.

    Lessons are visited in the stable order; each is compared with the kept ones of its scope, in order. A
    duplicate's evidence joins the kept lesson, whose text is the one with more evidence (ties: the kept
    one). A conflict keeps the lesson with more evidence (ties: the kept one, earlier in the stable order)."""
    kept: list[Lesson] = []
    for lesson in sorted(lessons, key=Lesson.order):
        for i, other in enumerate(kept):
            if other.scope != lesson.scope:
                continue
            score = similarity(_text(other.title, other.principle), _text(lesson.title, lesson.principle))
            if score < SAME_THRESHOLD:
                continue
            entry = {"round": round_index, "scope": lesson.scope, "similarity": round(score, 3)}
            if negative(other.principle) == negative(lesson.principle):
                evidence = tuple(sorted(set(other.evidence) | set(lesson.evidence)))
                text = lesson if len(lesson.evidence) > len(other.evidence) else other
                said = {other.principle, lesson.principle, *other.variants, *lesson.variants}
                variants = tuple(sorted(said - {text.principle}))
                kept[i] = replace(text, evidence=evidence, variants=variants)
                log.merges.append(
                    {
                        **entry,
                        "kept": text.title,
                        "merged": [other.title, lesson.title],
                        "evidence": list(evidence),
                    }
                )
            else:
                winner, loser = (
                    (lesson, other) if len(lesson.evidence) > len(other.evidence) else (other, lesson)
                )
                kept[i] = winner
                log.conflicts.append(
                    {
                        **entry,
                        "kept": winner.as_dict(),
                        "dropped": loser.as_dict(),
                        "rule": "more supporting episodes; ties: earlier in (scope, title, principle)",
                    }
                )
            break
        else:
            kept.append(lesson)
    return sorted(kept, key=Lesson.order)


def consolidate(slices: dict[int, list[Lesson]], log: ConsolidationLog) -> list[Lesson]:
    """The slices' lessons merged hierarchically: a binary tree over the slices in index order (whatever
    order ``slices`` is given in), each round merging neighbours pairwise (``merge_pair``)."""
    level = [([k], slices[k]) for k in sorted(slices)]
    if not level:
        return []
    round_index = 0
    while True:  # one round even for one slice: its own duplicates are merged too
        round_index += 1
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        log.rounds.append([[k for members, _ in pair for k in members] for pair in pairs])
        level = [
            (
                [k for members, _ in pair for k in members],
                merge_pair([x for _, ls in pair for x in ls], log, round_index),
            )
            for pair in pairs
        ]
        if len(level) == 1:
            return level[0][1]


REWORD_THRESHOLD = 0.3  # a rewording must still share this much (token Jaccard) with the merged lesson

REWORD_PROMPT = """These lessons for an AI agent ({scope}) say the same thing in different words:
{variants}

Write them as one lesson that keeps what they share, in the same direction (do / do not). Output only a JSON
object {{"lessons": [{{"title": ..., "principle": ..., "when_to_apply": ..., "scope": "{scope}"}}]}}."""


def parse_rewording(reply: str, lesson: Lesson) -> Lesson:
    """The teacher's one lesson for a merged group, accepted only if it keeps the group's scope and polarity
    and is still about it (token Jaccard with the merged lesson >= ``REWORD_THRESHOLD``)."""
    (found,) = parse_lessons(reply, [lesson.scope], 1)
    score = similarity(_text(found.title, found.principle), _text(lesson.title, lesson.principle))
    if score < REWORD_THRESHOLD:
        raise LibraryFormatError(
            f"the rewording shares {score:.2f} of its words with the lessons, under {REWORD_THRESHOLD}"
        )
    if negative(found.principle) != negative(lesson.principle):
        raise LibraryFormatError("the rewording turns a do into a do-not or back")
    return replace(
        lesson,
        title=found.title,
        principle=found.principle,
        when_to_apply=found.when_to_apply,
        source="llm-reworded",
    )


def reword_merged(
    teacher: Teacher, lessons: list[Lesson], log: ConsolidationLog, seed: int, tokens: int
) -> list[Lesson]:
    """Each merged lesson (one with ``variants``) rewritten by the teacher from its group's principles when it
    gives a valid rewording (``parse_rewording``), else kept as merged, recorded as a fallback."""
    out = []
    for i, lesson in enumerate(lessons):
        if not lesson.variants:
            out.append(lesson)
            continue
        variants = "\n".join(f"- {p}" for p in sorted({lesson.principle, *lesson.variants}))
        found = teacher.ask(
            "reword",
            REWORD_PROMPT.format(scope=lesson.scope, variants=variants),
            partial(parse_rewording, lesson=lesson),
            lesson_schema(1),
            '{"lessons": [{"title": "',
            seed + i,
            tokens,
        )
        if found is None:
            teacher.fell_back("reword", json.dumps(lesson.as_dict()))
            out.append(lesson)
            continue
        log.rewordings.append({"before": lesson.as_dict(), "after": found.as_dict()})
        out.append(found)
    return out


def _skills_of(library: SkillLibrary, scope: str) -> list[Skill]:
    return library.general_skills if scope == "general" else library.task_specific_skills.get(scope, [])


def into_library(start: SkillLibrary, lessons: list[Lesson], log: ConsolidationLog) -> SkillLibrary:
    """``start`` (the given library in deepen mode, empty from scratch) with the lessons added as skills.

    A lesson about the same thing as an existing skill of its scope (``similarity``) is absorbed by it, the
    skill's id and text kept and the decision logged, whatever the polarity: deepening keeps the given
    library. New skills get ids ``ind_gen_NNN`` (general) and ``ind_<category>_NNN``."""
    library = start.copy()
    for lesson in lessons:
        skills = _skills_of(library, lesson.scope)
        lesson_text = _text(lesson.title, lesson.principle)
        match = next(
            (s for s in skills if similarity(_text(s.title, s.principle), lesson_text) >= SAME_THRESHOLD),
            None,
        )
        if match is not None:
            log.into_library.append(
                {
                    "skill_id": match.skill_id,
                    "lesson": lesson.as_dict(),
                    "conflict": negative(match.principle) != negative(lesson.principle),
                }
            )
            continue
        prefix = "ind_gen" if lesson.scope == "general" else f"ind_{lesson.scope}"
        taken = {s.skill_id for _, s in library.items() if isinstance(s, Skill)}
        number = 1 + sum(1 for i in taken if i.startswith(prefix + "_"))
        skill = Skill(f"{prefix}_{number:03d}", lesson.title, lesson.principle, lesson.when_to_apply)
        if lesson.scope == "general":
            library = library.with_general([*library.general_skills, skill])
        else:
            library = library.with_task_skills(lesson.scope, [*skills, skill])
    return library
