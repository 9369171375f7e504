"""Adapter: Snakemake rule build_rewriter_data -> masa.stages.rewriter.build_rewriter_data."""

from masa.process import prepare_process
from masa.stages.rewriter import build_rewriter_data

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
build_rewriter_data(
    trajectory_paths=list(sm.input.trajectories),
    card_paths=dict(zip(sm.params.backbones, sm.input.cards, strict=True)),
    base_library=sm.input.base,
    env=sm.params.env,
    categories=sm.params.categories,
    heldout_categories=sm.params.heldout,
    min_reward_quantile=sm.params.min_reward_quantile,
    seed=sm.params.seed,
    out_path=sm.output[0],
    heldout_backbones=sm.params.heldout_backbones,
    teacher_rewrite_paths=sm.params.teacher_rewrites,
)
