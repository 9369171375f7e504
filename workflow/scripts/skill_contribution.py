"""Adapter: Snakemake rule skill_contribution -> masa.stages.contribution.skill_contribution."""

from masa.process import prepare_process
from masa.stages.context import Machine
from masa.stages.contribution import skill_contribution

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
skill_contribution(
    backbone=sm.params.backbone,
    env=sm.params.env,
    run=sm.params.run,
    evaluation=sm.params.evaluation,
    model_dir=getattr(sm.input, "model", None),
    base_library=sm.input.base,
    library=sm.input.library,
    out_path=sm.output[0],
    threads=sm.threads,
    machine=Machine.of(sm.resources),
)
