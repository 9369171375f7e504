"""Adapter: Snakemake rule score_agreement -> masa.stages.agreement.score_agreement."""

from masa.process import prepare_process
from masa.stages.agreement import score_agreement
from masa.stages.context import Machine

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
score_agreement(
    libraries={m: getattr(sm.input, m, None) for m in sm.params.methods},
    instances=sm.params.instances,
    backbone=sm.params.backbone,
    env=sm.params.env,
    run=sm.params.run,
    model_dir=getattr(sm.input, "model", None),
    base_library=sm.input.base,
    out_path=sm.output[0],
    threads=sm.threads,
    machine=Machine.of(sm.resources),
)
