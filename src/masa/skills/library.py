"""The skill library: the SkillRL/MASA JSON format, lossless load/save, and prompt rendering.

A library holds general skills, task-specific skills per category and common mistakes. Fields we do not
know are kept in ``extra`` so a library written by another tool survives a load/save round trip.

Skill text is untrusted data (libraries are shared like code): ids and category names must be plain names
(``ID_PATTERN``) and are rejected otherwise, never rewritten, because a silently renamed id could collide
with another one or break a reference to it; text fields are only ever rendered verbatim into the prompt.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masa.io import FileFormatError, atomic_write_text, read_text

SKILL_FIELDS = ("skill_id", "title", "principle", "when_to_apply")
MISTAKE_FIELDS = ("mistake_id", "description", "why_it_happens", "how_to_avoid", "correction")
LIBRARY_FIELDS = ("general_skills", "task_specific_skills", "common_mistakes")
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # no separators, no leading dot, no spaces


class LibraryFormatError(FileFormatError):
    """A library that does not follow the format; the message names where and what was expected."""


def check_name(value: str, where: str) -> str:
    """An id or category as a plain name: never a path (``../x``, ``/etc``, ``a/b``, ``C:\\x``)."""
    if not ID_PATTERN.fullmatch(value) or ".." in value:
        raise LibraryFormatError(
            f"{where}: expected a plain name of letters, digits, '_', '-' and '.' (no path separators, "
            f"no '..', at most 128 characters), got {value!r}"
        )
    return value


@dataclass
class Skill:
    skill_id: str
    title: str
    principle: str
    when_to_apply: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)  # as read: see _ordered

    def to_dict(self) -> dict[str, Any]:
        return _ordered(self, SKILL_FIELDS, self.extra, self.keys)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Skill:
        fields = _require_fields(data, ("skill_id", "title", "principle"), where)
        return cls(
            skill_id=fields["skill_id"],
            title=fields["title"],
            principle=fields["principle"],
            when_to_apply=_optional_str(data, "when_to_apply", where),
            extra={k: v for k, v in data.items() if k not in SKILL_FIELDS},
            keys=tuple(data),
        )


@dataclass
class Mistake:
    mistake_id: str
    description: str
    why_it_happens: str = ""
    how_to_avoid: str = ""
    correction: str = ""  # the MASA release's "WRONG: ... RIGHT: ..." form of how_to_avoid
    extra: dict[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)  # as read: see _ordered

    def to_dict(self) -> dict[str, Any]:
        return _ordered(self, MISTAKE_FIELDS, self.extra, self.keys)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Mistake:
        fields = _require_fields(data, ("mistake_id", "description"), where)
        return cls(
            mistake_id=fields["mistake_id"],
            description=fields["description"],
            why_it_happens=_optional_str(data, "why_it_happens", where),
            how_to_avoid=_optional_str(data, "how_to_avoid", where),
            correction=_optional_str(data, "correction", where),
            extra={k: v for k, v in data.items() if k not in MISTAKE_FIELDS},
            keys=tuple(data),
        )


@dataclass
class SkillLibrary:
    general_skills: list[Skill] = field(default_factory=list)
    task_specific_skills: dict[str, list[Skill]] = field(default_factory=dict)
    common_mistakes: list[Mistake] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)  # as read: see _ordered

    # --- (de)serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        values = {
            "general_skills": [s.to_dict() for s in self.general_skills],
            "task_specific_skills": {
                cat: [s.to_dict() for s in skills] for cat, skills in self.task_specific_skills.items()
            },
            "common_mistakes": [m.to_dict() for m in self.common_mistakes],
        }
        return _ordered(values, LIBRARY_FIELDS, self.extra, self.keys)

    @classmethod
    def from_dict(cls, data: Any, source: str = "library") -> SkillLibrary:
        if not isinstance(data, dict):
            raise LibraryFormatError(
                f"{source}: expected a JSON object with {LIBRARY_FIELDS}, got {_kind(data)}"
            )
        general = _require_list(data.get("general_skills", []), f"{source}: general_skills")
        tasks = data.get("task_specific_skills", {})
        if not isinstance(tasks, dict):
            raise LibraryFormatError(
                f"{source}: task_specific_skills: expected an object mapping category -> list, got {_kind(tasks)}"
            )
        for cat in tasks:
            check_name(cat, f"{source}: task_specific_skills.{cat}")
        mistakes = _require_list(data.get("common_mistakes", []), f"{source}: common_mistakes")
        library = cls(
            general_skills=[
                Skill.from_dict(s, f"{source}: general_skills[{i}]") for i, s in enumerate(general)
            ],
            task_specific_skills={
                str(cat): [
                    Skill.from_dict(s, f"{source}: task_specific_skills.{cat}[{i}]")
                    for i, s in enumerate(_require_list(skills, f"{source}: task_specific_skills.{cat}"))
                ]
                for cat, skills in tasks.items()
            },
            common_mistakes=[
                Mistake.from_dict(m, f"{source}: common_mistakes[{i}]") for i, m in enumerate(mistakes)
            ],
            extra={k: v for k, v in data.items() if k not in LIBRARY_FIELDS},
            keys=tuple(data),
        )
        for where, item in library.items(source):
            field_name = ID_FIELD[type(item)]
            check_name(getattr(item, field_name), f"{where}.{field_name}")
        return library

    def items(self, source: str = "library") -> list[tuple[str, Skill | Mistake]]:
        """Every skill and mistake with its path in the document (``task_specific_skills.boil[2]``)."""
        out: list[tuple[str, Skill | Mistake]] = [
            (f"{source}: general_skills[{i}]", s) for i, s in enumerate(self.general_skills)
        ]
        for cat, skills in self.task_specific_skills.items():
            out += [(f"{source}: task_specific_skills.{cat}[{i}]", s) for i, s in enumerate(skills)]
        out += [(f"{source}: common_mistakes[{i}]", m) for i, m in enumerate(self.common_mistakes)]
        return out

    @classmethod
    def from_json(cls, text: str, source: str = "library") -> SkillLibrary:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise LibraryFormatError(
                f"{source}: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
            ) from err
        return cls.from_dict(data, source)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> SkillLibrary:
        """A library from its JSON file (an Agent Skills folder: ``masa.skills.agentskills.load_library``)."""
        path = Path(path)
        if path.is_dir():
            raise LibraryFormatError(
                f"{path} is a folder: an Agent Skills folder is read by masa.skills.agentskills.load_library"
            )
        return cls.from_json(read_text(path), source=str(path))

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), self.to_json())

    # --- editing helpers -----------------------------------------------------------------------------------
    def copy(self) -> SkillLibrary:
        return copy.deepcopy(self)

    def with_general(self, general: list[Skill]) -> SkillLibrary:
        """A copy whose general skills are replaced (Stage 1 edits only these)."""
        new = self.copy()
        new.general_skills = copy.deepcopy(general)
        return new

    def with_task_skills(self, category: str, skills: list[Skill]) -> SkillLibrary:
        """A copy whose task skills for one category are replaced (Stage 2 edits one category at a time)."""
        new = self.copy()
        new.task_specific_skills[category] = copy.deepcopy(skills)
        return new

    def with_categories_mapped(self, mapping: dict[str, str]) -> SkillLibrary:
        """A copy whose task categories are renamed by ``mapping`` (a release's ``examine`` to the
        environment's ``look_at_obj_in_light``); skills mapped onto an existing category are appended to it."""
        new = self.copy()
        new.task_specific_skills = {}
        for category, skills in self.task_specific_skills.items():
            target = check_name(mapping.get(category, category), f"category_map.{category}")
            new.task_specific_skills.setdefault(target, []).extend(copy.deepcopy(skills))
        return new

    def without_skills(self) -> SkillLibrary:
        return SkillLibrary(extra=copy.deepcopy(self.extra), keys=self.keys)

    def task_skills(self) -> list[Skill]:
        """Every category's task skills, in category order (one list for views that ignore the category)."""
        return [s for skills in self.task_specific_skills.values() for s in skills]

    def skills(self) -> list[Skill]:
        """The general skills, then every task skill: the library's skills without its mistakes."""
        return [*self.general_skills, *self.task_skills()]

    def is_empty(self) -> bool:
        return not (self.general_skills or any(self.task_specific_skills.values()) or self.common_mistakes)

    # --- rendering -----------------------------------------------------------------------------------------
    def render(self, category: str | None = None) -> str:
        """The skill section of the agent prompt, as docs/method.md specifies it.

        ``category`` selects the task skills of that category (retrieval ``category``); ``None`` renders every
        category's skills (retrieval ``all``). Skill text is inserted verbatim: it is data, never a template.
        """
        parts: list[str] = []
        if self.general_skills:
            parts.append("### General Principles")
            parts += [f"- **{s.title}**: {s.principle}" for s in self.general_skills]
        task_skills = self.task_skills() if category is None else self.task_specific_skills.get(category, [])
        if task_skills:
            parts.append("### Task-Relevant Skills")
            for s in task_skills:
                line = f"- **{s.title}**: {s.principle}"
                if s.when_to_apply:
                    line += f" Apply when: {s.when_to_apply}"
                parts.append(line)
        if self.common_mistakes:
            parts.append("### Mistakes to Avoid")
            for m in self.common_mistakes:
                line = f"- Don't: {m.description}"
                if m.how_to_avoid:
                    line += f" Instead: {m.how_to_avoid}"
                if m.correction:
                    line += f" Correction: {m.correction}"
                parts.append(line)
        return "\n".join(parts)


ID_FIELD = {Skill: "skill_id", Mistake: "mistake_id"}
TEXT_FIELDS = {
    Skill: ("title", "principle", "when_to_apply"),
    Mistake: ("description", "why_it_happens", "how_to_avoid", "correction"),
}


def cap_text(
    library: SkillLibrary, max_chars: int, source: str = "library"
) -> tuple[SkillLibrary, list[str]]:
    """A copy whose text fields are at most ``max_chars`` long, and one note per truncated field.

    Truncated rather than rejected: an overlong skill is still a skill, and a community library should not
    fail a run for one essay; the notes say what was cut so the caller can log it.
    """
    capped = library.copy()
    notes = []
    fields: list[tuple[str, Any, str]] = [
        (where, item, name) for where, item in capped.items(source) for name in TEXT_FIELDS[type(item)]
    ]
    pool = capped.extra.get("skill_pool")  # the edit teacher's extra skills (runtime.skill_pool)
    if isinstance(pool, list):
        fields += [
            (f"{source}: skill_pool[{i}]", item, name)
            for i, item in enumerate(pool)
            if isinstance(item, dict)
            for name in TEXT_FIELDS[Skill]
        ]
    for where, item, name in fields:
        value = item.get(name) if isinstance(item, dict) else getattr(item, name)
        if isinstance(value, str) and len(value) > max_chars:
            short = value[: max_chars - 3] + "..."
            if isinstance(item, dict):
                item[name] = short
            else:
                setattr(item, name, short)
            notes.append(
                f"{where}.{name}: {len(value)} characters truncated to {max_chars} (skills.max_skill_chars)"
            )
    return capped, notes


KNOWN_TOP_LEVEL = (*LIBRARY_FIELDS, "skill_pool")  # skill_pool: the edit teacher's extra skills


@dataclass
class LibraryCheck:
    """What ``check_library`` found: errors refuse the library, warnings are logged and the library used."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_library(
    library: SkillLibrary, source: str, categories: list[str] | None = None, complete: bool = False
) -> LibraryCheck:
    """Mistakes a well-formed library can still hold, checked before a run uses it.

    An empty library and a repeated id are errors (the search would run on nothing, or edit the wrong
    skill). A category the environment lacks never has its task skills shown: when ``categories`` is the
    environment's ``complete`` list and the name is close to one of them it is a typo and an error,
    otherwise a warning (the MASA release's ``examine`` is a category masa's ALFWorld does not have). An
    unknown top-level key is a warning and is kept on save, so release banks with their own keys still load.
    """
    check = LibraryCheck()
    if library.is_empty():
        check.errors.append(f"{source}: the library has no skills and no mistakes")
    seen: dict[str, str] = {}
    for where, item in library.items(source):
        item_id = getattr(item, ID_FIELD[type(item)])
        if item_id in seen:
            check.errors.append(f"{where}: id {item_id!r} repeats {seen[item_id].split(': ', 1)[1]}")
        seen.setdefault(item_id, where)
    for key in library.extra:
        if key not in KNOWN_TOP_LEVEL:
            check.warnings.append(
                f"{source}: {key}: unknown top-level key, kept as it is; known: {', '.join(KNOWN_TOP_LEVEL)}"
            )
    for category in library.task_specific_skills if categories is not None else ():
        if category in categories:
            continue
        close = difflib.get_close_matches(category, categories, n=1)
        message = (
            f"{source}: task_specific_skills.{category}: not a category of the environment, so these skills "
            f"are never shown; {f'did you mean {close[0]!r}? ' if close else ''}"
            f"categories: {', '.join(categories)}"
        )
        (check.errors if close and complete else check.warnings).append(message)
    return check


def _ordered(
    item: Any, known: tuple[str, ...], extra: dict[str, Any], keys: tuple[str, ...]
) -> dict[str, Any]:
    """A record as a JSON object in the key order it was read in, so a saved file equals the one loaded.

    A known field that was absent when read stays absent while it holds its empty default (a release bank
    without ``common_mistakes`` must not gain ``common_mistakes: []``); fields set since are appended in the
    format's order, after the ones that were read. ``item`` is an object or a dict of the known fields.
    """
    value = item.get if isinstance(item, dict) else lambda name: getattr(item, name)
    fields = {name: value(name) for name in known}
    out: dict[str, Any] = {}
    for key in keys:
        if key in fields:
            out[key] = fields[key]
        elif key in extra:
            out[key] = extra[key]
    for name in known:
        if name not in out and (fields[name] or name in KEY_FIELDS or not (keys or name in SET_ONLY)):
            out[name] = fields[name]
    return out | {k: v for k, v in extra.items() if k not in out}


KEY_FIELDS = ("skill_id", "title", "principle", "mistake_id", "description")  # always written
SET_ONLY = ("correction",)  # written only when set, so libraries made here keep the SkillRL format


def _kind(value: Any) -> str:
    return type(value).__name__


def _require_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise LibraryFormatError(f"{where}: expected a list, got {_kind(value)}")
    return value


def _require_fields(data: Any, names: tuple[str, ...], where: str) -> dict[str, str]:
    if not isinstance(data, dict):
        raise LibraryFormatError(f"{where}: expected an object, got {_kind(data)}")
    out: dict[str, str] = {}
    for name in names:
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise LibraryFormatError(f"{where}.{name}: expected a non-empty string, got {value!r}")
        out[name] = value
    return out


def _optional_str(data: dict[str, Any], name: str, where: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise LibraryFormatError(f"{where}.{name}: expected a string, got {_kind(value)}")
    return value
