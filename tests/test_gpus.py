"""GPU requests per job come from the config: the rules' `gpu` resource, which SLURM receives as --gpus."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from masa.config import ConfigError, validate_config
from masa.gpus import model_gpus, search_job_gpus

VLLM = {"backend": "vllm", "path": "Qwen/Qwen3-8B", "tensor_parallel_size": 2, "gpus": 2}
SERVED = {"backend": "openai", "model": "teacher", "base_url": "http://127.0.0.1:8000/v1"}


def test_a_served_model_needs_no_gpu_in_the_job_and_a_local_one_its_configured_count():
    assert model_gpus(VLLM) == 2
    assert model_gpus({"backend": "transformers", "packaged": "smollm2-135m-instruct"}) == 0
    assert model_gpus({**SERVED, "gpus": 3}) == 0


def test_a_search_job_holds_the_backbone_and_an_in_process_teacher():
    backbone = {"model": VLLM}
    assert search_job_gpus(backbone, {"kind": "llm", "model": SERVED}) == 2
    assert search_job_gpus(backbone, {"kind": "llm", "model": {**VLLM, "gpus": 1}}) == 3
    assert search_job_gpus(backbone, {"kind": "edit"}) == 2


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {**VLLM, "gpus": 1},
            r"backbones.smollm2-135m.model.gpus: 1 GPU\(s\) cannot hold tensor_parallel_size 2",
        ),
        ({**SERVED, "gpus": 1}, r"backbones.smollm2-135m.model.gpus: a served model"),
    ],
)
def test_gpu_counts_that_cannot_work_fail_at_start(model, message):
    config = copy.deepcopy(yaml.safe_load(Path("config/config.yaml").read_text()))
    config["backbones"]["smollm2-135m"]["model"] = model
    config["backbones"]["smollm2-135m"]["agent"]["policy"] = "generate"
    with pytest.raises(ConfigError, match=message):
        validate_config(config, Path("config/schema.yaml"))
