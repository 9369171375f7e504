import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masa.skills.agentskills import load_library, parse_skill_markdown, read_folder, slug, write_folder
from masa.skills.library import ID_PATTERN, LibraryFormatError, SkillLibrary
from tests.test_skills import RELEASE_BASE, RELEASE_CORRECTION, RELEASE_EVOLVED, release_bank

BASE = "resources/skills/scienceworld.json"

FOREIGN = """---
name: {name}
description: Use when the room is dark or the object is not in view.
---

Look around and open doors before concluding an object is absent.
"""


def test_base_library_json_to_skill_md_to_json_is_identical(tmp_path):
    original = json.loads(Path(BASE).read_text())
    write_folder(load_library(BASE), tmp_path / "skills")
    assert load_library(tmp_path / "skills").to_dict() == original
    names = sorted(p.parent.name for p in (tmp_path / "skills").glob("*/SKILL.md"))
    assert names[0] == "general" and "mistakes" in names and any(n.startswith("task-") for n in names)
    for path in (tmp_path / "skills").glob("*/SKILL.md"):
        front, body = parse_skill_markdown(path.read_text(), str(path))
        assert front["name"] == path.parent.name and len(front["description"]) <= 1024 and body.strip()


def test_foreign_skill_md_folder_imported_unaligned_and_exported_keeps_the_same_skills(tmp_path):
    for name in ("explore-first", "read-the-task"):
        (tmp_path / "in" / name).mkdir(parents=True)
        (tmp_path / "in" / name / "SKILL.md").write_text(FOREIGN.format(name=name))
    imported = load_library(tmp_path / "in")
    assert [s.title for s in imported.general_skills] == ["explore-first", "read-the-task"]
    assert imported.general_skills[0].principle.startswith("Use when the room is dark")  # the description
    assert "Look around and open doors" in imported.render(None)
    write_folder(imported, tmp_path / "out")  # no alignment in between
    assert load_library(tmp_path / "out").to_dict() == imported.to_dict()


def test_hostile_category_names_stay_inside_the_folder_and_round_trip(tmp_path):
    # Path-like names never get this far: the library refuses them on load (tests/test_skills.py) ...
    with pytest.raises(LibraryFormatError, match=r"\.\./\.\./etc"):
        SkillLibrary.from_dict({"task_specific_skills": {"../../etc": []}})
    # ... and the names it accepts still become distinct folders inside the output, whatever their case.
    data = {
        "general_skills": [],
        "task_specific_skills": {
            "clean": [{"skill_id": "a", "title": "t", "principle": "p"}],
            "CLEAN": [{"skill_id": "b", "title": "t", "principle": "p", "when_to_apply": "w"}],
            "clean.v2": [{"skill_id": "c", "title": "t", "principle": "p"}],
        },
        "common_mistakes": [],
    }
    library = SkillLibrary.from_dict(data)
    paths = write_folder(library, tmp_path / "out")
    assert all(p.resolve().is_relative_to((tmp_path / "out").resolve()) for p in paths)
    assert len({p.parent.name.lower() for p in paths}) == 5
    assert not any(p.parent.name.startswith(".") for p in paths)
    assert read_folder(tmp_path / "out").to_dict() == library.to_dict()
    assert slug("..") == "skills" and "/" not in slug("a/../b")


def test_a_skill_md_without_front_matter_is_refused_naming_the_file(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "SKILL.md").write_text("# no front matter\n")
    with pytest.raises(LibraryFormatError, match=r"x/SKILL\.md.*front matter"):
        load_library(tmp_path)


text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(str.strip)
# ids and category names are plain names (masa.skills.library.ID_PATTERN); anything else is refused on load
name = st.from_regex(ID_PATTERN, fullmatch=True).filter(lambda s: ".." not in s and len(s) <= 30)
extra = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: k not in {"skill_id", "title", "principle"}),
    st.one_of(st.integers(), text, st.lists(st.integers(), max_size=3)),
    max_size=2,
)
skill = st.builds(
    lambda i, t, p, w, x: {**x, "skill_id": i, "title": t, "principle": p, "when_to_apply": w},
    name,
    text,
    text,
    st.text(max_size=20),
    extra.map(lambda d: {k: v for k, v in d.items() if k != "when_to_apply"}),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    general=st.lists(skill, max_size=3),
    tasks=st.dictionaries(name, st.lists(skill, max_size=2), max_size=3),
    top=st.dictionaries(st.sampled_from(["version", "skill_pool", "notes"]), st.integers(), max_size=2),
)
def test_any_library_round_trips_through_skill_md(tmp_path, general, tasks, top):
    data = {"general_skills": general, "task_specific_skills": tasks, "common_mistakes": [], **top}
    library = SkillLibrary.from_dict(data)
    write_folder(library, tmp_path / "h")
    back = read_folder(tmp_path / "h").to_dict()
    assert back == data and list(back["task_specific_skills"]) == list(tasks)


PUBLIC = """---
name: {name}
description: Use this skill when {name} files must be read or filled in.
license: Proprietary. LICENSE.txt has complete terms
{more}---

# {name}

Read reference.md first.
"""


def public_skill_folder(folder: Path, name: str, more: str = "") -> Path:
    """A skill as anthropics/skills publishes one: SKILL.md with license, plus reference files and scripts."""
    (folder / name / "scripts").mkdir(parents=True)
    (folder / name / "SKILL.md").write_text(PUBLIC.format(name=name, more=more))
    (folder / name / "reference.md").write_text("details")
    (folder / name / "scripts" / "fill.py").write_text("print(1)")
    return folder / name


@pytest.mark.parametrize("layout", ["one skill", "folder of skills", "repository"])
def test_public_skill_layouts_load_with_their_descriptions_in_the_prompt(tmp_path, layout, caplog):
    parent = {"one skill": tmp_path, "folder of skills": tmp_path, "repository": tmp_path / "skills"}[layout]
    pdf = public_skill_folder(parent, "pdf")
    if layout != "one skill":
        public_skill_folder(parent, "docx", "metadata:\n  masa-category: clean\n")
    if layout == "repository":  # a repository root also holds a template one level down, which is not a skill
        public_skill_folder(tmp_path, "template")
    with caplog.at_level("WARNING", logger="masa.skills.agentskills"):
        library = load_library(pdf if layout == "one skill" else tmp_path)
    assert [s.title for s in library.general_skills] == ["pdf"]
    rendered = library.render(None)
    assert "Use this skill when pdf files must be read" in rendered and "Read reference.md first." in rendered
    kept = library.general_skills[0].extra["agentskills"]
    assert kept == {
        "license": "Proprietary. LICENSE.txt has complete terms",
        "files": ["reference.md", "scripts/fill.py"],
    }
    assert "reference.md, scripts/fill.py" in caplog.text
    if layout != "one skill":  # metadata.masa-category says which category a public skill serves
        assert [s.title for s in library.task_specific_skills["clean"]] == ["docx"]
        assert "Apply when: Use this skill when docx files" in library.render("clean")


def test_export_never_deletes_files_it_did_not_write(tmp_path):
    library = load_library(BASE)
    public_skill_folder(tmp_path / "repo", "pdf")
    with pytest.raises(LibraryFormatError, match=r"repo: not an export of ours \(pdf/SKILL\.md"):
        write_folder(library, tmp_path / "repo")
    assert sorted(p.name for p in (tmp_path / "repo").rglob("*") if p.is_file()) == [
        "SKILL.md",
        "fill.py",
        "reference.md",
    ]
    write_folder(library, tmp_path / "out")
    smaller = library.copy()
    smaller.task_specific_skills = dict(list(smaller.task_specific_skills.items())[:1])
    write_folder(smaller, tmp_path / "out")  # a previous export of ours is replaced, stale groups removed
    assert load_library(tmp_path / "out").to_dict() == smaller.to_dict()


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("metadata: just-a-string\n", r"x/SKILL\.md: metadata: expected a mapping of string keys, got str"),
        (
            "metadata:\n  masa-group: task\n  masa-items: '[]'\n",
            r"x/SKILL\.md: metadata\.masa-category: required",
        ),
        (
            "metadata:\n  masa-group: general\n  masa-items: '[]'\n  masa-library-extra: '[1]'\n",
            r"x/SKILL\.md: metadata\.masa-library-extra: expected a JSON object, got list",
        ),
        (
            "metadata:\n  masa-group: general\n  masa-items: '{{'\n",
            r"x/SKILL\.md: metadata\.masa-items: expected JSON",
        ),
        (
            "metadata:\n  masa-group: other\n",
            r"x/SKILL\.md: metadata\.masa-group: expected general, task or mistakes",
        ),
        (
            "a: &a [x, x]\nb: [*a, *a]\n",
            r"x/SKILL\.md: front matter: not valid YAML at line 4, column 5: YAML aliases",
        ),
    ],
)
def test_malformed_skill_md_gets_one_line_naming_the_file_and_field(tmp_path, front, message):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "SKILL.md").write_text(f"---\nname: x\ndescription: d\n{front}---\nbody\n")
    with pytest.raises(LibraryFormatError, match=message) as err:
        load_library(tmp_path)
    assert "\n" not in str(err.value)


def test_release_shaped_banks_survive_the_skill_md_round_trip_key_for_key(tmp_path):
    for i, data in enumerate([RELEASE_EVOLVED, RELEASE_CORRECTION, RELEASE_BASE]):
        write_folder(SkillLibrary.from_dict(data), tmp_path / str(i))
        back = read_folder(tmp_path / str(i)).to_dict()
        assert json.dumps(back) == json.dumps(data)  # equal, absent keys absent, in the same order
    assert "RIGHT: 'move mug 1 to sidetable 1'" in (tmp_path / "1" / "mistakes" / "SKILL.md").read_text()


def test_a_public_skills_reference_files_are_included_within_the_cap_when_asked(tmp_path):
    from masa.stages.context import load_base_library

    public_skill_folder(tmp_path, "pdf")
    (tmp_path / "pdf" / "reference.md").write_text("Use pypdf. " + "x" * 5000)
    run = {"max_skill_chars": 2000, "include_skill_files": True}
    principle = load_base_library(str(tmp_path / "pdf"), run).general_skills[0].principle
    assert "## reference.md\n\nUse pypdf." in principle and len(principle) == 2000
    assert "print(1)" not in principle  # scripts are listed, never pasted into a prompt
    assert "Use pypdf" not in load_base_library(str(tmp_path / "pdf"), {"max_skill_chars": 2000}).render()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=release_bank)
def test_any_release_shaped_bank_round_trips_through_skill_md_key_for_key(tmp_path, data):
    write_folder(SkillLibrary.from_dict(data), tmp_path / "h")
    assert json.dumps(read_folder(tmp_path / "h").to_dict()) == json.dumps(data)
