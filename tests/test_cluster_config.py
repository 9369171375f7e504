"""The cluster-facing configuration: config/paper.yaml's job graph with its GPU requests, and the SLURM profile's
per-rule resources, both as `snakemake -n` prints them (what a user checks before submitting)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import REPO, SNAKEMAKE

GPU_RULES = {"build_model_profile", "climb_general_skills", "search_task_skills", "evaluate_method"}


def dry_run(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Every job of the graph (--forceall: also where results already exist), and how long listing took."""
    start = time.monotonic()
    result = subprocess.run(
        [*SNAKEMAKE, "-n", "--forceall", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    return result, time.monotonic() - start


def job_resources(dry_run_output: str) -> dict[str, list[dict[str, str]]]:
    """Rule -> the resources of each of its jobs, from the `rule X:` blocks of a dry run."""
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in dry_run_output.splitlines():
        if match := re.match(r"(?:local)?rule (\w+):", line):
            rule = match.group(1)
        elif rule and line.strip().startswith("resources:"):
            fields = line.split(":", 1)[1].split(", ")
            jobs.setdefault(rule, []).append(dict(f.strip().split("=", 1) for f in fields))
            rule = None
    return jobs


def pending_schema_keys() -> list[str]:
    """Keys paper.yaml uses that other branches add to the schema (the ALFWorld environment, the rewriter's GPUs)."""
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    rewriter = schema["properties"]["rewriter"]["properties"]
    gaps = [] if "alfworld" in schema.get("$defs", {}) else ["the alfworld environment"]
    return gaps + [f"rewriter.{key}" for key in ("gpus", "full_learning_rate") if key not in rewriter]


def test_paper_config_lists_the_full_job_graph_in_seconds_with_gpus_on_the_model_rules():
    if gaps := pending_schema_keys():
        pytest.skip(
            f"config/paper.yaml needs {', '.join(gaps)} in config/schema.yaml (merged from other work)"
        )
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    result, seconds = dry_run("--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert seconds <= 15, f"dry run took {seconds:.1f} s"
    jobs = job_resources(result.stdout)
    # One search job per backbone and searched category: the paper's four backbones over every task of both
    # environments but the held-out ones.
    heldout = set(paper["rewriter"]["heldout_categories"])
    categories = sum(len(set(env["tasks"]) - heldout) for env in paper["environments"].values())
    assert len(jobs["search_task_skills"]) == len(paper["backbones"]) * categories
    expected = {spec["model"]["gpus"] for spec in paper["backbones"].values()}
    for rule in GPU_RULES:
        assert {int(job["gpu"]) for job in jobs[rule]} == expected, rule
    # The paper's rewriter: one full fine-tune of Qwen3-4B per environment, on its GPU, with the held-out
    # categories out of its data (the rule's message, which a dry run prints in place of its block).
    rewriter = paper["rewriter"]
    assert rewriter["base_model"] == "Qwen/Qwen3-4B" and rewriter["method"] == "full"
    trains = re.findall(
        r"Train the (\S+) rewriter: (\S+), (\w+) fine-tuning, (\d+) GPU\(s\), (\d+) MB, held-out categories: (.*)",
        result.stdout,
    )
    assert sorted(t[0] for t in trains) == sorted(paper["environments"])
    wanted = (rewriter["base_model"], "full", str(rewriter["gpus"]), str(rewriter["mem_mb"]))
    assert {t[1:5] for t in trains} == {wanted} and rewriter["gpus"] >= 1
    assert {t[5] for t in trains} == {", ".join(rewriter["heldout_categories"])}
    # Every baseline the paper reports, evaluated for every backbone and environment.
    methods = paper["evaluation"]["methods"]
    assert {"no_skill", "base_skill", "adapter", "masa", "rewriter_untrained", "rewriter"} <= set(methods)
    pairs = len(paper["backbones"]) * len(paper["environments"])
    assert len(jobs["evaluate_method"]) == pairs * len(methods)
    assert len(jobs["apply_untrained_rewriter"]) == pairs


def test_slurm_profile_gives_each_rule_its_memory_and_runtime():
    """Memory is an expression of `attempt`: Snakemake evaluates it per submission (1 here, 2 on a retry).

    Planned with the paper's config and the studies on, so that every rule a cluster run submits is seen: a
    job that holds a model (it has a `gpu` resource) must have its rule's entry, else it gets the profile's
    default runtime, an hour, which a paper-scale evaluation outlasts; `use rule ... as` inherits none."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    settings = profile["set-resources"]
    result, _ = dry_run(
        "--workflow-profile",
        str(Path("profiles") / "slurm"),
        "--configfile",
        "config/paper.yaml",
        "config/studies.yaml",
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    jobs = job_resources(result.stdout)
    listed = subprocess.run(
        [*SNAKEMAKE, "--list-rules"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert set(settings) <= set(listed.stdout.split()), set(settings) - set(listed.stdout.split())
    for rule, wanted in settings.items():
        first_attempt = eval(str(wanted["mem_mb"]), {"attempt": 1})
        assert {job["mem_mb"] for job in jobs.get(rule, [])} <= {str(first_attempt)}, rule
        assert {job["runtime"] for job in jobs.get(rule, [])} <= {str(wanted["runtime"])}, rule
    from_config = {"train_rewriter", "train_cross_env_rewriter"}  # rewriter.mem_mb, rewriter.runtime
    holding_a_model = {rule for rule, js in jobs.items() if any("gpu" in job for job in js)}
    assert holding_a_model - from_config <= set(settings), holding_a_model - from_config - set(settings)
    assert {"evaluate_swapped_library", "run_lifecycle", "evaluate_granularity_level"} <= holding_a_model


def test_the_slurm_plugin_submits_the_gpu_resource_as_gpus():
    """The contract the rules rely on (plugin 2.8): `gpu: N` becomes `--gpus=N`, 0 adds nothing."""
    utils = pytest.importorskip("snakemake_executor_plugin_slurm.utils", reason="pip install -e '.[slurm]'")

    class Resources(dict):
        __getattr__ = dict.__getitem__

    assert utils.set_gres_string(SimpleNamespace(resources=Resources(gpu=2))).strip() == "--gpus=2"
    assert utils.set_gres_string(SimpleNamespace(resources=Resources(gpu=0))) == ""


@pytest.mark.parametrize(
    ("target", "last", "not_planned"),
    [
        ("trajectories", "export_trajectories", {"train_rewriter", "evaluate_method", "report"}),
        ("evaluations", "evaluate_swapped_library", {"report", "plot_tree"}),
    ],
)
def test_a_stage_target_plans_its_stage_and_what_it_needs_only(target, last, not_planned):
    result, _ = dry_run(target)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    planned = {m.group(1) for m in re.finditer(r"^(?:local)?rule (\w+):", result.stdout, re.M)}
    assert last in planned and target in planned
    assert not planned & not_planned, planned & not_planned
