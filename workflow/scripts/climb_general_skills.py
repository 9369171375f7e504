"""Adapter: Snakemake rule climb_general_skills -> masa.stages.general.climb."""

from masa.process import prepare_process
from masa.stages.context import Machine
from masa.stages.general import climb

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
climb(
    backbone=sm.params.backbone,
    env=sm.params.env,
    run=sm.params.run,
    teacher_spec=sm.params.teacher,
    search=sm.params.search,
    heldout=sm.params.heldout,
    model_dir=getattr(sm.input, "model", None),
    teacher_model_dir=getattr(sm.input, "teacher_model", None),
    base_library=sm.input.base,
    card_path=sm.input.card,
    library_path=sm.output.library,
    candidates_path=sm.output.candidates,
    transcript_path=sm.output.transcript,
    checkpoint_path=sm.params.checkpoint,
    threads=sm.threads,
    machine=Machine.of(sm.resources),
)
