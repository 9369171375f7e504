"""Adapter: Snakemake rule evaluate_method -> masa.stages.evaluate.evaluate_method."""

from masa.process import prepare_process
from masa.stages.context import Machine
from masa.stages.evaluate import evaluate_method

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
evaluate_method(
    method=sm.params.method,
    backbone=sm.params.backbone,
    env=sm.params.env,
    run=sm.params.run,
    evaluation=sm.params.evaluation,
    model_dir=getattr(sm.input, "model", None),
    base_library=sm.input.base,
    library=getattr(sm.input, "library", None),
    out_path=sm.output[0],
    library_source=getattr(sm.params, "source", None),
    threads=sm.threads,
    machine=Machine.of(sm.resources),
)
