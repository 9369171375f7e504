"""Adapter: Snakemake rule export_trajectories -> masa.stages.export.export_trajectories."""

from masa.process import prepare_process
from masa.stages.export import export_trajectories

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
export_trajectories(sm.params.backbone, sm.params.env, list(sm.input), sm.output[0])
