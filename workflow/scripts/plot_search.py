"""Adapter: Snakemake rules plot_hillclimb / plot_tree -> masa.stages.report.plot_search_record."""

from masa.process import prepare_process
from masa.stages.report import plot_search_record

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
plot_search_record(sm.input[0], sm.params.title, sm.output[0])
