"""The whole DAG, for real: packaged model, ScienceWorld and generated ALFWorld-style games, LoRA, Parquet,
report (tests/config/tiny.yaml).

Runs Snakemake as a user would, in a scratch working directory, then checks what a user would read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from masa.skills.agentskills import load_library
from masa.skills.library import SkillLibrary
from tests.conftest import snakemake

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def workdir(tiny_local_run) -> Path:
    return tiny_local_run


def test_report_has_a_row_per_method_with_real_numbers(workdir):
    table = pd.read_csv(workdir / "results" / "report" / "summary.csv")
    methods = ["Adapter", "Base Skill", "MASA", "No Skill", "Rewriter", "Rewriter (cross-environment)"]
    methods = sorted(
        [*methods, "Induced library", "MASA + lifecycle"]
    )  # the studies' methods, by their switches
    assert sorted(table.loc[table["env"] == "scienceworld", "method"]) == methods
    # tiny.yaml's external library is keyed by alfworld-generated only
    assert sorted(table.loc[table["env"] == "alfworld-generated", "method"]) == sorted(
        [*methods, "External: release-base"]
    )
    assert (table["episodes"] == 1).all() and (table["eval_env_steps"] > 0).all()
    assert (table["eval_llm_calls"] > 0).all() and (table["reward_low"] <= table["reward_high"]).all()
    masa = table[table["method"] == "MASA"].iloc[0]
    assert masa["prep_episodes"] > 0 and masa["total_llm_calls"] > masa["eval_llm_calls"]  # search priced in
    summary = (workdir / "results" / "report" / "summary.md").read_text()
    assert "## smollm2-135m on ScienceWorld" in summary and "| MASA |" in summary
    # generated games are labelled as such wherever their numbers appear
    generated = "ALFWorld-style (generated games; not comparable to published ALFWorld numbers)"
    assert f"## smollm2-135m on {generated}" in summary
    assert set(table.loc[table["env"] == "alfworld-generated", "env_label"]) == {generated}
    assert (workdir / "results" / "report" / "reward.png").stat().st_size > 5000
    run = workdir / "results" / "smollm2-135m" / "scienceworld"
    assert (workdir / "results" / "report" / "smollm2-135m" / "scienceworld" / "hillclimb.png").is_file()
    assert (run / "agent_skills" / "general" / "SKILL.md").is_file()
    assert load_library(run / "agent_skills").to_dict() == SkillLibrary.load(run / "library.json").to_dict()


def test_an_external_library_is_played_beside_masa_on_the_same_heldout_instances(workdir):
    run = workdir / "results" / "smollm2-135m" / "alfworld-generated"
    external = json.loads((run / "external" / "release-base.json").read_text())
    masa = json.loads((run / "eval" / "masa.json").read_text())
    assert external["tasks"] == masa["tasks"] and external["seeds"] == masa["seeds"]
    assert external["library_source"] == "release-base"
    log = workdir / "logs" / "smollm2-135m" / "alfworld-generated" / "evaluate" / "external_release-base.log"
    assert "categories mapped examine -> look_at_obj_in_light" in log.read_text()
    table = pd.read_csv(workdir / "results" / "report" / "summary.csv")
    row = table[table["method"] == "External: release-base"].iloc[0]
    assert row["pairs"] == len(external["episodes"]) > 0  # paired with Base Skill like every method
    summary = (workdir / "results" / "report" / "summary.md").read_text()
    assert "| External: release-base |" in summary
    assert "library category `examine` played as `look_at_obj_in_light`" in summary
    assert "resources/external/release-alfworld-bank.json" in summary


def test_expert_agreement_is_scored_for_every_method_and_set_beside_reward(workdir):
    record = json.loads(
        (workdir / "results" / "smollm2-135m" / "scienceworld" / "agreement.json").read_text()
    )
    assert set(record["methods"]) == {
        "no_skill",
        "base_skill",
        "adapter",
        "masa",
        "rewriter",
        "rewriter_cross_env",
        "induced",
        "masa_lifecycle",
    }
    decisions = len(record["states"])
    assert decisions > 3 and all(
        s.startswith("scienceworld/find-living-thing/test/") for s in record["states"]
    )
    for score in record["methods"].values():
        assert score["states"] == decisions and 0 < score["mass"] < 1 and len(score["per_state"]) == decisions
    # the skill text moves the scores: no skill and the base library do not agree alike
    assert record["methods"]["no_skill"]["per_state"] != record["methods"]["base_skill"]["per_state"]
    assert not (workdir / "results" / "smollm2-135m" / "alfworld-generated" / "agreement.json").exists()
    table = pd.read_csv(workdir / "results" / "report" / "agreement.csv")
    assert len(table) == len(record["methods"]) and table["reward"].notna().all()
    summary = (workdir / "results" / "report" / "summary.md").read_text()
    assert "## Expert agreement vs held-out reward" in summary
    assert f"Spearman(agreement, held-out reward), all backbones, {len(record['methods'])} cells:" in summary


def test_trajectories_are_readable_parquet_with_every_candidate(workdir):
    frame = pd.read_parquet(
        workdir / "results" / "trajectories" / "backbone=smollm2-135m" / "env=scienceworld"
    )
    assert list(frame["stage"]) == ["general", "general", "task", "task"]
    backbones = yaml.safe_load((workdir / "config" / "config.yaml").read_text())["backbones"]
    assert set(pd.read_parquet(workdir / "results" / "trajectories")["backbone"]) == set(backbones)
    assert frame["library_json"].map(lambda s: "general_skills" in json.loads(s)).all()


def test_each_environments_cross_environment_rewriter_learned_from_the_other_only(workdir):
    """Issue 17: the rewriter that writes ScienceWorld's skills saw ALFWorld-style trajectories only, and the
    other way round; its data says so, and it is trained exactly when that data has an example."""
    from masa.rewriter.data import dataset_metadata

    envs = {"scienceworld", "alfworld-generated"}
    for env in envs:
        data = workdir / "results" / "rewriter_cross_env" / env / "train.parquet"
        assert dataset_metadata(data) == {
            "scope": "cross_environment",
            "environments": sorted(envs - {env}),
            "heldout_environments": [env],
        }
        examples = pd.read_parquet(data)
        assert set(examples["env"]) <= envs - {env}
        record = json.loads(
            (workdir / "results" / "smollm2-135m" / env / "rewriter_cross_env" / "record.json").read_text()
        )
        untrained = (workdir / "results" / "rewriter_cross_env" / env / "adapter" / "UNTRAINED").exists()
        assert record["untrained"] is untrained is (len(examples) == 0)
        # rewriter.targets: best gives every searched category a target, so the tiny DAG trains both
        assert len(examples) > 0 and not untrained
    summary = pd.read_csv(workdir / "results" / "report" / "summary.csv")
    rows = summary[summary["method"] == "Rewriter (cross-environment)"]
    assert set(rows["env"]) == envs and (rows["episodes"] > 0).all()


def test_the_granularity_study_pairs_each_level_with_base_skill_for_every_backbone_and_env(workdir):
    table = pd.read_csv(workdir / "results" / "report" / "granularity.csv")
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    levels = config["granularity"]["levels"]
    cells = {(r.env, r.backbone, r.level) for r in table.itertuples()}
    assert cells == {
        (e, b, k) for e in config["environments"] for b in config["backbones"] for k in range(1, levels + 1)
    }
    assert (table["pairs"] >= 1).all() and table.groupby(["env", "backbone"])["best"].sum().eq(1).all()
    for env in config["environments"]:
        words = table[table["env"] == env].groupby("level")["principle_words"].first()
        assert words.is_monotonic_increasing and words.is_unique
        base = SkillLibrary.load(workdir / config["skills"]["base"][env])
        for k in range(1, levels + 1):
            level = SkillLibrary.load(workdir / "results" / "granularity" / env / f"level{k}.json")
            assert [s.skill_id for s in level.general_skills] == [s.skill_id for s in base.general_skills]
    text = (workdir / "results" / "report" / "granularity.md").read_text()
    assert (
        "change in held-out reward vs Base Skill" in text
        and (workdir / "results/report/granularity.png").stat().st_size
    )


def test_rewriter_adapter_loads_with_peft_or_says_why_not(workdir, smollm2_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = workdir / "results" / "rewriter" / "scienceworld" / "adapter"
    record = json.loads(
        (workdir / "results" / "smollm2-135m" / "scienceworld" / "rewriter" / "record.json").read_text()
    )
    examples = pd.read_parquet(workdir / "results" / "rewriter" / "scienceworld" / "train.parquet")
    # untrained only with no training example; the tiny config's rewriter.targets: best always has one
    assert record["untrained"] is (adapter / "UNTRAINED").exists() is (len(examples) == 0) is False
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_dir), adapter)
    assert any("lora" in name for name, _ in model.named_parameters())


def test_card_reads_architecture_from_the_weights(workdir, smollm2_dir):
    card = yaml.safe_load((workdir / "results" / "smollm2-135m" / "profile" / "card.yaml").read_text())
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert card["num_layers"] == config["num_hidden_layers"] and card["vocab_size"] == config["vocab_size"]
    assert 100_000_000 < card["parameter_count"] < 200_000_000
    assert card["weaknesses"] and card["family"] == "SmolLM2"


def planned_rules(workdir: Path, edit) -> set[str]:
    """The rules a dry-run plans after ``edit`` changed a copy of the run's config (params compared)."""
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    edit(config)
    changed = workdir / "config" / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    dry = snakemake(workdir, "-n", "--configfile", str(changed), "--rerun-triggers", "mtime", "params")
    assert dry.returncode == 0, dry.stderr[-3000:]
    return {line.split()[1].rstrip(":") for line in dry.stdout.splitlines() if line.startswith("rule ")}


def test_changing_an_evaluation_setting_reruns_only_evaluation_and_report(workdir):
    jobs = planned_rules(workdir, lambda c: c["evaluation"].update(seeds=[0, 1]))
    study = {"evaluate_granularity_level", "report_granularity"}  # levels are evaluations too
    assert jobs == {"evaluate_method", "evaluate_external_library", "report", "all"} | study


def test_speed_and_location_settings_rerun_nothing(workdir):
    def tune(config):
        config["engine"] = {"episodes_in_flight": 2}
        config["cache_dir"] = "elsewhere/cache"
        config["environments"]["scienceworld"]["heap_mb"] = 1024
        config["rewriter"].update(gpus=0, mem_mb=123, runtime=5)  # a job's request, not its result

    assert planned_rules(workdir, tune) == set()


def test_a_rewriter_inference_setting_reruns_its_inference_not_its_training(workdir):
    jobs = planned_rules(workdir, lambda c: c["rewriter"].update(max_new_tokens=32))
    assert "apply_rewriter" in jobs and "train_rewriter" not in jobs and "build_rewriter_data" not in jobs


def test_a_stage_2_setting_reruns_stage_2_and_what_depends_on_it_only(workdir):
    jobs = planned_rules(workdir, lambda c: c["ucb"].update(exploration=2.0))
    assert "search_task_skills" in jobs and "merge_library" in jobs
    upstream = {"build_model_profile", "climb_general_skills", "adapt_library", "build_alfworld_games"}
    assert not jobs & upstream, jobs


def test_an_instance_count_reruns_only_the_stages_that_play_it(workdir):
    jobs = planned_rules(workdir, lambda c: c["environments"]["scienceworld"].update(eval_instances=2))
    # the external bank is ALFWorld's; the granularity levels are held-out evaluations too
    assert jobs == {"evaluate_method", "score_agreement", "report", "all"} | {
        "evaluate_granularity_level",
        "report_granularity",
    }


def test_bad_config_fails_at_start_naming_the_key(workdir):
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["ucb"]["explorations"] = 2
    bad = workdir / "config" / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", "--configfile", str(bad))
    assert result.returncode != 0
    assert (
        "ucb: Additional properties are not allowed ('explorations' was unexpected)"
        in result.stdout + result.stderr
    )
