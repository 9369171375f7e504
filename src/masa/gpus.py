"""How many GPUs a workflow job asks its scheduler for, from the config.

The count becomes the rules' ``gpu`` resource, which the SLURM executor plugin turns into ``--gpus=N``
(and which ``snakemake -n`` prints), so GPU requests live in the config next to the model they serve
rather than in a site profile.
"""

from __future__ import annotations

from typing import Any


def model_gpus(spec: dict[str, Any]) -> int:
    """GPUs a job needs to load this model in its own process; a served model (openai) needs none."""
    if spec.get("backend", "transformers") == "openai":
        return 0
    return int(spec.get("gpus", 0))


def teacher_gpus(teacher: dict[str, Any]) -> int:
    """GPUs for the teacher when it runs inside the search job (kind: llm with a local model)."""
    return model_gpus(teacher["model"]) if teacher["kind"] == "llm" else 0


def search_job_gpus(backbone: dict[str, Any], teacher: dict[str, Any]) -> int:
    """A profile or search job holds the backbone and the teacher at once."""
    return model_gpus(backbone["model"]) + teacher_gpus(teacher)


def gpu_problems(where: str, spec: dict[str, Any]) -> list[str]:
    """A vLLM engine shards over ``tensor_parallel_size`` GPUs, so asking for fewer cannot start it."""
    gpus, shards = model_gpus(spec), int(spec.get("tensor_parallel_size", 1))
    if spec.get("backend") == "vllm" and 0 < gpus < shards:
        return [
            f"{where}.gpus: {gpus} GPU(s) cannot hold tensor_parallel_size {shards}; "
            f"set gpus: {shards} (or 0 to run vLLM on the CPU)"
        ]
    if spec.get("backend") == "openai" and spec.get("gpus"):
        return [f"{where}.gpus: a served model (backend: openai) uses no GPU in the job; remove gpus"]
    return []
