"""Trajectory export: every evaluated candidate of every search, with its scores, as one Parquet dataset.

The dataset is hive-partitioned, one file per backbone and environment
(``results/trajectories/backbone=<b>/env=<e>/part-0.parquet``), so Snakemake caches each backbone's export
and a reader can take one backbone or environment alone; ``pd.read_parquet("results/trajectories")`` reads
all of it, with ``backbone`` and ``env`` restored from the folder names.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from masa.io import read_parquet, write_parquet
from masa.search.candidates import Candidate, load_candidates

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


PARTITION_COLUMNS = ("backbone", "env")  # in the folder names, not inside the files


def partition_path(root: str | Path, backbone: str, env: str) -> Path:
    """Where one backbone's export for one environment lives in the dataset."""
    return Path(root) / f"backbone={backbone}" / f"env={env}" / "part-0.parquet"


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
    """Write one partition file (``out_path``, see ``partition_path``); returns all its columns."""
    rows = []
    for path in candidate_files:
        rows += candidate_rows(backbone, env, load_candidates(path)[0])
    frame = pd.DataFrame(rows, columns=list(TRAJECTORY_COLUMNS))
    # The partition columns stay out of the file, or a dataset read would see them twice.
    write_parquet(
        out_path, pa.Table.from_pandas(frame.drop(columns=list(PARTITION_COLUMNS)), preserve_index=False)
    )
    return frame


def read_trajectories(path: str | Path) -> pd.DataFrame:
    """The trajectory dataset (a folder), or one partition file, with every column of ``TRAJECTORY_COLUMNS``.

    Partition values come from the ``key=value`` folder names, as plain strings.
    """
    path = Path(path)
    if path.is_dir():
        frame = pq.read_table(path, partitioning="hive").to_pandas()
    else:
        frame = read_parquet(path).to_pandas()  # footer and page checksums verified
        for part in path.parent.parts:
            key, sep, value = part.partition("=")
            if sep and key in PARTITION_COLUMNS:
                frame[key] = value
    missing = [c for c in PARTITION_COLUMNS if c not in frame]
    if missing:
        raise ValueError(
            f"{path}: no {missing} column or folder; expected .../backbone=<b>/env=<e>/part-0.parquet"
        )
    for column in PARTITION_COLUMNS:
        frame[column] = frame[column].astype(str)
    return frame[list(TRAJECTORY_COLUMNS)]
