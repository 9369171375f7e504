"""The lifecycle table: every skill's contribution and decision per backbone, backbones side by side.

One row per environment x group x skill id, one block of columns per backbone, so a reader sees the same
skill retained for one backbone and retired for another: the per-backbone view is what makes the lifecycle
model-aware. Ids are the library's; a backbone's search may have rewritten the text under an id, so each
backbone's title is kept in the CSV. Below the table, what each lifecycle cost (its record.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from masa.io import atomic_write_text, read_json
from masa.rollout.cost import record_cost

FIELDS = ("title", "contribution", "low", "high", "exposure", "decision", "rule")
KEY = ["env", "group", "skill_id"]


def decision_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One long row per decision of a ``decisions.json``; an added or unjudged skill has no contribution."""
    rows = []
    for d in record["decisions"]:
        measured = d["evidence"].get("contribution") or {}
        rows.append(
            {
                "env": record["env"],
                "backbone": record["backbone"],
                "group": d["group"],
                "skill_id": d["skill_id"],
                "title": d["title"],
                "contribution": measured.get("mean"),
                "low": measured.get("low"),
                "high": measured.get("high"),
                "exposure": measured.get("exposure"),
                "decision": d["action"],
                "rule": d["rule"],
            }
        )
    return rows


def lifecycle_table(records: list[dict[str, Any]], backbones: list[str]) -> pd.DataFrame:
    """The wide table: KEY, then ``<backbone>:<field>`` for each backbone in ``backbones`` order (empty where
    a backbone's library has no such skill)."""
    long = pd.DataFrame(
        [r for record in records for r in decision_rows(record)], columns=[*KEY, "backbone", *FIELDS]
    )
    wide = long.drop_duplicates([*KEY]).loc[:, KEY].reset_index(drop=True)
    for backbone in backbones:
        part = long[long["backbone"] == backbone].drop(columns="backbone")
        part = part.rename(columns={f: f"{backbone}:{f}" for f in FIELDS})
        wide = wide.merge(part, on=KEY, how="left")
    return wide


def _cell(row: pd.Series, backbone: str) -> str:
    decision = row[f"{backbone}:decision"]
    if pd.isna(decision):
        return "—"
    if pd.isna(row[f"{backbone}:contribution"]):
        return f"**{decision}**"
    mean, low, high = (row[f"{backbone}:{f}"] for f in ("contribution", "low", "high"))
    return f"**{decision}** {mean:+.3f} [{low:+.3f}, {high:+.3f}], n={int(row[f'{backbone}:exposure'])}"


def lifecycle_markdown(df: pd.DataFrame, backbones: list[str], costs: list[dict[str, Any]]) -> str:
    parts = [
        "# Skill lifecycle",
        "",
        "Contribution = search-instance reward with the skill - without it, paired over the n episodes whose "
        "prompt it reached, with its 95% interval; the decision and its rule per backbone "
        "(masa.search.lifecycle). Titles are the first backbone's; the CSV holds each backbone's and the rules.",
        "",
    ]
    for env, sub in df.groupby("env", sort=False):
        parts += [f"## {env}", "", "| group | skill | " + " | ".join(backbones) + " |"]
        parts.append("|---|---|" + "---|" * len(backbones))
        for _, row in sub.iterrows():
            title = next((row[f"{b}:title"] for b in backbones if isinstance(row[f"{b}:title"], str)), "")
            cells = " | ".join(_cell(row, b) for b in backbones)
            parts.append(f"| {row['group']} | {row['skill_id']}: {title} | {cells} |")
        parts.append("")
    parts += [
        "## Cost",
        "",
        "| backbone | env | retired | added | episodes | env steps | LLM calls | tokens | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in costs:
        parts.append(
            f"| {c['backbone']} | {c['env']} | {c['retired']} | {c['added']} | {c['episodes']} | {c['env_steps']} "
            f"| {c['llm_calls']} | {c['tokens']} | {c['seconds']:.0f} |"
        )
    return "\n".join(parts) + "\n"


def write_lifecycle_report(
    decisions: list[str], records: list[str], backbones: list[str], csv_path: str, md_path: str
) -> pd.DataFrame:
    """``decisions``/``records``: each run_lifecycle job's decisions.json and record.json, in the same order."""
    loaded = [read_json(p) for p in decisions]
    table = lifecycle_table(loaded, backbones)
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(csv_path), table.to_csv(index=False))
    costs = []
    for record, path in zip(loaded, records, strict=True):
        actions = [d["action"] for d in record["decisions"]]
        cost = record_cost(path).as_dict()
        costs.append(
            {
                "backbone": record["backbone"],
                "env": record["env"],
                "retired": actions.count("retire"),
                "added": actions.count("add"),
                **cost,
            }
        )
    atomic_write_text(Path(md_path), lifecycle_markdown(table, backbones, costs))
    return table
