"""The teacher: attributes failures and rewrites skills, conditioned on the model card.

``LLMTeacher`` prompts a language model for JSON in the library format, validates it and retries; when it
cannot produce a valid, changed skill list it falls back to ``EditTeacher``, whose deterministic edit
operators (delete, swap, add from a pool, shorten, expand) always produce a valid neighbour. Every prompt
and reply is kept in ``transcript`` so a stage can save it next to its output.
"""

from __future__ import annotations

import json
import logging
import random
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import yaml

from masa.llm.base import LLM, Message, Usage
from masa.rollout.agent import EpisodeResult
from masa.skills.library import LibraryFormatError, Mistake, Skill

log = logging.getLogger(__name__)

T = TypeVar("T")
EDIT_OPERATORS = ("delete", "swap", "add", "shorten", "expand")


NO_WEAKNESS_SEEN = "no systematic weakness seen in the preliminary rollouts"
FALLBACK_ATTEMPT = 0  # the attempt number of a transcript entry that records a fallback, not a model call


@dataclass
class TeacherCall:
    step: str
    prompt: str
    reply: str
    valid: bool
    attempt: int
    note: str = ""


@dataclass
class Rewrite:
    skills: list[Skill]
    source: str  # "llm" or "edit:<operator>"


def card_text(card: dict) -> str:
    return yaml.safe_dump(card, sort_keys=False, allow_unicode=True).strip()


def describe_failure(episode: EpisodeResult, last: int = 6, shown: int = 3) -> str:
    """A compact account of one failed episode: what the teacher needs to attribute it, ending with what the
    agent saw after its last ``shown`` actions (the trajectory, not only the action names)."""
    actions = [s.action or "(invalid)" for s in episode.trajectory]
    repeats = [a for a, n in Counter(actions).items() if n > 1]
    tail = " -> ".join(actions[-last:])
    text = (
        f"task {episode.task}: progress {episode.score:.2f}, {episode.steps} steps, "
        f"{episode.no_op_steps} no-op steps; last actions: {tail}"
    )
    if repeats:
        text += f"; repeated: {', '.join(repeats[:3])}"
    seen = [
        f"'{s.action or '(invalid)'}' -> {'(nothing changed) ' if s.no_op else ''}{' '.join(s.observation.split())[:90]}"
        for s in episode.trajectory[-shown:]
    ]
    return text + ("; what it saw: " + " | ".join(seen) if seen else "")


def skills_json(skills: list[Skill]) -> str:
    return json.dumps([s.to_dict() for s in skills], ensure_ascii=False)


def with_ids(items: list, key: str) -> list:
    """Give id-less reply items a placeholder id: the schema asks for none, since the teacher assigns them."""
    return [{key: "reply", **item} if isinstance(item, dict) and key not in item else item for item in items]


def parse_skill_list(reply: str, prefix: str) -> list[Skill]:
    """The first JSON array in ``reply`` as skills; raises LibraryFormatError with what was wrong."""
    data = with_ids(first_json_array(reply), "skill_id")
    skills = [Skill.from_dict(item, f"reply[{i}]") for i, item in enumerate(data)]
    for i, skill in enumerate(skills):  # ids are ours to assign: a reply cannot collide or smuggle paths
        skill.skill_id = f"{prefix}_{i + 1:03d}"
    return skills


class Teacher(ABC):
    transcript: list[TeacherCall]

    def state(self) -> dict[str, Any]:
        """What a search checkpoint keeps of the teacher, so a resumed search reports the whole search."""
        return {"transcript": transcript_records(self.transcript)}

    def restore(self, state: dict[str, Any]) -> None:
        """Back to a ``state()`` saved by a search that was interrupted."""
        self.transcript = [TeacherCall(**record) for record in state["transcript"]]

    def ask(
        self,
        step: str,
        prompt: str,
        parse: Callable[[str], T],
        schema: dict,
        prefill: str,
        seed: int,
        tokens: int,
        sampled: bool = False,
    ) -> T | None:
        """A model's answer to ``prompt`` that ``parse`` accepts, or None. The contract every study that asks
        the teacher something new relies on (rewording, lessons, consolidation): it has a deterministic answer
        of its own for None, and calls ``fell_back`` when it uses it. The edit teacher has no model: None."""
        return None

    def fell_back(self, step: str, output: str) -> None:
        """Record that ``step`` was answered deterministically (``output``); for the edit teacher that is its
        only way, not a fallback (LLMTeacher counts it as one)."""
        self.transcript.append(TeacherCall(step, "", output, True, 1, "edit teacher: deterministic"))

    @abstractmethod
    def weaknesses(self, card: dict, episodes: list[EpisodeResult]) -> list[str]:
        """Weaknesses of the backbone, summarised from preliminary rollouts."""

    @abstractmethod
    def attribute(self, failures: list[EpisodeResult], scope: str) -> str:
        """Why these episodes failed; ``scope`` is "general" or a task category."""

    @abstractmethod
    def rewrite(
        self,
        skills: list[Skill],
        scope: str,
        analysis: str,
        card: dict,
        history: list[tuple[list[Skill], float]],
        seed: int,
        rejected: Sequence[tuple[list[Skill], float]] = (),
        frozen: Sequence[Skill] = (),
    ) -> Rewrite:
        """A revised skill list for ``scope``; ``history`` holds the best past lists with their rewards,
        ``rejected`` earlier proposals that scored no better than what they would have replaced, ``frozen``
        the general skills the agent follows beside a task's skills (Stage 2 shows them, never edits them)."""


def loop_share(episodes: list[EpisodeResult]) -> float:
    steps = [s.action for e in episodes for s in e.trajectory]
    return 1 - len(set(steps)) / len(steps) if steps else 0.0


@dataclass
class EditTeacher(Teacher):
    """Deterministic edit operators on skill items; the offline fallback and a baseline."""

    pool: list[Skill]
    transcript: list[TeacherCall] = field(default_factory=list)

    def weaknesses(self, card: dict, episodes: list[EpisodeResult]) -> list[str]:
        found = []
        if not episodes:
            return found
        noop = sum(e.no_op_steps for e in episodes) / max(1, sum(e.steps for e in episodes))
        if noop > 0.2:
            found.append(f"takes actions that change nothing ({noop:.0%} of steps)")
        if loop_share(episodes) > 0.3:
            found.append("repeats earlier actions instead of exploring (action loops)")
        if all(e.score < 0.5 for e in episodes):
            found.append("rarely completes multi-step tasks within the step budget")
        invalid = sum(not s.valid for e in episodes for s in e.trajectory)
        if invalid:
            found.append(f"produces inadmissible or unparsable actions ({invalid} steps)")
        return found or [NO_WEAKNESS_SEEN]

    def attribute(self, failures: list[EpisodeResult], scope: str) -> str:
        analysis = "; ".join(describe_failure(e) for e in failures[:4]) or "no failures"
        self.transcript.append(
            TeacherCall("attribute", scope, analysis, True, 1, "edit teacher: failure digest")
        )
        return analysis

    def rewrite(
        self,
        skills: list[Skill],
        scope: str,
        analysis: str,
        card: dict,
        history: list[tuple[list[Skill], float]],
        seed: int,
        rejected: Sequence[tuple[list[Skill], float]] = (),
        frozen: Sequence[Skill] = (),
    ) -> Rewrite:
        rng = random.Random(f"{scope}/{seed}/{len(history)}")
        operators = list(EDIT_OPERATORS)
        rng.shuffle(operators)
        for operator in operators:
            edited = apply_edit(operator, skills, self.pool, rng)
            if edited is not None:
                self.transcript.append(
                    TeacherCall("rewrite", scope, skills_json(edited), True, 1, f"edit:{operator}")
                )
                return Rewrite(edited, f"edit:{operator}")
        raise RuntimeError(f"no edit operator applies to {scope!r}: the library and the pool are both empty")


def apply_edit(
    operator: str, skills: list[Skill], pool: list[Skill], rng: random.Random
) -> list[Skill] | None:
    """One edit, or None when the operator cannot change this list."""
    items = [Skill(s.skill_id, s.title, s.principle, s.when_to_apply, dict(s.extra)) for s in skills]
    present = {s.principle for s in items}
    if operator == "delete" and len(items) > 1:
        del items[rng.randrange(len(items))]
    elif operator == "swap" and len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        items[i], items[j] = items[j], items[i]
    elif operator == "add" and (fresh := [p for p in pool if p.principle not in present]):
        pick = rng.choice(fresh)
        items.insert(
            rng.randrange(len(items) + 1),
            Skill(pick.skill_id, pick.title, pick.principle, pick.when_to_apply),
        )
    elif operator == "shorten" and (long := [s for s in items if ". " in s.principle.rstrip(". ")]):
        target = rng.choice(long)
        target.principle = target.principle.split(". ")[0].rstrip(".") + "."
    elif operator == "expand" and (
        short := [s for s in items if s.when_to_apply and s.when_to_apply not in s.principle]
    ):
        target = rng.choice(short)
        target.principle = f"{target.principle.rstrip('.')}. Especially when {target.when_to_apply[0].lower()}{target.when_to_apply[1:]}"
    else:
        return None
    return items


@dataclass
class LLMTeacher(Teacher):
    """A prompted language model, in two steps per edit: failure attribution, then rewriting.

    Both steps answer in JSON of the library format (attribution: ``common_mistakes`` items; rewriting: skill
    items), validated against it and retried up to ``retries`` times; when no attempt validates, the
    edit-operator teacher answers instead. Every attempt and every fallback is kept in ``transcript``.
    Analyses (weaknesses, attribution) are greedy on the first attempt; rewrites are sampled on every
    attempt, seeded: greedy decoding gave every child of a node the same proposal and, on a node's first
    rewrite, copied the current skills (3 of the default run's 14 first rewrite attempts were rejected as
    unchanged).
    """

    llm: LLM
    fallback: EditTeacher
    retries: int = 2
    max_new_tokens: int = 320
    temperature: float = 0.7  # for rewrites and for the analyses' retries
    transcript: list[TeacherCall] = field(default_factory=list)
    fallbacks: int = 0
    seconds: float = 0.0  # spent in the model's calls, for the stage's cost

    def state(self) -> dict[str, Any]:
        """The transcript, the fallback count, the seconds and the model's token usage."""
        return {
            **super().state(),
            "fallbacks": self.fallbacks,
            "seconds": self.seconds,
            "usage": self.llm.usage.as_dict(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self.fallbacks, self.seconds = state["fallbacks"], state["seconds"]
        self.llm.usage = Usage(**state["usage"])

    @property
    def analysis_tokens(self) -> int:
        """Reply length for attribution and weaknesses: two or three short JSON items, decode-bound on a CPU."""
        return min(self.max_new_tokens, 160)

    def ask(
        self,
        step: str,
        prompt: str,
        parse: Callable[[str], T],
        schema: dict,
        prefill: str,
        seed: int,
        tokens: int,
        sampled: bool = False,
    ) -> T | None:
        """The first reply that ``parse`` accepts, or None after 1 + ``retries`` attempts.

        A backend that follows ``schema`` gets it and no prefill (its grammar starts the reply); any other
        is started with ``prefill``. ``parse`` checks both, since a schema cannot say "changed" or "sane".
        The first attempt is greedy unless ``sampled``; retries are always sampled.
        """
        constrained = self.llm.follows_schema
        for attempt in range(1 + self.retries):
            start = time.perf_counter()
            reply = self.llm.generate(
                [[Message("system", TEACHER_ROLE), Message("user", prompt)]],
                tokens,
                temperature=self.temperature if sampled or attempt else 0.0,
                seed=seed + attempt,
                prefill="" if constrained else prefill,
                schema=schema if constrained else None,
            )[0].text
            seconds = time.perf_counter() - start
            self.seconds += seconds
            try:
                value = parse(reply)
            except LibraryFormatError as err:
                log.info("teacher %s, attempt %d: rejected after %.0f s: %s", step, attempt + 1, seconds, err)
                self.transcript.append(TeacherCall(step, prompt, reply, False, attempt + 1, str(err)))
                continue
            log.info("teacher %s, attempt %d: valid after %.0f s", step, attempt + 1, seconds)
            self.transcript.append(TeacherCall(step, prompt, reply, True, attempt + 1))
            return value
        return None

    def fell_back(self, step: str, output: str) -> None:
        log.warning("teacher %s: no valid reply; the deterministic answer stands in", step)
        self.fallbacks += 1
        self.transcript.append(
            TeacherCall(step, "", output, True, FALLBACK_ATTEMPT, "fallback: edit teacher")
        )

    def weaknesses(self, card: dict, episodes: list[EpisodeResult]) -> list[str]:
        digest = "\n".join(f"- {describe_failure(e)}" for e in episodes[:6]) or "- no episodes"
        # Without its own strengths and weaknesses: a small teacher shown them copies them as its answer.
        facts = {k: v for k, v in card.items() if k not in ("strengths", "weaknesses")}
        prompt = WEAKNESS_PROMPT.format(card=card_text(facts), episodes=digest)
        found = self.ask(
            "weaknesses", prompt, parse_string_list, WEAKNESSES_SCHEMA, '["', 0, self.analysis_tokens
        )
        measured = self.fallback.weaknesses(card, episodes)
        if found is None:
            self.fell_back("weaknesses", json.dumps(measured))
            return measured
        # The measured digest is kept beside the teacher's summary (which may be vague; the numbers are not),
        # except its "nothing measured" line, which the teacher's findings replace.
        return found[:4] + [m for m in measured if m not in found and m != NO_WEAKNESS_SEEN]

    def attribute(self, failures: list[EpisodeResult], scope: str) -> str:
        digest = "\n".join(f"- {describe_failure(e)}" for e in failures[:4]) or "- no failures"
        focus = GENERAL_FOCUS if scope == "general" else TASK_FOCUS.format(scope=scope)
        prompt = ATTRIBUTE_PROMPT.format(scope=scope, focus=focus, failures=digest)
        mistakes = self.ask(
            "attribute",
            prompt,
            parse_mistake_list,
            MISTAKES_SCHEMA,
            '[{"mistake_id": "',
            0,
            self.analysis_tokens,
        )
        if mistakes is None:
            self.fell_back("attribute", digest)
            return f"Observed: {digest}"
        found = "\n".join(
            f"- {m.description} (why: {m.why_it_happens}; instead: {m.how_to_avoid})" for m in mistakes
        )
        return f"{found}\nObserved:\n{digest}"

    def rewrite(
        self,
        skills: list[Skill],
        scope: str,
        analysis: str,
        card: dict,
        history: list[tuple[list[Skill], float]],
        seed: int,
        rejected: Sequence[tuple[list[Skill], float]] = (),
        frozen: Sequence[Skill] = (),
    ) -> Rewrite:
        best = "\n".join(f"reward {r:.3f}: {skills_json(s)}" for s, r in history) or "(none yet)"
        failed = "".join(
            REJECTED_SECTION.format(reward=r, skills=skills_json(s)) for s, r in rejected[-REJECTED_SHOWN:]
        )
        shown = (
            FROZEN_SECTION.format(general=skills_json(list(frozen))) if scope != "general" and frozen else ""
        )
        prompt = REWRITE_PROMPT.format(
            card=card_text(card),
            scope=scope,
            skills=skills_json(skills),
            analysis=analysis,
            history=best,
            frozen=shown,
            rejected=failed,
        )
        prefix = "gen" if scope == "general" else scope.replace("-", "_")[:24]
        limit = 4 * len(skills_json(skills)) + 400

        def parse(reply: str) -> list[Skill]:
            revised = parse_skill_list(reply, prefix)
            if [s.principle for s in revised] == [s.principle for s in skills]:
                raise LibraryFormatError("reply repeats the input skills unchanged")
            if len(skills_json(revised)) > limit:
                raise LibraryFormatError("reply is far longer than the input (runaway generation)")
            return revised

        revised = self.ask(
            "rewrite",
            prompt,
            parse,
            SKILLS_SCHEMA,
            '[{"skill_id": "',
            seed,
            self.max_new_tokens,
            sampled=True,
        )
        if revised is not None:
            return Rewrite(revised, "llm")
        result = self.fallback.rewrite(skills, scope, analysis, card, history, seed, rejected, frozen)
        self.fell_back("rewrite", f"{result.source}: {skills_json(result.skills)}")
        return result


def first_json_array(reply: str) -> list:
    start = reply.find("[")
    if start < 0:
        raise LibraryFormatError("reply holds no JSON array")
    try:
        data, _ = json.JSONDecoder().raw_decode(reply[start:])
    except json.JSONDecodeError as err:
        raise LibraryFormatError(f"reply is not valid JSON: {err.msg} at char {err.pos}") from err
    if not isinstance(data, list) or not data:
        raise LibraryFormatError("reply is not a non-empty JSON list")
    return data


def parse_string_list(reply: str) -> list[str]:
    """A JSON list of short non-empty strings (the weaknesses step)."""
    items = first_json_array(reply)
    if not all(isinstance(i, str) and 8 <= len(i.strip()) <= 300 for i in items):
        raise LibraryFormatError("every item must be a string of 8 to 300 characters")
    return [" ".join(i.split()) for i in items]


def parse_mistake_list(reply: str) -> list[Mistake]:
    """A JSON list of ``common_mistakes`` items, each with a description and how to avoid it."""
    items = with_ids(first_json_array(reply), "mistake_id")
    mistakes = [Mistake.from_dict(item, f"reply[{i}]") for i, item in enumerate(items)]
    for i, mistake in enumerate(mistakes):
        if not mistake.description.strip() or not mistake.how_to_avoid.strip():
            raise LibraryFormatError(f"reply[{i}] needs a non-empty description and how_to_avoid")
        mistake.mistake_id = f"err_{i + 1:03d}"
    return mistakes


def text_field(longest: int) -> dict:
    return {"type": "string", "minLength": 3, "maxLength": longest}


def list_reply(key: str, item: dict, most: int) -> dict:
    """A JSON schema for an object holding one non-empty list: the top level of every teacher reply is an
    object because OpenAI's structured outputs require one; ``first_json_array`` reads the list inside."""
    items = {"type": "array", "minItems": 1, "maxItems": most, "items": item}
    return {"type": "object", "properties": {key: items}, "required": [key], "additionalProperties": False}


def record(fields: dict[str, int]) -> dict:
    properties = {name: text_field(longest) for name, longest in fields.items()}
    return {
        "type": "object",
        "properties": properties,
        "required": list(fields),
        "additionalProperties": False,
    }


# The shapes of the three replies; the length bounds keep a small model from running away inside a string.
WEAKNESSES_SCHEMA = list_reply("weaknesses", text_field(200), 3)
MISTAKES_SCHEMA = list_reply(
    "mistakes", record({"description": 200, "why_it_happens": 200, "how_to_avoid": 200}), 3
)
SKILLS_SCHEMA = list_reply("skills", record({"title": 80, "principle": 320, "when_to_apply": 160}), 8)


def transcript_records(calls: list[TeacherCall]) -> list[dict]:
    return [asdict(c) for c in calls]


TEACHER_ROLE = "You are a teacher who improves the skills that guide an AI agent. You answer precisely."

WEAKNESS_PROMPT = """An agent driven by this model played a few preliminary episodes.
Model card:
{card}

Episodes:
{episodes}

From these episodes only, name at most three things this agent does wrong (for example: repeats actions,
acts on the wrong objects, never completes the goal, wastes steps). One short sentence each, as a JSON list
of strings. Output only the JSON list."""

GENERAL_FOCUS = "Name general behavioural deficiencies (how the agent acts), not the procedure of any task."
TASK_FOCUS = "Name what the agent does wrong on {scope} tasks specifically."

ATTRIBUTE_PROMPT = """These episodes failed (scope: {scope}).
{failures}

{focus}
Answer as a JSON list of objects with keys "mistake_id", "description", "why_it_happens", "how_to_avoid".
Output only the JSON list."""

REJECTED_SHOWN = 3  # the most recent rejected proposals in a rewrite prompt (each costs prompt tokens)
REJECTED_SECTION = """
Rejected (scored {reward:.3f}, no better than what it would have replaced; do not propose it again):
{skills}
"""

FROZEN_SECTION = """
General skills the agent also follows (fixed; do not repeat them):
{general}
"""

REWRITE_PROMPT = """Improve the agent's {scope} skills for the model described by this card.
Model card:
{card}
{frozen}
Current skills (JSON list):
{skills}

Failure analysis:
{analysis}

Best past skill lists with their rewards:
{history}
{rejected}
Write the revised skills as JSON objects with keys "title", "principle", "when_to_apply".
Change at least one principle where the failure analysis shows it is missing or wrong: a list identical to
the current skills is rejected. Keep them short and concrete. Output only the JSON list."""
