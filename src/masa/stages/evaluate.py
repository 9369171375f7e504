"""Held-out evaluation of one method for one backbone, and the report over all of them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from masa.io import atomic_write_text, read_json, write_json
from masa.rollout import episode_to_dict, summarise
from masa.runtime import open_context
from masa.skills import SkillLibrary

log = logging.getLogger(__name__)

METHOD_LABELS = {
    "no_skill": "No Skill",
    "base_skill": "Base Skill",
    "masa": "MASA",
    "rewriter": "Rewriter",
}


def evaluate_method(
    method: str,
    backbone: dict[str, Any],
    env: dict[str, Any],
    run: dict[str, Any],
    evaluation: dict[str, Any],
    model_dir: str | None,
    base_library: str,
    library: str | None,
    out_path: str,
    threads: int | None = None,
) -> dict[str, Any]:
    """Play ``method``'s library on the held-out (test-split) instances of every category."""
    ctx = open_context(backbone, env, run, model_dir, base_library, threads, evaluation["temperature"])
    env_label = ctx.env.display_name
    skills = None if method == "no_skill" else SkillLibrary.load(library) if library else ctx.base
    tasks = [t for c in ctx.env.categories() for t in ctx.tasks.evaluation[c]]
    try:
        result = ctx.evaluator.run(
            skills, tasks, tuple(evaluation["seeds"]), label=f"{backbone['name']} {method}"
        )
    finally:
        ctx.close()
    resamples = evaluation["bootstrap_resamples"]
    by_category: dict[str, list] = {}
    for episode in result.episodes:
        by_category.setdefault(episode.category, []).append(episode)
    record = {
        "backbone": backbone["name"],
        "env": env["name"],
        "env_label": env_label,
        "method": method,
        "summary": summarise(result.episodes, resamples).as_dict(),
        "by_category": {c: summarise(es, resamples).as_dict() for c, es in sorted(by_category.items())},
        "tasks": [t.key for t in tasks],
        "search_tasks": [t.key for ts in ctx.tasks.search.values() for t in ts],
        "episodes": [episode_to_dict(e) for e in result.episodes],
    }
    write_json(out_path, record)
    return record


def results_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in records:
        s = r["summary"]
        rows.append(
            {
                "backbone": r["backbone"],
                "env": r["env"],
                "env_label": r.get("env_label", r["env"]),
                "method": METHOD_LABELS.get(r["method"], r["method"]),
                "reward": s["reward_mean"],
                "reward_low": s["reward_low"],
                "reward_high": s["reward_high"],
                "success_rate": s["success_rate"],
                "progress": s["score_mean"],
                "noop_rate": s["noop_rate"],
                "episodes": s["episodes"],
                "env_steps": s["steps"],
                "llm_calls": s["llm_calls"],
                "prompt_tokens": s["prompt_tokens"],
            }
        )
    return pd.DataFrame(rows)


def markdown_table(df: pd.DataFrame) -> str:
    header = "| method | reward [95% CI] | success | progress | no-op rate | episodes | LLM calls |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        lines.append(
            f"| {r['method']} | {r['reward']:.3f} [{r['reward_low']:.3f}, {r['reward_high']:.3f}] | "
            f"{r['success_rate']:.0%} | {r['progress']:.2f} | {r['noop_rate']:.2f} | {r['episodes']} | "
            f"{r['llm_calls']} |"
        )
    return "\n".join(lines)


def plot_rewards(df: pd.DataFrame, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(zip(df["backbone"], df["env"], strict=True)))
    methods = list(dict.fromkeys(df["method"]))
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(groups)), 4))
    for m_index, method in enumerate(methods):
        sub = df[df["method"] == method]
        xs, ys, lo, hi = [], [], [], []
        for g_index, (backbone, env) in enumerate(groups):
            row = sub[(sub["backbone"] == backbone) & (sub["env"] == env)]
            if row.empty:
                continue
            r = row.iloc[0]
            xs.append(g_index + (m_index - (len(methods) - 1) / 2) * width)
            ys.append(r["reward"])
            lo.append(r["reward"] - r["reward_low"])
            hi.append(r["reward_high"] - r["reward"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=method)
    ax.set_xticks(range(len(groups)), [f"{b}\n{e}" for b, e in groups])
    ax.set_ylabel("mean reward (SR - lambda * no-op rate)")
    ax.set_title("Held-out reward per backbone and method (95% bootstrap CI)")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(
    eval_paths: list[str], summary_md: str, summary_csv: str, plot_png: str, notes: dict[str, Any]
) -> pd.DataFrame:
    records = [read_json(p) for p in eval_paths]
    df = results_table(records)
    order = {label: i for i, label in enumerate(METHOD_LABELS.values())}
    df = df.sort_values(
        ["env", "backbone", "method"], key=lambda s: s.map(order) if s.name == "method" else s
    )
    df.to_csv(summary_csv, index=False)
    plot_rewards(df, plot_png)
    parts = [
        "# MASA results",
        "",
        f"Held-out evaluation on the test split of each environment (instances disjoint from the search). "
        f"Reward = progress - {notes.get('noop_penalty')} x no-op rate; intervals are 95% bootstrap intervals "
        f"over episodes; seeds {notes.get('seeds')}.",
        "",
    ]
    for (_, backbone, label), sub in df.groupby(["env", "backbone", "env_label"], sort=False):
        parts += [f"## {backbone} on {label}", "", markdown_table(sub), ""]
    parts += [f"![reward per method]({Path(plot_png).name})", ""]
    atomic_write_text(Path(summary_md), "\n".join(parts))
    return df
