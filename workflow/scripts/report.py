"""Adapter: Snakemake rule report -> masa.stages.report.write_report."""

from masa.process import prepare_process
from masa.stages.report import ReportPaths, write_report

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
write_report(
    evaluations=dict(sm.params.evaluations),
    swaps=list(sm.input.swaps),
    contributions=list(sm.input.contributions),
    agreements=list(sm.input.agreements),
    paths=ReportPaths(
        summary_md=sm.output.summary,
        summary_csv=sm.output.table,
        reward_png=sm.output.plot,
        categories_csv=sm.output.categories,
        categories_png=sm.output.categories_plot,
        swap_csv=sm.output.swap,
        swap_md=sm.output.swap_md,
        swap_png=sm.output.swap_plot,
        contribution_csv=sm.output.contribution,
        agreement_csv=sm.output.agreement,
    ),
    notes=sm.params.notes,
    resamples=sm.params.resamples,
)
