"""The record every search stage keeps for each evaluated skill set, and its (de)serialisation.

The same record feeds checkpoints (resume), the stage outputs and the Parquet trajectory export.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from masa.io import CorruptFileError, read_checked_json, write_checked_json
from masa.rollout.agent import EpisodeResult
from masa.rollout.evaluator import Evaluation, Summary, episode_from_dict, episode_to_dict
from masa.rollout.settings import digest
from masa.skills.library import SkillLibrary

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    node_id: str
    parent_id: str  # "" for the initial skill set
    iteration: int
    stage: str  # "general" (Stage 1) or "task" (Stage 2)
    category: str  # "" for Stage 1
    library: SkillLibrary  # the full library the candidate was evaluated with
    summary: Summary
    episodes: list[EpisodeResult]
    teacher: str  # "initial", "llm" or "edit:<operator>"
    accepted: bool = False
    depth: int = 0
    visits: int = 0  # UCB only: evaluations below and at this node
    value_sum: float = 0.0  # UCB only: summed rewards below and at this node
    children: list[str] = field(default_factory=list)

    @property
    def reward(self) -> float:
        return self.summary.reward_mean

    @property
    def played(self) -> bool:
        """Whether any of its episodes was played: a candidate whose every episode failed has no reward."""
        return self.summary.episodes > self.summary.failed

    @property
    def evaluation(self) -> Evaluation:
        return Evaluation(self.summary, self.episodes)

    def to_dict(self, with_episodes: bool = True) -> dict[str, Any]:
        data = asdict(self)
        data["library"] = self.library.to_dict()
        data["episodes"] = [episode_to_dict(e) for e in self.episodes] if with_episodes else []
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        data = dict(data)
        data["library"] = SkillLibrary.from_dict(data["library"], f"candidate {data.get('node_id')}")
        data["summary"] = Summary(**data["summary"])
        data["episodes"] = [episode_from_dict(e) for e in data["episodes"]]
        return cls(**data)


def save_candidates(path: str | Path, candidates: list[Candidate], state: dict[str, Any]) -> None:
    """A checkpoint or stage record: every candidate plus the loop's own state."""
    write_checked_json(path, {"state": state, "candidates": [c.to_dict() for c in candidates]})


def load_candidates(path: str | Path) -> tuple[list[Candidate], dict[str, Any]]:
    """A stage record or checkpoint; a damaged one is refused with how to have it rebuilt."""
    try:
        data = read_checked_json(path)
    except CorruptFileError as err:
        raise CorruptFileError(f"{err}; delete it and re-run so the rule that writes it rebuilds it") from err
    return [Candidate.from_dict(c) for c in data["candidates"]], data["state"]


@dataclass(frozen=True)
class Checkpoint:
    """Where a search saves its progress, and the fingerprint of the inputs and settings it searches with."""

    path: Path
    fingerprint: str


def search_fingerprint(*inputs: Any) -> str:
    """The hash of everything a search's result depends on (libraries, card, suite, settings, seed)."""
    return digest(inputs)


def loop_settings(config: Any) -> dict[str, Any]:
    """A search config without ``iterations``: that only bounds the loop, and a longer run of the same
    search goes through the same first iterations, so it may resume a shorter one's checkpoint."""
    return {k: v for k, v in asdict(config).items() if k != "iterations"}


def search_checkpoint(path: Path | None, config: Any, seed: int, *inputs: Any) -> Checkpoint | None:
    """The checkpoint of a search at ``path`` (None: keep none), fingerprinted by its ``inputs``, its loop
    settings and its seed: the one way both searches name what a resumable checkpoint must match."""
    if path is None:
        return None
    return Checkpoint(path, search_fingerprint(*inputs, loop_settings(config), seed))
