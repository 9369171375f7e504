"""Adapter: Snakemake rules build_rewriter_data, build_cross_env_rewriter_data ->
masa.stages.rewriter.build_rewriter_data."""

from masa.process import prepare_process
from masa.stages.rewriter import DataSource, build_rewriter_data

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
build_rewriter_data(
    trajectory_paths=list(sm.input.trajectories),
    card_paths=dict(zip(sm.params.backbones, sm.input.cards, strict=True)),
    sources={env: DataSource(**source) for env, source in sm.params.sources.items()},
    heldout_categories=sm.params.heldout,
    min_reward_quantile=sm.params.min_reward_quantile,
    targets=sm.params.targets,
    seed=sm.params.seed,
    out_path=sm.output[0],
    heldout_backbones=sm.params.heldout_backbones,
    heldout_environments=sm.params.heldout_environments,
)
