import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from masa.skills import LibraryFormatError, SkillLibrary

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


def test_malformed_library_names_the_position():
    bad = '{"general_skills": [{"skill_id": "g1", "title": "t"}]}'
    with pytest.raises(LibraryFormatError, match=r"general_skills\[0\]: field 'principle'"):
        SkillLibrary.from_json(bad, "lib.json")
    with pytest.raises(LibraryFormatError, match="line 1, column"):
        SkillLibrary.from_json('{"general_skills": [', "lib.json")


text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
skill = st.fixed_dictionaries(
    {"skill_id": text, "title": text, "principle": text, "when_to_apply": st.text(max_size=20)}
)
mistake = st.fixed_dictionaries(
    {
        "mistake_id": text,
        "description": text,
        "why_it_happens": st.text(max_size=20),
        "how_to_avoid": st.text(max_size=20),
    }
)
library = st.fixed_dictionaries(
    {
        "general_skills": st.lists(skill, max_size=4),
        "task_specific_skills": st.dictionaries(text, st.lists(skill, max_size=3), max_size=3),
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
