"""Adapter: Snakemake rule consolidate_lessons -> masa.stages.induction.consolidate_lessons."""

from masa.process import prepare_process
from masa.stages.induction import consolidate_lessons

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
consolidate_lessons(
    teacher_spec=sm.params.teacher,
    teacher_model_dir=getattr(sm.input, "teacher_model", None),
    env=sm.wildcards.env,
    start_library=getattr(sm.input, "start", None),
    run=sm.params.run,
    seed=sm.params.seed,
    lessons_paths=list(sm.input.lessons),
    episodes_paths=list(sm.input.episodes),
    out_library=sm.output.library,
    out_log=sm.output.consolidation,
    out_record=sm.output.record,
    out_transcript=sm.output.transcript,
    threads=sm.threads,
)
