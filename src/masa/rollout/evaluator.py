"""Scoring a skill library: play it on a fixed list of task instances, summarise with intervals.

Every evaluation of every stage goes through ``Evaluator``, so the same (library, instance, seed) is played
once (the rollout cache) and candidates are always compared on the same instances (common random numbers).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import fmean

from masa.envs.base import Environment, TaskInstance
from masa.io import CorruptFileError, read_checked_json, write_checked_json
from masa.rollout.agent import Agent, EpisodeResult, Step
from masa.rollout.engine import Engine, EpisodeJob, environment_pool
from masa.rollout.settings import EpisodeSettings
from masa.skills.library import SkillLibrary
from masa.skills.retrieval import TopK, retrieve
from masa.stats import bootstrap_interval

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    reward_mean: float
    reward_low: float
    reward_high: float
    success_rate: float
    score_mean: float
    noop_rate: float
    episodes: int
    steps: int
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cache_hits: int
    failed: int = 0  # episodes the environment could not play (see masa.rollout.engine.Engine.play)

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class Evaluation:
    summary: Summary
    episodes: list[EpisodeResult]

    @property
    def failures(self) -> list[EpisodeResult]:
        return [e for e in self.episodes if not e.won]


def summarise(episodes: list[EpisodeResult], resamples: int = 1000, seed: int = 0) -> Summary:
    """Scores over the played episodes only: a failed episode (the simulator died twice) is counted in
    ``failed``, never as a reward of 0, so a failure cannot read as a score."""
    played = [e for e in episodes if not e.error]
    rewards = [e.reward for e in played]
    low, high = bootstrap_interval(rewards, resamples, seed)
    steps = sum(e.steps for e in played)
    fresh = [e for e in episodes if not e.cached]
    return Summary(
        reward_mean=fmean(rewards) if rewards else 0.0,
        reward_low=low,
        reward_high=high,
        success_rate=fmean(e.won for e in played) if played else 0.0,
        score_mean=fmean(e.score for e in played) if played else 0.0,
        noop_rate=(sum(e.no_op_steps for e in played) / steps) if steps else 0.0,
        episodes=len(episodes),
        steps=sum(e.steps for e in fresh),
        llm_calls=sum(e.llm_calls for e in fresh),
        prompt_tokens=sum(e.prompt_tokens for e in fresh),
        completion_tokens=sum(e.completion_tokens for e in fresh),
        seconds=sum(e.seconds for e in fresh),
        cache_hits=len(episodes) - len(fresh),
        failed=sum(bool(e.error) for e in episodes),
    )


def episode_to_dict(episode: EpisodeResult) -> dict:
    return asdict(episode)


def episode_from_dict(data: dict) -> EpisodeResult:
    data = dict(data)
    data["trajectory"] = [Step(**s) for s in data.get("trajectory", [])]
    return EpisodeResult(**data)


@dataclass
class RolloutCache:
    """Episodes on disk, one JSON file per key; a repeated key costs no LLM call.

    The key is ``EpisodeSettings.episode_key``: every setting of the model (its weights' location and hash),
    agent and environment (its simulator's version), the reward weight, the instance, the exact skill text
    and the seed.
    """

    root: Path | None
    hits: int = 0
    misses: int = 0

    def path(self, key: str) -> Path | None:
        return None if self.root is None else self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> EpisodeResult | None:
        path = self.path(key)
        if path is None or not path.is_file():
            return None
        try:
            episode = episode_from_dict(read_checked_json(path))
        except (CorruptFileError, TypeError) as err:  # a damaged entry is recomputed, never used
            log.warning("ignoring unreadable cache entry %s: %s", path, err)
            return None
        episode.cached = True
        self.hits += 1
        return episode

    def put(self, key: str, episode: EpisodeResult) -> None:
        self.misses += 1
        path = self.path(key)
        if path is not None and not episode.error:  # a failed episode is played again by the next run
            write_checked_json(path, episode_to_dict(episode))


@dataclass
class Evaluator:
    """Plays libraries for one backbone on one environment, under ``settings`` (which key its episodes)."""

    agent: Agent
    env: Environment
    settings: EpisodeSettings
    retrieval: str = "category"  # "category": general + own category's task skills + mistakes; "all":
    # everything; "topk": the top ``topk`` of each section by BM25 to the category (masa.skills.retrieval)
    topk: TopK | None = None
    cache: RolloutCache = field(default_factory=lambda: RolloutCache(None))
    resamples: int = 1000
    progress: bool = True
    width: int = 1  # episodes played side by side by the batched engine (environments in the pool)
    _pool: list[Environment] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.agent.config != self.settings.agent:  # the agent that plays must be the one that is keyed
            raise ValueError(f"agent {self.agent.config} does not match its settings {self.settings.agent}")

    @property
    def noop_penalty(self) -> float:
        return self.settings.noop_penalty

    def pool(self) -> list[Environment]:
        """The engine's environments, started once and reused by every evaluation of the job."""
        if not self._pool:
            self._pool = environment_pool(self.env, self.width)
        return self._pool

    def close(self) -> None:
        """Close the pool's copies (``env`` itself belongs to the caller)."""
        for env in self._pool[1:]:
            env.close()
        self._pool = []

    def skills_text(self, library: SkillLibrary | None, category: str) -> str:
        if library is None:
            return ""
        if self.retrieval == "topk":
            return retrieve(library, category, self.topk or TopK.default()).render(category)
        return library.render(None if self.retrieval == "all" else category)

    def episode_key(self, task: TaskInstance, skills_text: str, seed: int) -> str:
        return self.settings.episode_key(task, skills_text, seed)

    def run(
        self,
        library: SkillLibrary | None,
        tasks: list[TaskInstance],
        seeds: tuple[int, ...] = (0,),
        label: str = "",
    ) -> Evaluation:
        """Every (seed, task) episode of ``library``: from the cache when played before, else played by the
        batched engine. Episodes come back in (seed, task) order whatever order they finish in."""
        slots: list[EpisodeResult | None] = []
        jobs: list[EpisodeJob] = []
        keys: list[str] = []
        where: list[list[int]] = []  # the slots each job fills (a repeated key is played once)
        for seed in seeds:
            for task in tasks:
                text = self.skills_text(library, task.category)
                key = self.episode_key(task, text, seed)
                slots.append(None if key in keys else self.cache.get(key))
                if key in keys:
                    where[keys.index(key)].append(len(slots) - 1)
                elif slots[-1] is None:
                    jobs.append(EpisodeJob(task, text, seed))
                    keys.append(key)
                    where.append([len(slots) - 1])
        progress = Progress(label, len(slots), [e for e in slots if e is not None], self.progress)

        def finished(index: int, episode: EpisodeResult) -> None:
            self.cache.put(keys[index], episode)
            first, *repeats = where[index]
            slots[first] = episode
            progress.update(episode)
            for slot in repeats:  # served as the cache would serve it
                slots[slot] = replace(episode, cached=True)
                self.cache.hits += 1
                progress.update(slots[slot])

        if jobs:
            Engine(self.agent, self.pool(), self.noop_penalty).play(jobs, finished)
        episodes = [e for e in slots if e is not None]
        return Evaluation(summarise(episodes, self.resamples), episodes)


@dataclass
class Progress:
    """Log lines for long stages: episodes done / total and success so far."""

    label: str
    total: int
    done: list[EpisodeResult]
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.enabled and self.done:
            won = sum(e.won for e in self.done)
            log.info("%s: %d/%d episodes from the cache, %d won", self.label, len(self.done), self.total, won)

    def update(self, episode: EpisodeResult) -> None:
        self.done.append(episode)
        if self.enabled:
            log.info(
                "%s episode %d/%d %s: score %.2f reward %.3f | success so far %d/%d",
                self.label,
                len(self.done),
                self.total,
                episode.task,
                episode.score,
                episode.reward,
                sum(e.won for e in self.done),
                len(self.done),
            )
