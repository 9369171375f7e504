"""Adapter: Snakemake rule run_lifecycle -> masa.stages.lifecycle.run_lifecycle."""

from masa.process import prepare_process
from masa.stages.context import Machine
from masa.stages.lifecycle import run_lifecycle

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
run_lifecycle(
    backbone=sm.params.backbone,
    env=sm.params.env,
    run=sm.params.run,
    teacher_spec=sm.params.teacher,
    lifecycle=sm.params.lifecycle,
    heldout=sm.params.heldout,
    resamples=sm.params.resamples,
    model_dir=getattr(sm.input, "model", None),
    teacher_model_dir=getattr(sm.input, "teacher_model", None),
    base_library=sm.input.base,
    library=sm.input.library,
    card_path=sm.input.card,
    out_library=sm.output.library,
    out_decisions=sm.output.decisions,
    out_record=sm.output.record,
    out_transcript=sm.output.transcript,
    threads=sm.threads,
    machine=Machine.of(sm.resources),
)
