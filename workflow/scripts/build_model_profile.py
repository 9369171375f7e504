"""Adapter: Snakemake rule build_model_profile -> masa.stages.profile.build_model_profile."""

from masa.process import prepare_process
from masa.stages.context import Machine
from masa.stages.profile import build_model_profile

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
build_model_profile(
    backbone=sm.params.backbone,
    env=sm.params.env,
    run=sm.params.run,
    teacher_spec=sm.params.teacher,
    model_dir=getattr(sm.input, "model", None),
    teacher_model_dir=getattr(sm.input, "teacher_model", None),
    base_library=sm.input.base,
    card_path=sm.output.card,
    rollouts_path=sm.output.rollouts,
    transcript_path=sm.output.transcript,
    threads=sm.threads,
    machine=Machine.of(sm.resources),
)
