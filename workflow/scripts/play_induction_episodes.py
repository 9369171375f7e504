"""Adapter: Snakemake rule play_induction_episodes -> masa.stages.induction.play_induction_episodes."""

from masa.process import prepare_process
from masa.stages.context import Machine
from masa.stages.induction import play_induction_episodes

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
play_induction_episodes(
    backbone=sm.params.backbone,
    env=sm.params.env,
    run=sm.params.run,
    heldout=sm.params.heldout,
    start_library=getattr(sm.input, "start", None),
    model_dir=getattr(sm.input, "model", None),
    out_path=sm.output[0],
    threads=sm.threads,
    machine=Machine.of(sm.resources),
)
