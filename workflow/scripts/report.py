"""Adapter: Snakemake rule report -> masa.stages.evaluate.write_report."""

from masa.runtime import prepare_process
from masa.stages.evaluate import write_report

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
write_report(list(sm.input), sm.output.summary, sm.output.table, sm.output.plot, sm.params.notes)
