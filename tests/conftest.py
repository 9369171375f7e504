"""Shared fixtures: the real packaged models, converted once per machine and reused across test runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]


def packaged_model_dir(key: str) -> Path:
    """The safetensors folder of a packaged model, built on first use.

    The workflow builds the same folders under ``resources/models``; tests reuse them when present so a
    machine converts each model once.
    """
    from masa.llm.packaged import PACKAGED_MODELS, convert_to_safetensors

    root = Path(os.environ.get("MASA_MODEL_DIR", REPO / "resources" / "models"))
    target = root / key
    if not (target / "config.json").is_file():
        convert_to_safetensors(PACKAGED_MODELS[key], target)
    return target


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return packaged_model_dir("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma_dir() -> Path:
    return packaged_model_dir("gemma3-270m")
