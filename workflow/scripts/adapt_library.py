"""Adapter: Snakemake rule adapt_library -> masa.stages.adapt.adapt_library."""

from masa.process import prepare_process
from masa.stages.adapt import adapt_library

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
adapt_library(
    teacher_spec=sm.params.teacher,
    teacher_model_dir=getattr(sm.input, "teacher_model", None),
    base_library=sm.input.base,
    card_path=sm.input.card,
    categories=sm.params.categories,
    seed=sm.params.seed,
    out_library=sm.output.library,
    out_record=sm.output.record,
    out_transcript=sm.output.transcript,
    threads=sm.threads,
)
