import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masa.io import FileFormatError
from masa.skills.library import LibraryFormatError, Skill, SkillLibrary, cap_text

BASE = "resources/skills/scienceworld.json"


def test_base_library_round_trips_losslessly(tmp_path):
    original = json.loads(Path(BASE).read_text())
    library = SkillLibrary.load(BASE)
    library.save(tmp_path / "copy.json")
    assert json.loads((tmp_path / "copy.json").read_text()) == original
    assert "skill_pool" in library.extra  # unknown top-level fields survive


def test_unknown_item_fields_survive():
    data = {
        "general_skills": [
            {
                "skill_id": "g1",
                "title": "t",
                "principle": "p",
                "when_to_apply": "w",
                "source": "human",
                "weight": 2,
            }
        ],
        "task_specific_skills": {},
        "common_mistakes": [],
    }
    assert SkillLibrary.from_dict(data).to_dict() == data


def test_render_has_the_three_sections_in_method_format():
    text = SkillLibrary.load(BASE).render("find-living-thing")
    assert (
        text.index("### General Principles")
        < text.index("### Task-Relevant Skills")
        < text.index("### Mistakes to Avoid")
    )
    assert "- **Explore before acting**: Look around" in text
    assert "Apply when: When asked to find a living thing." in text
    assert "Don't: focusing on the first object" in text and "Instead: focus only on" in text
    assert "Non-living things are everywhere" not in text  # another category's skills are not retrieved
    assert "Non-living things are everywhere" in SkillLibrary.load(BASE).render(None)


def skill_dict(skill_id="s1", **fields):
    return {"skill_id": skill_id, "title": "t", "principle": "p", **fields}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"general_skills": [\n  {"skill_id": "g1",\n   "title" "t"}]}',
            r"lib\.json: not valid JSON at line 3, column 12",
        ),
        ('{"general_skills": [', r"lib\.json: not valid JSON at line 1, column 21"),
        ("[]", r"lib\.json: expected a JSON object .* got list"),
        ('{"general_skills": {}}', r"lib\.json: general_skills: expected a list, got dict"),
        (
            json.dumps(
                {"task_specific_skills": {"clean": [skill_dict(), skill_dict(), skill_dict(principle=3)]}}
            ),
            r"lib\.json: task_specific_skills\.clean\[2\]\.principle: expected a non-empty string, got 3",
        ),
        (
            json.dumps({"task_specific_skills": {"clean": [skill_dict(when_to_apply=["x"])]}}),
            r"task_specific_skills\.clean\[0\]\.when_to_apply: expected a string, got list",
        ),
        (
            json.dumps({"common_mistakes": [{"mistake_id": "m1", "description": ""}]}),
            r"common_mistakes\[0\]\.description: expected a non-empty string, got ''",
        ),
        (
            '{"task_specific_skills": []}',
            r"task_specific_skills: expected an object mapping category -> list",
        ),
    ],
)
def test_malformed_library_names_the_file_the_position_and_what_was_expected(tmp_path, text, message):
    path = tmp_path / "lib.json"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=message):
        SkillLibrary.load(path)


@pytest.mark.parametrize(
    "bad_id", ["../../etc/passwd", "/etc/passwd", "a/b", "a\\b", "..", ".hidden", "C:\\x", " x"]
)
def test_path_like_ids_and_categories_are_rejected(bad_id):
    with pytest.raises(LibraryFormatError, match=r"general_skills\[1\]\.skill_id: expected a plain name"):
        SkillLibrary.from_dict({"general_skills": [skill_dict(), skill_dict(bad_id)]}, "lib.json")
    with pytest.raises(LibraryFormatError, match=r"common_mistakes\[0\]\.mistake_id: expected a plain name"):
        SkillLibrary.from_dict({"common_mistakes": [{"mistake_id": bad_id, "description": "d"}]}, "lib.json")
    with pytest.raises(LibraryFormatError, match=r"task_specific_skills\..*: expected a plain name"):
        SkillLibrary.from_dict({"task_specific_skills": {bad_id: []}}, "lib.json")


def test_plain_ids_of_real_libraries_are_accepted():
    ids = ["gen_001", "find-living-thing_003", "pick_and_place.2", "A1"]
    library = SkillLibrary.from_dict({"general_skills": [skill_dict(i) for i in ids]})
    assert [s.skill_id for s in library.general_skills] == ids


def test_oversized_skill_text_is_truncated_and_each_cut_is_reported():
    library = SkillLibrary(
        general_skills=[Skill("g1", "short", "x" * 500), Skill("g2", "ok", "fine")],
        task_specific_skills={"boil": [Skill("b1", "t", "p", "w" * 300)]},
        extra={"skill_pool": [{"skill_id": "p1", "title": "z" * 101, "principle": "p"}]},
    )
    capped, notes = cap_text(library, 100, "base.json")
    assert capped.general_skills[0].principle == "x" * 97 + "..."
    assert capped.general_skills[1] == library.general_skills[1]
    assert len(capped.task_specific_skills["boil"][0].when_to_apply) == 100
    assert notes == [
        "base.json: general_skills[0].principle: 500 characters truncated to 100 (skills.max_skill_chars)",
        "base.json: task_specific_skills.boil[0].when_to_apply: 300 characters truncated to 100 "
        "(skills.max_skill_chars)",
        "base.json: skill_pool[0].title: 101 characters truncated to 100 (skills.max_skill_chars)",
    ]
    assert capped.extra["skill_pool"][0]["title"] == "z" * 97 + "..."
    assert library.general_skills[0].principle == "x" * 500  # the input is left alone
    assert len(library.extra["skill_pool"][0]["title"]) == 101


def test_the_base_library_is_capped_on_load_and_the_cut_is_logged(tmp_path, caplog):
    from masa.stages.context import load_base_library

    path = tmp_path / "base.json"
    SkillLibrary(general_skills=[Skill("g1", "t", "y" * 5000)]).save(path)
    with caplog.at_level("WARNING", logger="masa.stages.context"):
        library = load_base_library(str(path), {"max_skill_chars": 2000})
    assert len(library.general_skills[0].principle) == 2000
    assert "general_skills[0].principle: 5000 characters truncated to 2000" in caplog.text


text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
name = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True).filter(lambda s: ".." not in s)
extra = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k not in ("skill_id", "title", "principle", "when_to_apply")),
    st.one_of(st.integers(), st.text(max_size=8), st.booleans(), st.none()),
    max_size=2,
)
skill = st.builds(
    lambda fields, more: {**fields, **more},
    st.fixed_dictionaries(
        {"skill_id": name, "title": text, "principle": text, "when_to_apply": st.text(max_size=20)}
    ),
    extra,
)
mistake = st.fixed_dictionaries(
    {
        "mistake_id": name,
        "description": text,
        "why_it_happens": st.text(max_size=20),
        "how_to_avoid": st.text(max_size=20),
    }
)
library = st.fixed_dictionaries(
    {
        "general_skills": st.lists(skill, max_size=4),
        "task_specific_skills": st.dictionaries(name, st.lists(skill, max_size=3), max_size=3),
        "common_mistakes": st.lists(mistake, max_size=3),
    }
)


@settings(max_examples=60, deadline=None)
@given(library)
def test_load_save_is_identity_and_render_never_raises(data):
    loaded = SkillLibrary.from_json(json.dumps(data))
    assert json.loads(loaded.to_json()) == data
    for category in [None, *data["task_specific_skills"]]:
        loaded.render(category)


@settings(max_examples=60, deadline=None)
@given(library)
def test_a_saved_library_loads_back_equal_and_renders_every_principle_verbatim(tmp_path_factory, data):
    original = SkillLibrary.from_dict(data)
    path = tmp_path_factory.mktemp("prop") / "lib.json"
    original.save(path)
    loaded = SkillLibrary.load(path)
    assert loaded == original
    rendered = loaded.render(None)
    for skill in [*loaded.general_skills, *(s for ss in loaded.task_specific_skills.values() for s in ss)]:
        assert f"**{skill.title}**: {skill.principle}" in rendered


@settings(max_examples=60, deadline=None)
@given(library, st.sampled_from(["/", "\\", ".."]), st.integers(min_value=0, max_value=5))
def test_any_id_with_a_path_separator_is_rejected(data, separator, position):
    bad = {"general_skills": [{"skill_id": "a" * position + separator + "b", "title": "t", "principle": "p"}]}
    with pytest.raises(LibraryFormatError):
        SkillLibrary.from_dict({**data, **bad})


# The MASA authors' release (jianxiangyu/MASA_) in its three shapes, written here (no network).
RELEASE_EVOLVED = {  # an evolved bank: no common_mistakes key, fields in the release's order
    "general_skills": [
        {"title": "Look first", "skill_id": "gen_1", "principle": "Look around.", "source": "evo"}
    ],
    "task_specific_skills": {
        "heat": [{"skill_id": "heat_1", "title": "Use microwave", "principle": "Heat it."}]
    },
    "version": 3,
}
RELEASE_CORRECTION = {  # mistakes as {mistake_id, description, correction}
    "general_skills": [],
    "task_specific_skills": {},
    "common_mistakes": [
        {
            "mistake_id": "m1",
            "description": "Using 'put ... in/on'",
            "correction": "WRONG: 'put mug 1 in/on sidetable 1'. RIGHT: 'move mug 1 to sidetable 1'.",
        }
    ],
}
RELEASE_BASE = {  # a base bank with the release's `examine` category
    "general_skills": [{"skill_id": "g", "title": "t", "principle": "p", "when_to_apply": "w"}],
    "task_specific_skills": {
        "examine": [{"skill_id": "ex_1", "title": "Lamp", "principle": "Use the lamp."}]
    },
    "common_mistakes": [
        {"mistake_id": "m", "description": "d", "why_it_happens": "y", "how_to_avoid": "h", "note": 1}
    ],
}


@pytest.mark.parametrize("data", [RELEASE_EVOLVED, RELEASE_CORRECTION, RELEASE_BASE])
def test_release_shaped_banks_save_equal_as_parsed_json_and_render_every_guidance_field(tmp_path, data):
    path = tmp_path / "bank.json"
    path.write_text(json.dumps(data))
    SkillLibrary.load(path).save(tmp_path / "copy.json")
    saved = json.loads((tmp_path / "copy.json").read_text())
    assert saved == data
    assert [list(s) for s in saved["general_skills"]] == [list(s) for s in data["general_skills"]]
    rendered = SkillLibrary.load(path).render(None)
    for mistake in data.get("common_mistakes", []):
        for name in ("description", "how_to_avoid", "correction"):
            if name in mistake:
                assert mistake[name] in rendered
    for skills in data["task_specific_skills"].values():
        assert all(s["principle"] in rendered for s in skills)


release_skill = st.builds(
    lambda fields, more, order: dict(sorted({**fields, **more}.items(), key=lambda kv: order(kv[0]))),
    st.fixed_dictionaries(
        {"skill_id": name, "title": text, "principle": text}, optional={"when_to_apply": text}
    ),
    extra,
    st.sampled_from([hash, len, str]),
)
release_mistake = st.fixed_dictionaries(
    {"mistake_id": name, "description": text},
    optional={"why_it_happens": text, "how_to_avoid": text, "correction": text},
)
release_bank = st.fixed_dictionaries(
    {"general_skills": st.lists(release_skill, max_size=3)},
    optional={
        "task_specific_skills": st.dictionaries(name, st.lists(release_skill, max_size=2), max_size=3),
        "common_mistakes": st.lists(release_mistake, max_size=3),
        "version": st.integers(),
    },
)


@settings(max_examples=60, deadline=None)
@given(release_bank)
def test_any_release_shaped_bank_saves_equal_key_for_key_and_in_order(data):
    saved = json.loads(SkillLibrary.from_json(json.dumps(data)).to_json())
    assert saved == data
    assert json.dumps(saved) == json.dumps(data)  # the same keys in the same order, items included


ALFWORLD = ["pick_and_place", "clean", "heat", "cool", "look_at_obj_in_light", "pick_two_obj_and_place"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"task_specific_skills": {"cleen": [skill_dict("c1")]}},
            r"task_specific_skills\.cleen: .*did you mean 'clean'",
        ),
        ({"general_skills": [], "task_specific_skills": {}}, r"the library has no skills and no mistakes"),
        (
            {"general_skills": [skill_dict("g1")], "task_specific_skills": {"heat": [skill_dict("g1")]}},
            r"task_specific_skills\.heat\[0\]: id 'g1' repeats general_skills\[0\]",
        ),
    ],
)
def test_library_mistakes_are_refused_when_the_base_library_is_loaded(tmp_path, data, message):
    from masa.stages.context import load_base_library

    path = tmp_path / "base.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LibraryFormatError, match=message):
        load_base_library(str(path), {"max_skill_chars": 2000}, ALFWORLD, complete=True)


def test_an_unknown_top_level_key_and_the_release_examine_category_are_logged_and_kept(tmp_path, caplog):
    from masa.stages.context import load_base_library

    data = {**RELEASE_BASE, "evolution_round": 2}
    path = tmp_path / "base.json"
    path.write_text(json.dumps(data))
    with caplog.at_level("WARNING", logger="masa.stages.context"):
        library = load_base_library(str(path), {"max_skill_chars": 2000}, ALFWORLD, complete=True)
    assert "evolution_round: unknown top-level key, kept" in caplog.text
    assert "task_specific_skills.examine: not a category of the environment" in caplog.text
    assert library.to_dict() == data


def test_the_release_examine_category_is_mapped_to_the_environments_and_the_mapping_logged(tmp_path, caplog):
    from masa.stages.context import load_base_library

    path = tmp_path / "base.json"
    path.write_text(json.dumps(RELEASE_BASE))
    run = {"max_skill_chars": 2000, "category_map": {"examine": "look_at_obj_in_light"}}
    with caplog.at_level("INFO", logger="masa.stages.context"):
        library = load_base_library(str(path), run, ALFWORLD, complete=True)
    assert "examine -> look_at_obj_in_light" in caplog.text and "not a category" not in caplog.text
    assert "Use the lamp." in library.render("look_at_obj_in_light")
