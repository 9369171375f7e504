"""Adapter: Snakemake rule report_granularity -> masa.stages.granularity.write_granularity_report."""

from masa.process import prepare_process
from masa.stages.granularity import write_granularity_report

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
write_granularity_report(
    level_paths=list(sm.input.levels),
    control_paths=list(sm.input.controls),
    record_paths=dict(zip(sm.params.envs, sm.input.records, strict=True)),
    resamples=sm.params.resamples,
    out_csv=sm.output.table,
    out_md=sm.output.markdown,
    out_png=sm.output.plot,
)
