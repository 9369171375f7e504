"""The tiny DAG through a real SLURM (`--workflow-profile profiles/slurm`), checked against the cluster's own
record of the jobs and against a local run's results.

CI starts a single-node cluster first (`.ci/slurm-up.sh`, Debian's slurmctld/slurmd, no accounting database),
so the run below needs the CI-only overrides on the command line: `squeue` as the status command (`sacct`
would fail without slurmdbd and the plugin would wait forever) and a 2-core, ~19 GB node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from masa.config import STUDY_METHODS
from tests.conftest import REPO, SNAKEMAKE, tiny_workdir

pytestmark = [pytest.mark.e2e, pytest.mark.slurm, pytest.mark.cluster]

SLURM_RULES = {  # every rule of the tiny DAG but the local ones (merging, exports, plots, the report)
    # and prepare_model, whose folder the tests link in (the teacher's GGUF is assembled on the cluster)
    "build_alfworld_games",
    "assemble_gguf",
    "build_model_profile",
    "adapt_library",
    "climb_general_skills",
    "search_task_skills",
    "build_rewriter_data",
    "train_rewriter",
    "apply_rewriter",
    "build_cross_env_rewriter_data",
    "train_cross_env_rewriter",
    "reword_levels",
    "evaluate_granularity_level",
    "play_induction_episodes",
    "analyse_episodes",
    "consolidate_lessons",
    "run_lifecycle",
    "apply_cross_env_rewriter",
    "evaluate_method",
    "evaluate_external_library",
    "score_agreement",
}
CI_OVERRIDES = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
    "--default-resources",
    "mem_mb=1000",
    "runtime=30",
    "--set-resources",
    "train_rewriter:mem_mb=3000",
    "train_cross_env_rewriter:mem_mb=3000",
    "--set-threads",
    "train_rewriter=2",
    "train_cross_env_rewriter=2",
]


def cluster_problem() -> str | None:
    """Why the test cannot run here, or None when a cluster answers."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return "no SLURM client (sbatch/scontrol) on PATH; CI starts a cluster with .ci/slurm-up.sh"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if states.returncode != 0 or not {"idle", "mixed", "allocated"} & set(states.stdout.split()):
        return f"no running SLURM node answers sinfo ({states.stdout.strip() or states.stderr.strip()})"
    return None


def scontrol_job(job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def without_timings(value: Any) -> Any:
    """Results minus wall-clock seconds, the one field two runs of the same DAG legitimately differ in."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, smollm2_dir) -> Path:
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    work = tiny_workdir(tmp_path_factory.mktemp("slurm"), smollm2_dir)
    command = [
        *("timeout", "-k", "30", "1500"),  # snakemake traps SIGTERM; -k ends a hung run
        *SNAKEMAKE,
        *("--directory", str(work), "--workflow-profile", str(REPO / "profiles" / "slurm")),
        *("--rerun-triggers", "mtime", *CI_OVERRIDES),
    ]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=1600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return work


def submitted_jobs(work: Path) -> dict[str, str]:
    """SLURM job id -> rule, from the plugin's per-job logs (.snakemake/slurm_logs/rule_<rule>/.../<id>.log)."""
    logs = sorted((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    return {log.stem: log.relative_to(work / ".snakemake" / "slurm_logs").parts[0][5:] for log in logs}


def test_every_cluster_rule_ran_as_a_completed_slurm_job(slurm_run, capsys):
    jobs = submitted_jobs(slurm_run)
    with capsys.disabled():
        print(
            f"\nSLURM job ids of the tiny DAG: {', '.join(f'{i} ({r})' for i, r in sorted(jobs.items(), key=lambda job: int(job[0])))}"
        )
    assert set(jobs.values()) == SLURM_RULES
    records = {job_id: scontrol_job(job_id) for job_id in jobs}
    for job_id, record in records.items():
        assert record["JobState"] == "COMPLETED", (job_id, record)
        assert record["Comment"].startswith(f"rule_{jobs[job_id]}"), (job_id, record)
        assert Path(record["WorkDir"]).resolve() == slurm_run.resolve()
    # One run name for all of them, and the controller knows no other job under it.
    names = {record["JobName"] for record in records.values()}
    assert len(names) == 1
    listed = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i", "--name", names.pop()],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert sorted(listed) == sorted(jobs)


def test_slurm_results_equal_the_local_run(slurm_run, tiny_local_run):
    evals = sorted((tiny_local_run / "results").rglob("eval/*.json"))
    tiny = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
    studies = [m for study, m in STUDY_METHODS.items() if tiny.get(study, {}).get("enabled")]
    assert len(evals) == len(tiny["backbones"]) * len(tiny["environments"]) * len(
        tiny["evaluation"]["methods"] + studies
    )
    for local in evals:
        remote = slurm_run / local.relative_to(tiny_local_run)
        assert without_timings(json.loads(remote.read_text())) == without_timings(
            json.loads(local.read_text())
        )
    # the expert paths come from a fresh simulator in each job, so agreement is reproducible across runs
    for name in (
        "smollm2-135m/scienceworld/agreement.json",
        "smollm2-135m/alfworld-generated/external/release-base.json",
    ):
        remote = json.loads((slurm_run / "results" / name).read_text())
        assert without_timings(remote) == without_timings(
            json.loads((tiny_local_run / "results" / name).read_text())
        ), name
