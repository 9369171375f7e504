"""Adapter: Snakemake rule merge_library -> masa.stages.merge.merge_library."""

from masa.process import prepare_process
from masa.stages.merge import merge_library

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
merge_library(
    general_library=sm.input.general,
    category_libraries={c: sm.input[c] for c in sm.params.categories},
    out_path=sm.output.library,
)
