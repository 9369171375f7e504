"""Adapter: Snakemake rule reword_levels -> masa.stages.granularity.reword_levels."""

from masa.process import prepare_process
from masa.stages.granularity import reword_levels

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
reword_levels(
    teacher_spec=sm.params.teacher,
    teacher_model_dir=getattr(sm.input, "teacher_model", None),
    base_library=sm.input.base,
    env_name=sm.wildcards.env,
    run=sm.params.run,
    categories=sm.params.categories,
    levels=sm.params.levels,
    seed=sm.params.seed,
    out_levels=list(sm.output.levels),
    out_record=sm.output.record,
    out_transcript=sm.output.transcript,
    threads=sm.threads,
)
