"""A malformed model card fails with the file, the position and what was expected, before a prompt sees it."""

from __future__ import annotations

import pytest

from masa.card import CARD_FIELDS, build_card, load_card
from masa.io import FileFormatError, write_yaml


def test_a_built_card_loads_back_unchanged(tmp_path):
    card = build_card(None, {"family": "F", "variant": "V", "multilingual": False, "strengths": ["s"]}, ["w"])
    write_yaml(tmp_path / "card.yaml", card)
    assert load_card(tmp_path / "card.yaml") == card
    assert list(card) == list(CARD_FIELDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("family: F\nvariant: [unclosed\n", r"card\.yaml: not valid YAML at line 3, column 1"),
        ("family: F\n  variant: V\n", r"card\.yaml: not valid YAML at line 2, column 10"),
        ("- family\n- variant\n", r"card\.yaml: expected a mapping of card fields, got list"),
        (
            "family: F\nfamliy: G\n",
            r"card\.yaml: famliy: unknown card field; expected one of family, variant",
        ),
        ("num_layers: thirty\n", r"card\.yaml: num_layers: expected an integer, got 'thirty'"),
        ("weaknesses: loops a lot\n", r"card\.yaml: weaknesses: expected a list of strings, got str"),
        ("strengths: [fast, {x: 1}]\n", r"card\.yaml: strengths\[1\]: expected a string, got \{'x': 1\}"),
        ("multilingual: maybe\n", r"card\.yaml: multilingual: expected true or false, got 'maybe'"),
        ("family: {a: b}\n", r"card\.yaml: family: expected a single value, got a dict"),
    ],
)
def test_malformed_card_names_the_file_the_position_and_what_was_expected(tmp_path, text, message):
    path = tmp_path / "card.yaml"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=message):
        load_card(path)
