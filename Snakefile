# masa: Model-Aware Skill Alignment as a Snakemake workflow.
#
#   snakemake --profile profiles/local            # the embedded default, 2 cores, no GPU
#   snakemake --profile profiles/local trajectories   # stop after a stage (workflow/rules/collect.smk:
#                                                     # profiles, general_skills, libraries, trajectories,
#                                                     # rewriters, evaluations, lifecycle,
#                                                     # induced_libraries, studies)
#
# Stages (workflow/rules/<stage>.smk): prepare models -> model profile -> Stage 1 general skills ->
# Stage 2 task skills (one job per category) -> merged library [-> skill lifecycle] -> trajectory export ->
# rewriter -> held-out evaluation -> report. Every output lives under results/{backbone}/{env}/..., but for the
# environment-wide libraries (results/rewriter*/{env}/, results/induced/{env}/, results/granularity/{env}/).


from pathlib import Path

from snakemake.utils import min_version

from masa.io import check_yaml_syntax

min_version("9.12")


# A --configfile is a whole experiment (config/paper.yaml): it replaces the embedded default instead of being
# merged into it, which would add the default's backbones to the experiment's. --config alone edits the default.
# Snakemake's own error for a broken config names no line; check_yaml_syntax names the line and column.
if not workflow.overwrite_configfiles:
    if Path("config/config.yaml").is_file():
        check_yaml_syntax("config/config.yaml")

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/games.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/general.smk"
include: "workflow/rules/task.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/rewriter.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/induction.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/lifecycle.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/granularity.smk"
include: "workflow/rules/collect.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        rules.figures.input,
        rules.studies.input,
