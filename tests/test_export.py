"""Trajectory export: one hive-partitioned Parquet dataset, one file per backbone and environment."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from masa.rollout.evaluator import Summary
from masa.search.candidates import Candidate, save_candidates
from masa.skills.library import Skill, SkillLibrary
from masa.stages.export import TRAJECTORY_COLUMNS, export_trajectories, partition_path, read_trajectories


def candidate(node: str, parent: str, reward: float) -> Candidate:
    summary = Summary(reward, reward - 0.1, reward + 0.1, reward, reward, 0.0, 4, 20, 20, 900, 80, 1.5, 0)
    library = SkillLibrary(general_skills=[Skill(node, "Title", f"Principle of {node}", "always")])
    return Candidate(
        node, parent, int(node[-1]), "general", "", library, summary, [], "llm" if parent else "initial"
    )


def export_all(root: Path, tmp_path: Path) -> dict[tuple[str, str], pd.DataFrame]:
    frames = {}
    for backbone in ("smol", "gemma"):
        for env in ("sciworld", "alfworld"):
            record = tmp_path / f"{backbone}-{env}.json"
            save_candidates(record, [candidate("n0", "", 0.2), candidate("n1", "n0", 0.4)], {})
            out = partition_path(root, backbone, env)
            frames[(backbone, env)] = export_trajectories(backbone, env, [str(record)], str(out))
    return frames


def test_the_dataset_reads_whole_or_one_partition_at_a_time(tmp_path: Path) -> None:
    root = tmp_path / "trajectories"
    frames = export_all(root, tmp_path)
    assert (root / "backbone=smol" / "env=alfworld" / "part-0.parquet").is_file()

    whole = pd.read_parquet(root)  # what a user does: partition columns restored from the folders
    assert len(whole) == 8 and set(whole["backbone"].astype(str)) == {"smol", "gemma"}
    assert set(whole.columns) == set(TRAJECTORY_COLUMNS)

    smol = pd.read_parquet(root / "backbone=smol")
    assert set(smol["env"].astype(str)) == {"sciworld", "alfworld"} and len(smol) == 4
    alfworld = pd.read_parquet(root, filters=[("env", "=", "alfworld")])
    assert set(alfworld["backbone"].astype(str)) == {"smol", "gemma"} and len(alfworld) == 4

    one = read_trajectories(partition_path(root, "gemma", "sciworld"))
    assert list(one.columns) == list(TRAJECTORY_COLUMNS)
    pd.testing.assert_frame_equal(one, frames[("gemma", "sciworld")])
    every = read_trajectories(root)
    assert list(every.columns) == list(TRAJECTORY_COLUMNS)
    assert (
        not isinstance(every["backbone"].dtype, pd.CategoricalDtype)
        and every["backbone"].map(type).eq(str).all()
    )
    assert list(every.sort_values(["backbone", "env", "node_id"])["reward_mean"]) == [0.2, 0.4] * 4


def test_a_file_outside_the_layout_is_refused_with_the_expected_layout(tmp_path: Path) -> None:
    stray = tmp_path / "trajectories.parquet"
    pd.DataFrame({"node_id": ["n0"]}).to_parquet(stray)
    with pytest.raises(ValueError, match="backbone=<b>/env=<e>"):
        read_trajectories(stray)
