"""Skill libraries as Agent Skills folders: one ``<name>/SKILL.md`` per skill group, YAML front matter first.

Groups: ``general`` (general skills), ``task-<category>`` (one per category) and ``mistakes``. Each
SKILL.md has the two required front-matter fields (``name``, equal to its folder; ``description``) and a
readable Markdown body. So that the SkillRL/MASA JSON survives the trip unchanged, ``metadata`` (a
string-to-string map in the Agent Skills format) carries the group's items as JSON under ``masa-items``;
the ``general`` group also carries the category order and the library's unknown top-level fields.

Skills as people publish them (no ``masa-group``) are read too, in any of the published layouts: one skill
folder (``pdf/SKILL.md``), a folder of skills (``*/SKILL.md``) or a repository (``skills/*/SKILL.md``). Each
becomes one skill whose title is its ``name``, ``when_to_apply`` its ``description`` and principle its body:
a task skill of ``metadata.masa-category`` when given, else a general skill, whose principle then starts
with the description (the general section renders no when-to-apply). ``license``, the other front-matter
fields and the names of the folder's other files (reference.md, scripts) are kept in the skill's
``agentskills`` field; files not read are listed in a warning (``include_files`` reads the text ones).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from masa.io import atomic_write_text, load_yaml, read_text
from masa.skills.library import LibraryFormatError, Mistake, Skill, SkillLibrary

SKILL_FILE = "SKILL.md"
MAX_NAME = 64
MAX_DESCRIPTION = 1024
log = logging.getLogger(__name__)
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


def _json(value: Any) -> str:
    """Metadata JSON in ASCII: YAML folds characters such as U+0085 (NEL) in a plain scalar into a space,
    so non-ASCII text goes as JSON escapes and comes back exact (the readable body keeps it as it is)."""
    return json.dumps(value)


def _items(values: list[Any]) -> str:
    return _json([v.to_dict() for v in values])


def library_groups(library: SkillLibrary) -> list[SkillGroup]:
    """The library split into groups, in a stable order; task folder names are unique slugs."""
    general = SkillGroup(
        "general",
        _describe("General principles for the agent", [s.title for s in library.general_skills]),
        _skills_body("General principles", library.general_skills),
        {
            "masa-group": "general",
            "masa-items": _items(library.general_skills),
            "masa-categories": _json(list(library.task_specific_skills)),
            "masa-library-extra": _json(library.extra),
            "masa-library-keys": _json(list(library.to_dict())),
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
    """Write the library as an Agent Skills folder, replacing only a previous export's own ``SKILL.md`` files.

    Anything else in the folder (another tool's skills, notes, scripts) is never deleted: the export is
    refused, naming what is in the way, so a mistyped ``--out`` cannot wipe a repository.
    """
    folder = Path(folder)
    groups = library_groups(library)
    if folder.exists():
        foreign = sorted(
            str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not _ours(p)
        )
        if foreign:
            raise LibraryFormatError(
                f"{folder}: not an export of ours ({', '.join(foreign[:5])}"
                f"{' ...' if len(foreign) > 5 else ''}); refusing to write over it: choose an empty folder"
            )
        for old in folder.glob(f"*/{SKILL_FILE}"):  # a previous export's groups this library no longer has
            if old.parent.name not in {g.name for g in groups}:
                old.unlink()
                old.parent.rmdir()
    paths = []
    for group in groups:
        path = folder / group.name / SKILL_FILE
        atomic_write_text(path, skill_markdown(group))
        paths.append(path)
    return paths


def _ours(path: Path) -> bool:
    """Whether a file is a SKILL.md this module wrote (a ``masa-group`` in its front matter)."""
    if path.name != SKILL_FILE or path.parent.parent == path:
        return False
    try:
        front, _ = parse_skill_markdown(read_text(path), str(path))
    except (LibraryFormatError, UnicodeDecodeError):
        return False
    return isinstance(front.get("metadata"), dict) and "masa-group" in front["metadata"]


def parse_skill_markdown(text: str, source: str) -> tuple[dict[str, Any], str]:
    """(front matter, body) of one SKILL.md; errors name the file and what is missing."""
    match = _FRONT.match(text.replace("\r\n", "\n"))
    if not match:
        raise LibraryFormatError(
            f"{source}: a SKILL.md must start with YAML front matter between '---' lines"
        )
    front = load_yaml(match.group(1), f"{source}: front matter", LibraryFormatError)
    if not isinstance(front, dict) or not front.get("name") or not front.get("description"):
        raise LibraryFormatError(f"{source}: front matter needs non-empty 'name' and 'description'")
    meta = front.get("metadata", {})
    if not isinstance(meta, dict):
        raise LibraryFormatError(
            f"{source}: metadata: expected a mapping of string keys, got {type(meta).__name__}"
        )
    return front, match.group(2)


def _loads(meta: dict[str, Any], key: str, default: str, kind: type, source: str) -> Any:
    """One JSON value of our metadata, checked to be a ``kind`` (list or dict)."""
    try:
        value = json.loads(meta.get(key, default))
    except (TypeError, json.JSONDecodeError) as err:
        raise LibraryFormatError(
            f"{source}: metadata.{key}: expected JSON text, got an error: {err}"
        ) from err
    if not isinstance(value, kind):
        raise LibraryFormatError(
            f"{source}: metadata.{key}: expected a JSON {'list' if kind is list else 'object'}, "
            f"got {type(value).__name__}"
        )
    return value


def skill_files(folder: Path) -> list[Path]:
    """The SKILL.md files of a folder in any published layout: the folder is one skill, a repository with
    ``skills/*/SKILL.md``, or a folder of skills."""
    for pattern in (SKILL_FILE, f"skills/*/{SKILL_FILE}", f"*/{SKILL_FILE}"):
        files = sorted(folder.glob(pattern))
        if files:
            return files
    raise LibraryFormatError(
        f"{folder}: no {SKILL_FILE}, skills/*/{SKILL_FILE} or */{SKILL_FILE} inside; expected one skill "
        "folder, a repository of skills or a folder of skills"
    )


def public_skill(
    path: Path, front: dict[str, Any], body: str, include_files: bool = False
) -> tuple[str | None, dict[str, Any]]:
    """(category or None, skill) of a SKILL.md as people publish it; see the module docstring.

    ``include_files`` (``skills.include_skill_files``) appends the text of the folder's Markdown and text
    files to the principle, each under its name; the base library's ``max_skill_chars`` cap then bounds it.
    """
    meta = front.get("metadata") or {}
    category = meta.get("masa-category")
    description = str(front["description"])
    files = sorted(
        str(p.relative_to(path.parent)) for p in path.parent.rglob("*") if p.is_file() and p != path
    )
    texts = [f for f in files if include_files and Path(f).suffix in (".md", ".txt")]
    for name in texts:
        body += (
            f"\n\n## {name}\n\n{(path.parent / name).read_text(encoding='utf-8', errors='replace').strip()}"
        )
    if unread := [f for f in files if f not in texts]:
        log.warning("%s: the skill's files are listed, not read: %s", path, ", ".join(unread))
    kept = {k: v for k, v in front.items() if k not in ("name", "description")}
    skill: dict[str, Any] = {
        "skill_id": slug(str(front["name"])),
        "title": str(front["name"]),
        "principle": body.strip() if category else f"{description}\n\n{body.strip()}".strip(),
        "when_to_apply": description,
    }
    if kept or files:
        skill["agentskills"] = {**kept, **({"files": files} if files else {})}
    return category, skill


def load_library(path: str | Path, include_files: bool = False) -> SkillLibrary:
    """A library from its JSON file or from an Agent Skills folder (``include_files`` adds a public skill's
    reference files to its text): how every library a user brings is read."""
    return read_folder(path, include_files) if Path(path).is_dir() else SkillLibrary.load(path)


def read_folder(folder: str | Path, include_files: bool = False) -> SkillLibrary:
    """A library from an Agent Skills folder (ours, lossless; or as people publish them)."""
    folder = Path(folder)
    data: dict[str, Any] = {"general_skills": [], "task_specific_skills": {}, "common_mistakes": []}
    order: list[str] | None = None
    keys: list[str] = []  # the library's top-level keys as saved (a bank without common_mistakes stays so)
    foreign: list[dict[str, Any]] = []
    for path in skill_files(folder):
        source = str(path)
        front, body = parse_skill_markdown(read_text(path), source)
        meta = front.get("metadata") or {}
        group = meta.get("masa-group")
        if group is None:
            category, skill = public_skill(path, front, body, include_files)
            if category is None:
                foreign.append(skill)
            else:
                data["task_specific_skills"].setdefault(str(category), []).append(skill)
            continue
        items = _loads(meta, "masa-items", "[]", list, source)
        if group == "general":
            data["general_skills"] = items
            order = _loads(meta, "masa-categories", "[]", list, source)
            extra = _loads(meta, "masa-library-extra", "{}", dict, source)
            data.update({k: v for k, v in extra.items() if k not in data})
            keys = _loads(meta, "masa-library-keys", "[]", list, source)
        elif group == "task":
            if not isinstance(meta.get("masa-category"), str):
                raise LibraryFormatError(f"{source}: metadata.masa-category: required for masa-group 'task'")
            data["task_specific_skills"][meta["masa-category"]] = items
        elif group == "mistakes":
            data["common_mistakes"] = items
        else:
            raise LibraryFormatError(
                f"{source}: metadata.masa-group: expected general, task or mistakes, got {group!r}"
            )
    if order is not None:
        tasks = data["task_specific_skills"]
        data["task_specific_skills"] = {c: tasks[c] for c in order if c in tasks} | tasks
    data["general_skills"] = data["general_skills"] + foreign
    if keys and not foreign:
        data = {k: data[k] for k in keys if k in data} | {
            k: v for k, v in data.items() if k not in keys and v
        }
    return SkillLibrary.from_dict(data, str(folder))
