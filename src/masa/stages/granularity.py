"""The granularity study: the base library at ``levels`` levels of detail, and its table and figure.

``reword_levels`` writes one library per level (teacher rewording, checked by
``masa.skills.granularity.level_problems``: same ids, titles, conditions, categories and mistakes, lengths
growing with the level). When the teacher's levels fail that check, every level is the truncation fallback
instead, which passes it by construction: a level set is never a mix that cannot be compared. Each level is
then an evaluation like any method's (method ``granularity``, workflow/rules/granularity.smk), on the same
held-out instances and seeds as the backbone's Base Skill run, so each cell is a paired difference.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from masa import plots
from masa.io import atomic_write_text, read_json, write_json
from masa.methods import CONTROL
from masa.skills.granularity import level_name, level_problems, principle_words, truncated_level
from masa.stages.context import env_run, load_base_library, make_teacher
from masa.stages.records import teacher_usage, write_transcript
from masa.stats import episode_rewards, paired_difference
from masa.teacher.rewording import reword_library


def reword_levels(
    teacher_spec: dict[str, Any],
    teacher_model_dir: str | None,
    base_library: str,
    env_name: str,
    run: dict[str, Any],
    categories: list[str],
    levels: int,
    seed: int,
    out_levels: list[str],
    out_record: str,
    out_transcript: str,
    threads: int | None = None,
) -> None:
    """Write level k of ``levels`` to ``out_levels[k - 1]``, with a record of where each group's text came
    from, the check's verdict and the teacher's usage."""
    started = time.monotonic()
    base = load_base_library(base_library, env_run(run, env_name), categories)
    teacher = make_teacher(teacher_spec, teacher_model_dir, base, threads)
    reworded = [reword_library(teacher, base, k, levels, seed, categories) for k in range(1, levels + 1)]
    libraries = [library for library, _ in reworded]
    problems = level_problems(base, libraries, categories)
    if problems:
        libraries = [truncated_level(base, k, levels, categories) for k in range(1, levels + 1)]
        leftover = level_problems(base, libraries, categories)
        if leftover:  # only a library whose principles are too short to cut into `levels` lengths
            raise ValueError(f"{base_library}: no {levels} levels of detail can be cut from it: {leftover}")
    for library, path in zip(libraries, out_levels, strict=True):
        library.save(path)
    write_json(
        out_record,
        {
            "levels": [
                {
                    "level": k,
                    "name": level_name(k, levels),
                    "principle_words": principle_words(library, categories),
                    "sources": "truncated" if problems else sources,
                }
                for k, (library, (_, sources)) in enumerate(zip(libraries, reworded, strict=True), 1)
            ],
            "base_principle_words": principle_words(base, categories),
            "teacher_levels_rejected": problems,
            "usage": teacher_usage(teacher),
            "seconds": time.monotonic() - started,
        },
    )
    write_transcript(out_transcript, teacher)


def granularity_table(
    levels: list[dict[str, Any]], controls: list[dict[str, Any]], records: dict[str, Any], resamples: int
) -> pd.DataFrame:
    """One row per (env, backbone, level): reward, the paired change vs that backbone's Base Skill with its
    95% interval, the level's principle words, and ``best`` on each backbone's highest-reward level."""
    base = {(r["env"], r["backbone"]): r for r in controls if r["method"] == CONTROL}
    rows = []
    for r in levels:
        level = int(r["library_source"].removeprefix("level "))
        diff = paired_difference(
            episode_rewards(r), episode_rewards(base[(r["env"], r["backbone"])]), resamples
        )
        words = records[r["env"]]["levels"][level - 1]["principle_words"]
        rows.append(
            {
                "env": r["env"],
                "backbone": r["backbone"],
                "level": level,
                "name": records[r["env"]]["levels"][level - 1]["name"],
                "principle_words": words,
                "base_principle_words": records[r["env"]]["base_principle_words"],
                "reward": r["summary"]["reward_mean"],
                "base_reward": base[(r["env"], r["backbone"])]["summary"]["reward_mean"],
                **{k if k != "mean" else "diff": v for k, v in diff.as_dict().items()},
                "excludes_zero": diff.excludes_zero,
            }
        )
    df = pd.DataFrame(rows).sort_values(["env", "backbone", "level"]).reset_index(drop=True)
    df["best"] = False  # the highest reward, the more concise level on a tie (idxmax: the first)
    df.loc[df.groupby(["env", "backbone"])["reward"].idxmax(), "best"] = True
    return df


def granularity_markdown(df: pd.DataFrame) -> str:
    """Per environment, backbones as rows and levels as columns: the paired change vs Base Skill [95% CI];
    the best level of each backbone in bold ("*" where its interval excludes 0)."""
    out = []
    for env, sub in df.groupby("env", sort=False):
        levels = sorted(sub["level"].unique())
        words = {r["level"]: r["principle_words"] for _, r in sub.iterrows()}
        header = " | ".join(
            f"level {k} ({sub[sub['level'] == k]['name'].iloc[0]}, {words[k]} words)" for k in levels
        )
        out += [
            f"### {env}: change in held-out reward vs Base Skill "
            f"({sub['base_principle_words'].iloc[0]} principle words), paired 95% CI",
            "",
            f"| backbone | Base Skill reward | {header} | best level |",
            "|---|---|" + "---|" * len(levels) + "---|",
        ]
        for backbone, rows in sub.groupby("backbone", sort=False):
            cells = []
            for _, r in rows.iterrows():
                cell = f"{r['diff']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]" + (
                    " *" if r["excludes_zero"] else ""
                )
                cells.append(f"**{cell}**" if r["best"] else cell)
            best = rows[rows["best"]].iloc[0]
            out.append(
                f"| {backbone} | {rows['base_reward'].iloc[0]:.3f} | {' | '.join(cells)} | "
                f"{best['level']} ({best['name']}) |"
            )
        out += ["", f"{sub['pairs'].iloc[0]} pairs per cell; * the interval excludes 0.", ""]
    return "\n".join(out)


def write_granularity_report(
    level_paths: list[str],
    control_paths: list[str],
    record_paths: dict[str, str],
    resamples: int,
    out_csv: str,
    out_md: str,
    out_png: str,
) -> pd.DataFrame:
    df = granularity_table(
        [read_json(p) for p in level_paths],
        [read_json(p) for p in control_paths],
        {env: read_json(p) for env, p in record_paths.items()},
        resamples,
    )
    df.to_csv(out_csv, index=False)
    atomic_write_text(out_md, "# Granularity study\n\n" + granularity_markdown(df))
    plots.plot_granularity(df, out_png)
    return df
