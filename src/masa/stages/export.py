"""Trajectory export: every evaluated candidate of every search, with its scores, as Parquet."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from masa.candidates import Candidate, load_candidates
from masa.io import write_parquet

TRAJECTORY_COLUMNS = (
    "backbone",
    "env",
    "stage",
    "category",
    "iteration",
    "node_id",
    "parent_id",
    "depth",
    "library_json",
    "reward_mean",
    "reward_low",
    "reward_high",
    "success_rate",
    "noop_rate",
    "episodes",
    "env_steps",
    "llm_calls",
    "prompt_tokens",
    "completion_tokens",
    "teacher",
    "accepted",
)


def candidate_rows(backbone: str, env: str, candidates: list[Candidate]) -> list[dict]:
    return [
        {
            "backbone": backbone,
            "env": env,
            "stage": c.stage,
            "category": c.category,
            "iteration": c.iteration,
            "node_id": c.node_id,
            "parent_id": c.parent_id,
            "depth": c.depth,
            "library_json": c.library.to_json(),
            "reward_mean": c.summary.reward_mean,
            "reward_low": c.summary.reward_low,
            "reward_high": c.summary.reward_high,
            "success_rate": c.summary.success_rate,
            "noop_rate": c.summary.noop_rate,
            "episodes": c.summary.episodes,
            "env_steps": c.summary.steps,
            "llm_calls": c.summary.llm_calls,
            "prompt_tokens": c.summary.prompt_tokens,
            "completion_tokens": c.summary.completion_tokens,
            "teacher": c.teacher,
            "accepted": c.accepted,
        }
        for c in candidates
    ]


def export_trajectories(backbone: str, env: str, candidate_files: list[str], out_path: str) -> pd.DataFrame:
    rows = []
    for path in candidate_files:
        rows += candidate_rows(backbone, env, load_candidates(path)[0])
    frame = pd.DataFrame(rows, columns=list(TRAJECTORY_COLUMNS))
    write_parquet(out_path, pa.Table.from_pandas(frame, preserve_index=False))
    return frame
