"""The rewriter stages as functions of files: training data, fine-tuning, and one-pass alignment."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from masa.io import read_yaml, write_json
from masa.rewriter.data import AugmentConfig, build_examples, card_text, read_dataset, write_dataset
from masa.rewriter.infer import load_rewriter, rewrite
from masa.rewriter.train import TrainConfig, train_rewriter
from masa.skills import SkillLibrary

log = logging.getLogger(__name__)

UNTRAINED = "UNTRAINED"  # marker file in an adapter folder when there was nothing to learn from


def task_description(env: str, category: str) -> str:
    """What the rewriter is told about a category (the category name is what every backbone shares)."""
    return f"{env} task type '{category}'"


def build_rewriter_data(
    trajectory_paths: list[str],
    card_paths: dict[str, str],
    base_library: str,
    env: str,
    categories: list[str],
    heldout_categories: list[str],
    min_reward_quantile: float,
    seed: int,
    out_path: str,
) -> int:
    trajectories = pd.concat([pd.read_parquet(p) for p in trajectory_paths], ignore_index=True)
    examples = build_examples(
        trajectories,
        {backbone: read_yaml(path) for backbone, path in card_paths.items()},
        SkillLibrary.load(base_library),
        {c: task_description(env, c) for c in categories if c not in heldout_categories},
        heldout_categories,
        [],
        min_reward_quantile,
        AugmentConfig(),
        seed,
    )
    write_dataset(examples, out_path)
    log.info("%d rewriter examples from %d candidates", len(examples), len(trajectories))
    return len(examples)


def fit_rewriter(
    dataset: str, base_model_dir: str, params: dict[str, Any], seed: int, out_dir: str, loss_plot: str
) -> None:
    """Fine-tune on the dataset; with no example (no search improved on its root) the folder says so and
    inference uses the base model, labelled untrained in the record."""
    examples = read_dataset(dataset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not examples:
        log.warning("no rewriter examples: no search candidate beat its root; the rewriter stays untrained")
        (out / UNTRAINED).write_text("no training examples: no search candidate beat its root\n")
        write_json(out / "loss_curve.json", [])
        plot_loss([], loss_plot)
        return
    config = TrainConfig(
        method=params["method"],
        lora_r=params["lora_r"],
        lora_alpha=params["lora_alpha"],
        target_modules=tuple(params["target_modules"]),
        bf16_on_cpu=params["bf16_on_cpu"],
        learning_rate=params["learning_rate"],
        epochs=params["epochs"],
        max_steps=params.get("max_steps"),
        warmup_ratio=params["warmup_ratio"],
        effective_batch=params["effective_batch"],
        max_length=params["max_length"],
        seed=seed,
    )
    result = train_rewriter(base_model_dir, examples, out, config, log=log.info)
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


def apply_rewriter(
    base_model_dir: str,
    adapter_dir: str,
    card_path: str | None,
    base_library: str,
    env: str,
    categories: list[str],
    params: dict[str, Any],
    seed: int,
    out_library: str,
    out_record: str,
    threads: int | None = None,
) -> SkillLibrary:
    """One generation per category: the rewriter writes the backbone's skills from its card alone.

    ``card_path`` None gives the rewriter an empty card (the "rewriter without the card" ablation)."""
    started = time.monotonic()
    untrained = (Path(adapter_dir) / UNTRAINED).is_file()
    if untrained:
        from masa.llm.transformers_backend import TransformersLLM

        llm = TransformersLLM(name="rewriter", path=base_model_dir, threads=threads)
    else:
        llm = load_rewriter(base_model_dir, adapter_dir, threads=threads)
    card = card_text(read_yaml(card_path)) if card_path else ""
    library = SkillLibrary.load(base_library)
    record: dict[str, Any] = {"untrained": untrained, "categories": {}}
    for category in categories:
        result = rewrite(
            llm,
            card,
            library,
            category,
            task_description(env, category),
            params["max_new_tokens"],
            params["retries"],
            seed,
        )
        log.info(
            "%s: valid=%s attempts=%d fell_back=%s", category, result.valid, result.attempts, result.fell_back
        )
        library = result.library
        record["categories"][category] = {k: v for k, v in asdict(result).items() if k != "library"}
    record["usage"] = llm.usage.as_dict()
    record["seconds"] = time.monotonic() - started
    library.save(out_library)
    write_json(out_record, record)
    return library
