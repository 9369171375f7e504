import copy
from pathlib import Path

import pytest
import yaml

from masa.config import ConfigError, validate_config

SCHEMA = Path("config/schema.yaml")


def default():
    return yaml.safe_load(Path("config/config.yaml").read_text())


def test_default_config_validates_and_gets_defaults():
    config = validate_config(default(), SCHEMA)
    assert config["backbones"]["smollm2-135m"]["agent"]["history"] == 2
    assert config["hillclimb"]["min_gain"] == 0.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["ucb"].update(explore=1.0),
            r"ucb: .*'explore' was unexpected.*allowed keys: budget, exploration",
        ),
        (lambda c: c["hillclimb"].update(patience=0), r"hillclimb.patience: 0 is less than the minimum of 1"),
        (
            lambda c: c["backbones"]["gemma3-270m"]["agent"].update(policy="guess"),
            r"backbones.gemma3-270m.agent.policy: 'guess' is not one of",
        ),
        (lambda c: c["evaluation"].update(methods=["masa", "oracle"]), r"evaluation.methods.1: 'oracle'"),
        (lambda c: c["teacher"]["model"].update(path="/x"), r"teacher.model: give exactly one of"),
        (
            lambda c: c["rewriter"].update(heldout_categories=["boil"]),
            r"rewriter.heldout_categories: 'boil' is not a task",
        ),
        (
            lambda c: c["backbones"]["smollm2-135m"].update(
                model={"backend": "openai", "model": "m", "base_url": "u"}
            ),
            r"backbones.smollm2-135m.agent.policy: 'score' needs log-probabilities",
        ),
        (lambda c: c["skills"]["base"].pop("scienceworld"), r"skills.base: no base library for environment"),
    ],
)
def test_bad_config_fails_naming_the_key(edit, message):
    config = copy.deepcopy(default())
    edit(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config, SCHEMA)
