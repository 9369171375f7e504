"""Skill libraries as Agent Skills folders: one ``<name>/SKILL.md`` per skill group, YAML front matter first.

Groups: ``general`` (general skills), ``task-<category>`` (one per category) and ``mistakes``. Each
SKILL.md has the two required front-matter fields (``name``, equal to its folder; ``description``) and a
readable Markdown body. So that the SkillRL/MASA JSON survives the trip unchanged, ``metadata`` (a
string-to-string map in the Agent Skills format) carries the group's items as JSON under ``masa-items``;
the ``general`` group also carries the category order and the library's unknown top-level fields.

A folder written by another tool (no ``masa-items``) is read too: each SKILL.md becomes one general skill
whose title is its ``name``, principle its body and ``when_to_apply`` its ``description``.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from masa.io import atomic_write_text
from masa.skills import LibraryFormatError, Mistake, Skill, SkillLibrary

SKILL_FILE = "SKILL.md"
MAX_NAME = 64
MAX_DESCRIPTION = 1024
_FRONT = re.compile(r"\A---\n(.*?)\n---\n?(.*)\Z", re.DOTALL)


def slug(text: str) -> str:
    """A folder name the format allows (lowercase letters, digits, single hyphens) and that cannot leave its
    parent: no separators, no dots, never empty."""
    value = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return value[:MAX_NAME].rstrip("-") or "skills"


@dataclass(frozen=True)
class SkillGroup:
    name: str  # folder and front-matter name
    description: str
    body: str
    metadata: dict[str, str]


def _describe(kind: str, titles: list[str]) -> str:
    text = f"{kind}: {'; '.join(titles)}." if titles else f"{kind} (none)."
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


def _skills_body(heading: str, skills: list[Skill]) -> str:
    parts = [f"# {heading}", ""]
    for s in skills:
        parts += [f"## {s.title}", "", s.principle, ""]
        if s.when_to_apply:
            parts += [f"Apply when: {s.when_to_apply}", ""]
    return "\n".join(parts)


def _mistakes_body(mistakes: list[Mistake]) -> str:
    parts = ["# Mistakes to avoid", ""]
    for m in mistakes:
        parts += [f"## Don't: {m.description}", ""]
        if m.why_it_happens:
            parts += [f"Why it happens: {m.why_it_happens}", ""]
        if m.how_to_avoid:
            parts += [f"Instead: {m.how_to_avoid}", ""]
        if m.correction:
            parts += [f"Correction: {m.correction}", ""]
    return "\n".join(parts)


def _items(values: list[Any]) -> str:
    return json.dumps([v.to_dict() for v in values], ensure_ascii=False)


def library_groups(library: SkillLibrary) -> list[SkillGroup]:
    """The library split into groups, in a stable order; task folder names are unique slugs."""
    general = SkillGroup(
        "general",
        _describe("General principles for the agent", [s.title for s in library.general_skills]),
        _skills_body("General principles", library.general_skills),
        {
            "masa-group": "general",
            "masa-items": _items(library.general_skills),
            "masa-categories": json.dumps(list(library.task_specific_skills), ensure_ascii=False),
            "masa-library-extra": json.dumps(library.extra, ensure_ascii=False),
        },
    )
    groups = [general]
    used = {"general", "mistakes"}
    for category, skills in library.task_specific_skills.items():
        name, n = slug(f"task-{category}"), 2
        while name in used:
            name, n = f"{slug(f'task-{category}')[: MAX_NAME - 4]}-{n}", n + 1
        used.add(name)
        groups.append(
            SkillGroup(
                name,
                _describe(f"Skills for {category} tasks", [s.title for s in skills]),
                _skills_body(f"Skills for {category} tasks", skills),
                {"masa-group": "task", "masa-category": category, "masa-items": _items(skills)},
            )
        )
    groups.append(
        SkillGroup(
            "mistakes",
            _describe("Common mistakes to avoid", [m.description for m in library.common_mistakes]),
            _mistakes_body(library.common_mistakes),
            {"masa-group": "mistakes", "masa-items": _items(library.common_mistakes)},
        )
    )
    return groups


def skill_markdown(group: SkillGroup) -> str:
    front = {"name": group.name, "description": group.description, "metadata": group.metadata}
    return (
        f"---\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=10**9)}---\n\n{group.body}"
    )


def write_folder(library: SkillLibrary, folder: str | Path) -> list[Path]:
    """Write the library as an Agent Skills folder (replacing a previous export in that folder)."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    paths = []
    for group in library_groups(library):
        path = folder / group.name / SKILL_FILE
        atomic_write_text(path, skill_markdown(group))
        paths.append(path)
    return paths


def parse_skill_markdown(text: str, source: str) -> tuple[dict[str, Any], str]:
    """(front matter, body) of one SKILL.md; errors name the file and what is missing."""
    match = _FRONT.match(text.replace("\r\n", "\n"))
    if not match:
        raise LibraryFormatError(
            f"{source}: a SKILL.md must start with YAML front matter between '---' lines"
        )
    try:
        front = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        raise LibraryFormatError(f"{source}: front matter is not valid YAML: {err}") from err
    if not isinstance(front, dict) or not front.get("name") or not front.get("description"):
        raise LibraryFormatError(f"{source}: front matter needs non-empty 'name' and 'description'")
    return front, match.group(2)


def _loads(value: Any, source: str, key: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, json.JSONDecodeError) as err:
        raise LibraryFormatError(f"{source}: metadata.{key} is not valid JSON: {err}") from err


def read_folder(folder: str | Path) -> SkillLibrary:
    """A library from an Agent Skills folder (ours, lossless; or any other, one general skill per file)."""
    folder = Path(folder)
    files = sorted(folder.glob(f"*/{SKILL_FILE}"))
    if not files:
        raise LibraryFormatError(f"{folder}: no */{SKILL_FILE} inside; expected one folder per skill group")
    data: dict[str, Any] = {"general_skills": [], "task_specific_skills": {}, "common_mistakes": []}
    order: list[str] | None = None
    foreign: list[dict[str, Any]] = []
    for path in files:
        front, body = parse_skill_markdown(path.read_text(encoding="utf-8"), str(path))
        meta = front.get("metadata") or {}
        group = meta.get("masa-group")
        if group is None:
            foreign.append(
                {
                    "skill_id": slug(str(front["name"])),
                    "title": str(front["name"]),
                    "principle": body.strip() or str(front["description"]),
                    "when_to_apply": str(front["description"]),
                }
            )
            continue
        items = _loads(meta.get("masa-items"), str(path), "masa-items")
        if group == "general":
            data["general_skills"] = items
            order = _loads(meta.get("masa-categories", "[]"), str(path), "masa-categories")
            extra = _loads(meta.get("masa-library-extra", "{}"), str(path), "masa-library-extra")
            data.update({k: v for k, v in extra.items() if k not in data})
        elif group == "task":
            data["task_specific_skills"][meta["masa-category"]] = items
        elif group == "mistakes":
            data["common_mistakes"] = items
        else:
            raise LibraryFormatError(f"{path}: unknown metadata.masa-group {group!r}")
    if order is not None:
        tasks = data["task_specific_skills"]
        data["task_specific_skills"] = {c: tasks[c] for c in order if c in tasks} | tasks
    data["general_skills"] = data["general_skills"] + foreign
    return SkillLibrary.from_dict(data, str(folder))
