"""Adapter: Snakemake rule report_lifecycle -> masa.stages.lifecycle_report.write_lifecycle_report."""

from masa.process import prepare_process
from masa.stages.lifecycle_report import write_lifecycle_report

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
write_lifecycle_report(
    decisions=list(sm.input.decisions),
    records=list(sm.input.records),
    backbones=sm.params.backbones,
    csv_path=sm.output.table,
    md_path=sm.output.markdown,
)
