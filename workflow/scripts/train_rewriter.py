"""Adapter: Snakemake rule train_rewriter -> masa.stages.rewriter.fit_rewriter."""

from masa.process import prepare_process
from masa.stages.rewriter import fit_rewriter

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
fit_rewriter(
    sm.input.data,
    sm.params.base_model,
    sm.params.training,
    sm.params.seed,
    sm.output.adapter,
    sm.output.loss,
    checkpoint=sm.params.checkpoint,
)
