"""A malformed model card fails with the file, the position and what was expected, before a prompt sees it."""

from __future__ import annotations

import pytest

from masa.io import FileFormatError, write_yaml
from masa.teacher.card import CARD_FIELDS, build_card, load_card


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
        (
            "weaknesses: 3\n",
            r"card\.yaml: weaknesses: expected a list of strings or one comma-separated string, got int",
        ),
        (
            "parameter_count: huge\n",
            r"card\.yaml: parameter_count: expected an integer or a size like 4B, got 'huge'",
        ),
        (
            "family: F\n",
            r"card\.yaml: parameter_count: required field missing; .*weaknesses: required field missing",
        ),
        ("family: &a F\nvariant: *a\n", r"card\.yaml: not valid YAML at line 2, column 10: YAML aliases"),
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


RELEASE_CARD = """# Model Card: Qwen3-4B (the MASA release's form)
family: "Qwen3"
variant: "4B"
parameter_count: "4B"
release_date: "2025-04"
architecture: "dense-transformer"
num_layers: 36
hidden_size: 2560
num_attention_heads: 32
num_kv_heads: 8
context_window: 32768
vocab_size: 151936
base_or_instruct: "instruct"
alignment_method: "SFT + DPO + GRPO"
training_data_size: "36T tokens"
multilingual: true
strengths: "math, code generation, tool use"
weaknesses: "limited reasoning depth, may struggle with multi-step planning"
"""


def test_a_release_shaped_card_is_accepted_with_its_size_and_lists_parsed(tmp_path):
    (tmp_path / "qwen3_4b.yaml").write_text(RELEASE_CARD)
    card = load_card(tmp_path / "qwen3_4b.yaml")
    assert card["parameter_count"] == 4_000_000_000
    assert card["strengths"] == ["math", "code generation", "tool use"]
    assert card["weaknesses"] == ["limited reasoning depth", "may struggle with multi-step planning"]
    assert load_card(tmp_path / "qwen3_4b.yaml") == card


def test_every_card_problem_is_reported_at_once(tmp_path):
    (tmp_path / "card.yaml").write_text("famliy: F\nnum_layers: x\nmultilingual: maybe\nweaknesses: [1]\n")
    with pytest.raises(FileFormatError) as err:
        load_card(tmp_path / "card.yaml")
    message = str(err.value)
    assert "\n" not in message
    for part in (
        "famliy: unknown card field",
        "family: required field missing",
        "num_layers: expected an integer",
        "multilingual: expected true or false",
        "weaknesses[0]: expected a string",
    ):
        assert part in message


def test_masa_align_checks_the_card_and_caps_the_skills_like_the_pipeline(tmp_path, capsys):
    from masa.cli import main
    from masa.skills.library import Skill, SkillLibrary

    skills = tmp_path / "base.json"
    SkillLibrary(general_skills=[Skill("g1", "t", "x" * 1_000_000)]).save(skills)
    common = [
        "--skills",
        str(skills),
        "--categories",
        "heat",
        "--base-model",
        str(tmp_path),
        "--out",
        str(tmp_path / "o.json"),
    ]
    (tmp_path / "bad.yaml").write_text("family: F\nnum_layers: x\n")
    with pytest.raises(SystemExit):
        main(["align", "--card", str(tmp_path / "bad.yaml"), *common])
    err = capsys.readouterr().err
    assert "num_layers: expected an integer" in err and "weaknesses: required field missing" in err
    (tmp_path / "qwen3_4b.yaml").write_text(RELEASE_CARD)  # accepted: the run stops later, at the model
    with pytest.raises(SystemExit):
        main(["align", "--card", str(tmp_path / "qwen3_4b.yaml"), *common])
    err = capsys.readouterr().err  # the CLI logs to stderr
    assert "no config.json" in err
    assert "general_skills[0].principle: 1000000 characters truncated to 2000" in err
