"""The report over every evaluation: method table with intervals, paired differences and cost, the swap
matrix, success by category, as CSV + Markdown tables and figures (``masa.plots``).

Results of different environments are never pooled: every table and figure is keyed by the environment's
name, and shown under its ``env_label`` when an evaluation carries one (e.g. generated vs official games).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from masa import plots
from masa.io import atomic_write_text, read_json
from masa.methods import CONTROL, EXTERNAL, METHODS, method_label
from masa.rollout.cost import Cost, method_cost
from masa.stats import bootstrap_interval, episode_rewards, paired_difference, spearman, spearman_interval


@dataclass(frozen=True)
class ReportPaths:
    summary_md: str
    summary_csv: str
    reward_png: str
    categories_csv: str
    categories_png: str
    swap_csv: str
    swap_md: str
    swap_png: str
    contribution_csv: str
    agreement_csv: str = ""


def env_label(record: dict[str, Any]) -> str:
    return record.get("env_label") or record["env"]


def _controls(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["env"], r["backbone"]): r for r in records if r["method"] == CONTROL}


def method_table(entries: list[tuple[dict[str, Any], Cost, Cost]], resamples: int = 1000) -> pd.DataFrame:
    """One row per (env, backbone, method): scores with intervals, the paired change vs Base Skill, and
    cost split into evaluation (``eval_*``), preparation (``prep_*``: search, teacher, training) and total."""
    controls = _controls([r for r, _, _ in entries])
    rows = []
    for r, eval_cost, prep_cost in entries:
        s = r["summary"]
        won = [float(e["won"]) for e in r["episodes"]]
        success_low, success_high = bootstrap_interval(won, resamples)
        control = controls.get((r["env"], r["backbone"]))
        diff = (
            paired_difference(episode_rewards(r), episode_rewards(control), resamples)
            if control is not None and r["method"] != CONTROL
            else None
        )
        row = {
            "env": r["env"],
            "env_label": env_label(r),
            "backbone": r["backbone"],
            "method": method_label(r["method"], r.get("library_source")),
            "reward": s["reward_mean"],
            "reward_low": s["reward_low"],
            "reward_high": s["reward_high"],
            "diff_vs_base": diff.mean if diff else float("nan"),
            "diff_low": diff.low if diff else float("nan"),
            "diff_high": diff.high if diff else float("nan"),
            "pairs": diff.pairs if diff else 0,
            "detectable": diff.detectable if diff else float("nan"),
            "success_rate": s["success_rate"],
            "success_low": success_low,
            "success_high": success_high,
            "progress": s["score_mean"],
            "noop_rate": s["noop_rate"],
            "episodes": s["episodes"],
            "failed": s.get("failed", 0),
            "seeds": len(r.get("seeds", [0])),
        }
        total = eval_cost + prep_cost
        for prefix, cost in (("eval", eval_cost), ("prep", prep_cost), ("total", total)):
            row |= {f"{prefix}_{k}": v for k, v in cost.as_dict().items()}
        rows.append(row)
    df = pd.DataFrame(rows)
    order = {m.label: i for i, m in enumerate(METHODS.values())}
    return df.sort_values(
        ["env", "backbone", "method"],
        key=lambda c: c.map(lambda m: (order.get(m, len(order)), m)) if c.name == "method" else c,
    ).reset_index(drop=True)


def _interval(mean: float, low: float, high: float, fmt: str = ".3f", sign: str = "") -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:{sign}{fmt}} [{low:{sign}{fmt}}, {high:{sign}{fmt}}]"


def _detectable(value: float) -> str:
    if pd.isna(value):
        return "—"
    return "none (< 2 pairs)" if value == float("inf") else f"±{value:.3f}"


def method_markdown(df: pd.DataFrame) -> str:
    lines = [
        "| method | reward [95% CI] | change vs Base Skill [95% CI, paired] | detectable change | "
        "success [95% CI] | progress | no-op rate | episodes | failed | played | env steps | LLM calls | "
        "tokens in / out | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in df.iterrows():
        lines.append(
            f"| {r['method']} | {_interval(r['reward'], r['reward_low'], r['reward_high'])} | "
            f"{_interval(r['diff_vs_base'], r['diff_low'], r['diff_high'], sign='+')} | "
            f"{_detectable(r['detectable'])} | "
            f"{_interval(r['success_rate'], r['success_low'], r['success_high'], '.0%')} | "
            f"{r['progress']:.2f} | {r['noop_rate']:.2f} | {r['episodes']} | {r['failed']} | {r['total_episodes']} | "
            f"{r['total_env_steps']} | {r['total_llm_calls']} | "
            f"{r['total_prompt_tokens']} / {r['total_completion_tokens']} | {r['total_seconds']:.0f} |"
        )
    return "\n".join(lines)


def category_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "env": r["env"],
            "env_label": env_label(r),
            "backbone": r["backbone"],
            "method": method_label(r["method"], r.get("library_source")),
            "category": category,
            "success_rate": s["success_rate"],
            "progress": s["score_mean"],
            "reward": s["reward_mean"],
            "reward_low": s["reward_low"],
            "reward_high": s["reward_high"],
            "episodes": s["episodes"],
            "failed": s.get("failed", 0),
        }
        for r in records
        for category, s in r.get("by_category", {}).items()
    ]
    return pd.DataFrame(rows)


def swap_table(
    records: list[dict[str, Any]], swapped: list[dict[str, Any]], resamples: int = 1000
) -> pd.DataFrame:
    """Cells (source = whose MASA skills, user = who plays them): the paired reward change vs the user's own
    Base Skill run. The diagonal is each backbone's own MASA evaluation."""
    controls = _controls(records)
    cells = [r for r in records if r["method"] == "masa"] + swapped
    rows = []
    for r in cells:
        control = controls.get((r["env"], r["backbone"]))
        if control is None:
            raise ValueError(
                f"swap matrix: no base_skill evaluation of {r['backbone']} on {r['env']}; "
                "add base_skill to evaluation.methods"
            )
        diff = paired_difference(episode_rewards(r), episode_rewards(control), resamples)
        rows.append(
            {
                "env": r["env"],
                "env_label": env_label(r),
                "source": r.get("library_source", r["backbone"]),
                "user": r["backbone"],
                "reward": r["summary"]["reward_mean"],
                "base_reward": control["summary"]["reward_mean"],
                "diff": diff.mean,
                "diff_low": diff.low,
                "diff_high": diff.high,
                "pairs": diff.pairs,
                "excludes_zero": diff.excludes_zero,
            }
        )
    return pd.DataFrame(rows).sort_values(["env", "source", "user"]).reset_index(drop=True)


def swap_markdown(df: pd.DataFrame) -> str:
    parts = []
    for (_, label), sub in df.groupby(["env", "env_label"], sort=False):
        users = list(dict.fromkeys(sub["user"]))
        parts += [
            f"### {label}: reward change vs the user's Base Skill [95% paired CI]",
            "",
            "| MASA skills of \\ used by | " + " | ".join(users) + " |",
            "|---|" + "---|" * len(users),
        ]
        for source, rows in sub.groupby("source", sort=False):
            by_user = rows.set_index("user")
            cells = [
                _interval(
                    by_user.at[u, "diff"], by_user.at[u, "diff_low"], by_user.at[u, "diff_high"], sign="+"
                )
                if u in by_user.index
                else "—"
                for u in users
            ]
            parts.append(f"| {source} | " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


CONTRIBUTION_COLUMNS = ["env", "backbone", "group", "id", "title", "mean", "low", "high", "pairs", "verdict"]


def contribution_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Leave-one-skill-out results: ``mean`` = full library minus library without the skill (paired);
    the verdict says helps/hurts only when the interval excludes zero."""
    rows = []
    for record in records:
        for skill in record["skills"]:
            excludes = skill["pairs"] > 1 and (skill["low"] > 0 or skill["high"] < 0)
            verdict = ("helps" if skill["mean"] > 0 else "hurts") if excludes else "unclear"
            rows.append({"env": record["env"], "backbone": record["backbone"], **skill, "verdict": verdict})
    return pd.DataFrame(rows, columns=CONTRIBUTION_COLUMNS)


def contribution_markdown(df: pd.DataFrame) -> str:
    lines = [
        "| backbone | env | group | skill | contribution [95% CI, paired] | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in df.sort_values(["env", "backbone", "mean"], ascending=[True, True, False]).iterrows():
        lines.append(
            f"| {r['backbone']} | {r['env']} | {r['group']} | {r['title']} | "
            f"{_interval(r['mean'], r['low'], r['high'], sign='+')} | {r['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def write_report(
    evaluations: dict[str, list[str]],
    swaps: list[str],
    paths: ReportPaths,
    notes: dict[str, Any],
    resamples: int = 1000,
    contributions: list[str] = (),
    agreements: list[str] = (),
) -> pd.DataFrame:
    """``evaluations`` maps each eval record to the records that priced its library (``masa.rollout.cost``)."""
    records = {path: read_json(path) for path in evaluations}
    entries = [(records[p], *method_cost(records[p], prep)) for p, prep in evaluations.items()]
    df = method_table(entries, resamples)
    df.to_csv(paths.summary_csv, index=False)
    plots.plot_rewards(df, paths.reward_png)
    categories = category_table(list(records.values()))
    categories.to_csv(paths.categories_csv, index=False)
    plots.plot_categories(categories, paths.categories_png)
    swap_md = "Needs at least two backbones and the masa and base_skill methods.\n"
    swap = pd.DataFrame()
    if swaps:
        swap = swap_table(list(records.values()), [read_json(p) for p in swaps], resamples)
        plots.plot_swap(swap, paths.swap_png)
        swap_md = swap_markdown(swap)
    else:
        plots.plot_message(swap_md, paths.swap_png)
    swap.to_csv(paths.swap_csv, index=False)
    atomic_write_text(Path(paths.swap_md), swap_md)
    parts = [
        "# MASA results",
        "",
        "Held-out evaluation on instances disjoint from the search and profile instances (checked in code). "
        f"Reward = progress - {notes.get('noop_penalty')} x no-op rate. Intervals are 95% percentile "
        f"bootstrap intervals over episodes; changes vs Base Skill are paired over the same (task, seed) "
        f"pairs; seeds {notes.get('seeds')}. `detectable change` is the smallest true change vs Base Skill that "
        "these pairs would show at 95% (two-sided) four times in five: 2.80 x sd of the paired differences / "
        "sqrt(pairs), or the unpaired bound when every difference is equal; a change smaller than it is not "
        "evidence either way. Cost columns are totals: evaluation plus what built the "
        "library (search rollouts and teacher calls for MASA and its ablations, the teacher rewrite for the "
        "Adapter, training and inference for the Rewriter; the rewriter's training is shared by all "
        "backbones of an environment and counted in full in each of its rows). `played` counts every "
        "episode behind the row, at the cost it had when first played (the rollout cache may have served "
        "it); summary.csv splits eval_* and prep_*.",
        "",
    ]
    parts += external_notes(list(records.values()), notes.get("category_map", {}))
    for (_, label, backbone), sub in df.groupby(["env", "env_label", "backbone"], sort=False):
        parts += [f"## {backbone} on {label}", "", method_markdown(sub), ""]
    parts += ["## Swap matrix", "", swap_md]
    agreement = agreement_table([read_json(p) for p in agreements], list(records.values()))
    if paths.agreement_csv:
        agreement.to_csv(paths.agreement_csv, index=False)
    if not agreement.empty:
        parts += [
            "## Expert agreement vs held-out reward",
            "",
            "Agreement: the softmax mass the backbone's score policy puts, with the method's skill text, on "
            "the actions that keep an optimal completion at each decision of the expert's path through the "
            "held-out instances (docs/fitness.md). The searches rank candidates by episode reward on their "
            "own instances; agreement does not steer them. A positive rank correlation below, with an "
            "interval above 0, is what would justify letting it pre-rank proposals.",
            "",
            agreement_markdown(agreement, resamples),
        ]
    contribution = contribution_table([read_json(p) for p in contributions])
    contribution.to_csv(paths.contribution_csv, index=False)
    if not contribution.empty:
        parts += ["## Per-skill contribution", "", contribution_markdown(contribution)]
    parts += [f"![reward per method]({Path(paths.reward_png).name})", ""]
    atomic_write_text(Path(paths.summary_md), "\n".join(parts))
    return df


def external_notes(records: list[dict[str, Any]], category_map: dict[str, dict[str, str]]) -> list[str]:
    """Where each external library came from, and every category renamed on loading (skills.category_map),
    so that a reader knows which of a library's categories were played as which."""
    sources = sorted(
        {(r["library_source"], env_label(r), r["library_path"]) for r in records if r["method"] == EXTERNAL}
    )
    lines = [f"- External: {label} on {env}: `{path}`" for label, env, path in sources]
    lines += [
        f"- {env}: library category `{old}` played as `{new}` (skills.category_map)"
        for env, mapping in sorted(category_map.items())
        for old, new in sorted(mapping.items())
    ]
    if not lines:
        return []
    return ["Libraries from elsewhere are loaded, checked and capped like the base library:", "", *lines, ""]


def agreement_table(agreements: list[dict[str, Any]], records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (env, backbone, method): agreement with the expert on the scored held-out instances'
    decisions, beside the method's held-out reward on the episodes of those same instances."""
    evaluated = {(r["env"], r["backbone"], r["method"]): r for r in records if r["method"] != EXTERNAL}
    rows = []
    for a in agreements:
        scored = set(a["tasks"])
        for method, score in a["methods"].items():
            record = evaluated.get((a["env"], a["backbone"], method))
            rewards = [e["reward"] for e in record["episodes"] if e["task"] in scored] if record else []
            rows.append(
                {
                    "env": a["env"],
                    "env_label": env_label(record) if record else a["env"],
                    "backbone": a["backbone"],
                    "method": method_label(method),
                    "agreement": score["mass"],
                    "greedy_on_expert": score["top1"],
                    "decisions": score["states"],
                    "unexpressed": a["unexpressed"],
                    "reward": sum(rewards) / len(rewards) if rewards else float("nan"),
                    "reward_episodes": len(rewards),
                }
            )
    return pd.DataFrame(rows)


def agreement_markdown(df: pd.DataFrame, resamples: int = 1000) -> str:
    """The agreement table per environment and its rank correlation with held-out reward, over every
    backbone x method cell and within each backbone."""
    parts = []
    for (_, label), sub in df.groupby(["env", "env_label"], sort=False):
        lines = [
            f"### {label}",
            "",
            "| backbone | method | agreement | greedy on an expert action | held-out reward, same instances "
            "(episodes) |",
            "|---|---|---|---|---|",
        ]
        for _, r in sub.iterrows():
            lines.append(
                f"| {r['backbone']} | {r['method']} | {r['agreement']:.4f} | {r['greedy_on_expert']:.3f} | "
                f"{r['reward']:.3f} ({r['reward_episodes']}) |"
            )
        cells = sub.dropna(subset=["reward"])
        scopes = [("all backbones", cells)] + [(f"within {b}", c) for b, c in cells.groupby("backbone")]
        lines.append("")
        for scope, c in scopes:
            x, y = list(c["agreement"]), list(c["reward"])
            rho = spearman(x, y)
            low, high = spearman_interval(x, y, resamples)
            shown = "undefined (fewer than 3 cells, or one side constant)" if rho != rho else (
                f"{rho:+.2f} [{low:+.2f}, {high:+.2f}]"
            )  # fmt: skip
            lines.append(f"- Spearman(agreement, held-out reward), {scope}, {len(c)} cells: {shown}")
        first = sub.iloc[0]
        lines.append(
            f"- {first['decisions']} expert decisions per backbone; {first['unexpressed']} more that the "
            "candidate list could not express were left out"
        )
        parts += [*lines, ""]
    return "\n".join(parts)


def plot_search_record(record_path: str, title: str, out_path: str) -> None:
    """Figure of one search record: a Stage 1 ``candidates.json`` (curve) or a Stage 2 ``tree.json`` (tree)."""
    record = read_json(record_path)
    if record["candidates"] and record["candidates"][0].get("stage") == "task":
        plots.plot_tree(record["candidates"], record["state"].get("best", ""), title, out_path)
    else:
        plots.plot_hillclimb(record["candidates"], title, out_path)
