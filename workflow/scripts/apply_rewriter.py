"""Adapter: Snakemake rule apply_rewriter -> masa.stages.rewriter.apply_rewriter."""

from masa.process import prepare_process
from masa.stages.rewriter import apply_rewriter

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
apply_rewriter(
    base_model_dir=sm.params.base_model,
    adapter_dir=getattr(sm.input, "adapter", None),  # absent: the untrained rewriter
    card_path=getattr(sm.input, "card", None),  # absent: the no-card ablation
    base_library=sm.input.base,
    env=sm.params.env,
    categories=sm.params.categories,
    params=sm.params.inference,
    seed=sm.params.seed,
    out_library=sm.output.library,
    out_record=sm.output.record,
    heldout_categories=sm.params.heldout,
    threads=sm.threads,
)
