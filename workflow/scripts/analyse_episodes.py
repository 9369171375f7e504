"""Adapter: Snakemake rule analyse_episodes -> masa.stages.induction.analyse_episodes."""

from masa.process import prepare_process
from masa.stages.induction import analyse_episodes

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
analyse_episodes(
    teacher_spec=sm.params.teacher,
    teacher_model_dir=getattr(sm.input, "teacher_model", None),
    env=sm.wildcards.env,
    episodes_paths=list(sm.input.episodes),
    categories=sm.params.categories,
    index=sm.params.index,
    analysts=sm.params.analysts,
    most=sm.params.max_lessons,
    seed=sm.params.seed,
    out_path=sm.output[0],
    threads=sm.threads,
)
