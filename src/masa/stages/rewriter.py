"""The rewriter stages as functions of files: training data, fine-tuning, and one-pass alignment."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from masa.io import atomic_write_text, write_json
from masa.llm.base import LLM
from masa.rewriter.data import (
    AugmentConfig,
    build_examples,
    card_text,
    check_no_heldout,
    read_dataset,
    write_dataset,
)
from masa.rewriter.infer import load_rewriter, rewrite
from masa.rewriter.train import (
    TrainConfig,
    TrainResult,
    train_rewriter,
    training_record,
)
from masa.rollout.cost import TRAINING_RECORD
from masa.skills.library import SkillLibrary
from masa.stages.export import read_trajectories
from masa.teacher.card import load_card
from masa.teacher.replies import rewriter_rejections

log = logging.getLogger(__name__)

UNTRAINED = "UNTRAINED"  # marker file in an adapter folder when there was nothing to learn from


def task_description(env: str, category: str) -> str:
    """What the rewriter is told about a category (the category name is what every backbone shares)."""
    return f"{env} task type '{category}'"


@dataclass(frozen=True)
class DataSource:
    """One environment whose search trajectories teach the rewriter: its base library (the input skills),
    its training categories, and each training backbone's one-shot teacher rewrite (the Adapter's)."""

    base_library: str
    categories: list[str]
    teacher_rewrites: dict[str, str] = field(default_factory=dict)


def build_rewriter_data(
    trajectory_paths: list[str],
    card_paths: dict[str, str],
    sources: dict[str, DataSource],
    heldout_categories: list[str],
    min_reward_quantile: float,
    seed: int,
    out_path: str,
    heldout_backbones: Sequence[str] = (),
    heldout_environments: Sequence[str] = (),
    *,
    targets: str,
) -> int:
    """Write the training set from the trajectories of every environment in ``sources``; the held-out guard
    runs again on the final examples right before writing.

    One source is the per-environment rewriter; several, with the target environment in
    ``heldout_environments``, the cross-environment one, whose data must never hold a row of the
    environment it will write skills for. ``trajectory_paths`` are Parquet files or hive-partitioned folders
    (``results/trajectories``). The Parquet file's metadata records the scope and the environments.
    """
    if not trajectory_paths:
        raise ValueError(
            "no trajectories to train the rewriter on: rewriter.heldout_backbones holds out every backbone"
        )
    if leaked := sorted(set(sources) & set(heldout_environments)):
        raise ValueError(f"held-out environment {leaked[0]!r} is among the rewriter's data sources")
    trajectories = pd.concat([read_trajectories(p) for p in trajectory_paths], ignore_index=True)
    cards = {backbone: load_card(path) for backbone, path in card_paths.items()}
    examples = []
    for env, source in sorted(sources.items()):
        rows = trajectories[trajectories["env"] == env]
        examples += build_examples(
            rows,
            cards,
            SkillLibrary.load(source.base_library),
            {c: task_description(env, c) for c in source.categories if c not in heldout_categories},
            heldout_categories,
            list(heldout_backbones),
            min_reward_quantile,
            AugmentConfig(),
            seed,
            require_gain=targets == "improved",
            teacher_rewrites={b: SkillLibrary.load(p) for b, p in source.teacher_rewrites.items()},
        )
    check_no_heldout(examples, heldout_categories, list(heldout_backbones), list(heldout_environments))
    scope = {
        "scope": "cross_environment" if heldout_environments else "environment",
        "environments": sorted(sources),
        "heldout_environments": sorted(heldout_environments),
    }
    write_dataset(examples, out_path, scope)
    by_source = pd.Series([ex.source for ex in examples], dtype=str).value_counts().to_dict()
    log.info(
        "%d rewriter examples (%s) from %d candidates, by source: %s",
        len(examples),
        scope,
        len(trajectories),
        by_source,
    )
    return len(examples)


# The rewriter section's keys that training reads, and those that applying it reads: each rule gets only its
# own, so that a change of rewriter.gpus, mem_mb or runtime (or of the other rule's keys) re-runs nothing.
TRAINING_KEYS = (
    "method",
    "lora_r",
    "lora_alpha",
    "target_modules",
    "bf16_on_cpu",
    "learning_rate",
    "full_learning_rate",
    "epochs",
    "max_steps",
    "warmup_ratio",
    "effective_batch",
    "max_length",
    "checkpoint_every",
    "gradient_checkpointing",
)
INFERENCE_KEYS = ("max_new_tokens", "retries")


def train_config(params: dict[str, Any], seed: int) -> TrainConfig:
    """The training settings from the ``rewriter`` config section.

    ``learning_rate`` is LoRA's; ``full_learning_rate`` (the paper's 1e-5) applies to ``method: full``.
    """
    full = params["method"] == "full"
    return TrainConfig(
        method=params["method"],
        lora_r=params["lora_r"],
        lora_alpha=params["lora_alpha"],
        target_modules=tuple(params["target_modules"]),
        bf16_on_cpu=params["bf16_on_cpu"],
        learning_rate=params["full_learning_rate"] if full else params["learning_rate"],
        epochs=params["epochs"],
        max_steps=params.get("max_steps"),
        warmup_ratio=params["warmup_ratio"],
        effective_batch=params["effective_batch"],
        max_length=params["max_length"],
        checkpoint_every=params["checkpoint_every"],
        gradient_checkpointing=params["gradient_checkpointing"],
        seed=seed,
    )


def fit_rewriter(
    dataset: str,
    base_model_dir: str,
    params: dict[str, Any],
    seed: int,
    out_dir: str,
    loss_plot: str,
    checkpoint: str | None = None,
) -> None:
    """Fine-tune on the dataset, resuming from ``checkpoint`` if a killed run left one; with no example (no
    candidate cleared rewriter.targets and min_reward_quantile) the folder says so and inference uses the base model, labelled untrained in
    the record."""
    examples = read_dataset(dataset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not examples:
        why = "no search candidate cleared rewriter.targets and rewriter.min_reward_quantile"
        log.warning("no rewriter examples: %s; the rewriter stays untrained", why)
        atomic_write_text(out / UNTRAINED, f"no training examples: {why}\n")
        record = training_record(TrainResult(method=params["method"]))
        write_json(out / "loss_curve.json", {**record, "loss_curve": []})
        write_json(out / TRAINING_RECORD, record)
        plot_loss([], loss_plot)
        return
    config = train_config(params, seed)
    result = train_rewriter(base_model_dir, examples, out, config, log=log.info, checkpoint=checkpoint)
    plot_loss(result.loss_curve, loss_plot)


def plot_loss(curve: list[dict[str, float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    if curve:
        ax.plot([p["step"] for p in curve], [p["loss"] for p in curve], marker="o")
    else:
        ax.text(0.5, 0.5, "untrained: no examples", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (target tokens)")
    ax.set_title("Rewriter fine-tuning")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_aligner(
    base_model_dir: str, adapter_dir: str | None, threads: int | None = None
) -> tuple[LLM, bool]:
    """The rewriter model and whether it is untrained (no adapter given, or training had no examples)."""
    untrained = adapter_dir is None or (Path(adapter_dir) / UNTRAINED).is_file()
    if untrained:
        from masa.llm.transformers_backend import TransformersLLM

        return TransformersLLM(name="rewriter", path=base_model_dir, threads=threads), True
    return load_rewriter(base_model_dir, adapter_dir, threads=threads), False


def align_library(
    llm: LLM,
    card: dict[str, Any],
    library: SkillLibrary,
    task_descriptions: dict[str, str],
    max_new_tokens: int,
    retries: int,
    seed: int,
) -> tuple[SkillLibrary, dict[str, Any]]:
    """One generation per category (plus retries), each merged into the library as it comes.

    Returns the aligned library, always valid (a category whose every attempt failed keeps its input skills
    and is listed under ``fell_back_categories``), and the record of what each category got and what it cost.
    """
    started = time.monotonic()
    before = replace(llm.usage)
    text = card_text(card)
    per_category: dict[str, Any] = {}
    for category, description in task_descriptions.items():
        result = rewrite(llm, text, library, category, description, max_new_tokens, retries, seed)
        rejected = rewriter_rejections(result.raw, result.valid)
        if result.fell_back:
            log.warning(
                "%s: no valid rewrite in %d attempts (rejected %s); kept the input skills",
                category,
                result.attempts,
                rejected,
            )
        else:
            log.info("%s: valid rewrite in %d attempt(s), rejected %s", category, result.attempts, rejected)
        library = result.library
        per_category[category] = {k: v for k, v in asdict(result).items() if k != "library"}
        per_category[category]["rejected"] = rejected
    library = SkillLibrary.from_dict(library.to_dict(), source="aligned library")  # re-validate the whole
    usage = llm.usage
    cost = {
        "libraries": 1,
        "llm_calls": usage.calls - before.calls,
        "prompt_tokens": usage.prompt_tokens - before.prompt_tokens,
        "completion_tokens": usage.completion_tokens - before.completion_tokens,
        "seconds": round(time.monotonic() - started, 3),
    }
    record = {
        "categories": per_category,
        "fell_back_categories": [c for c, r in per_category.items() if r["fell_back"]],
        "cost": cost,
    }
    return library, record


def apply_rewriter(
    base_model_dir: str,
    adapter_dir: str | None,
    card_path: str | None,
    base_library: str,
    env: str,
    categories: list[str],
    params: dict[str, Any],
    seed: int,
    out_library: str,
    out_record: str,
    heldout_categories: Sequence[str] = (),
    threads: int | None = None,
) -> SkillLibrary:
    """One generation per category: the rewriter writes the backbone's skills from its card alone.

    Held-out categories (never searched, never in the training data) are rewritten like the others; the
    record lists them so the evaluation can compare the rewriter's skills there against the base skills.
    ``cost.seconds`` counts loading the model too: it is what aligning one library costs from cold.
    ``card_path`` None gives the rewriter an empty card (the "rewriter without the card" ablation);
    ``adapter_dir`` None plays the base model untrained (the paper's untrained-rewriter baseline).
    """
    started = time.monotonic()
    llm, untrained = load_aligner(base_model_dir, adapter_dir, threads)
    library, record = align_library(
        llm,
        load_card(card_path) if card_path else {},
        SkillLibrary.load(base_library),
        {c: task_description(env, c) for c in categories},
        params["max_new_tokens"],
        params["retries"],
        seed,
    )
    record["cost"]["generation_seconds"] = record["cost"]["seconds"]
    record["cost"]["seconds"] = round(time.monotonic() - started, 3)
    library.save(out_library)
    cost = record["cost"]
    write_json(
        out_record,
        {
            "untrained": untrained,
            "adapter": str(adapter_dir),
            "heldout_categories": [c for c in categories if c in set(heldout_categories)],
            **record,
            # the Usage-shaped summary other records use, so cost readers treat every stage alike
            "usage": {k: cost[k] for k in ("prompt_tokens", "completion_tokens")}
            | {"calls": cost["llm_calls"]},
            "seconds": cost["seconds"],
        },
    )
    return library
