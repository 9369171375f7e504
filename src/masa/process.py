"""The start of every stage process, before anything heavy is imported: thread policy and logging."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def prepare_process(log_path: str | None = None, level: int = logging.INFO) -> None:
    """Start of every stage process: torch's thread policy, then logging to the rule's log file (kept by
    Snakemake on failure) and to stderr (progress you can watch).

    OpenMP's spin-wait made torch 10-15x slower on 2 busy cores (docs/models.md); it must be set before torch
    is imported, which happens only when a model is loaded.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    # py4j (ScienceWorld's bridge) logs harmless shutdown tracebacks at INFO level.
    logging.getLogger("py4j").setLevel(logging.WARNING)
