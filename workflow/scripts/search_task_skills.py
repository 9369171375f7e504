"""Adapter: Snakemake rule search_task_skills -> masa.stages.task.search_category."""

from masa.process import prepare_process
from masa.stages.context import Machine
from masa.stages.task import search_category

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
search_category(
    backbone=sm.params.backbone,
    env=sm.params.env,
    run=sm.params.run,
    teacher_spec=sm.params.teacher,
    search=sm.params.search,
    category=sm.params.category,
    model_dir=getattr(sm.input, "model", None),
    teacher_model_dir=getattr(sm.input, "teacher_model", None),
    base_library=sm.input.base,
    general_library=sm.input.general,
    card_path=sm.input.card,
    library_path=sm.output.library,
    tree_path=sm.output.tree,
    transcript_path=sm.output.transcript,
    checkpoint_path=sm.params.checkpoint,
    threads=sm.threads,
    machine=Machine.of(sm.resources),
)
