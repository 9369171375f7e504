"""The single-call ReAct-style agent of docs/method.md: one prompt, one action per step.

Two action policies: ``generate`` (the model writes ``<action>...</action>``, parsed as docs/method.md says) and
``score`` (the model ranks the candidate actions by mean token log-probability; tiny models echo the
observation when asked to generate, docs/models.md).
"""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass, field

from masa.envs.base import Environment, Observation, TaskInstance
from masa.llm.base import LLM, Message

ACTION_TAG = re.compile(r"<action>(.*?)</action>", re.DOTALL)
ROLE = "You are an expert agent acting in a text-based {env} environment. You complete the task step by step."
POLICIES = ("generate", "score")


@dataclass(frozen=True)
class AgentConfig:
    policy: str = "score"
    history: int = 2  # (observation, action) pairs shown, docs/method.md
    temperature: float = 0.0
    max_new_tokens: int = 48
    repeat_penalty: float = (
        0.0  # subtracted from an action's score per earlier use in the episode (score only)
    )
    max_observation_chars: int = 600

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"agent policy must be one of {POLICIES}, got {self.policy!r}")


@dataclass
class Step:
    action: str
    observation: str
    score: float
    no_op: bool
    valid: bool


@dataclass
class EpisodeResult:
    task: str  # TaskInstance.key
    category: str
    won: bool
    score: float  # final progress in [0, 1]
    steps: int
    no_op_steps: int
    reward: float  # score - lambda * no-op rate
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    trajectory: list[Step] = field(default_factory=list)
    cached: bool = False
    error: str = ""  # why the episode could not be played (the environment failed twice); "" if it was

    @property
    def no_op_rate(self) -> float:
        return self.no_op_steps / self.steps if self.steps else 0.0


def episode_reward(score: float, no_op_steps: int, steps: int, noop_penalty: float) -> float:
    """R = SR - lambda * NHR (docs/method.md), SR being the progress in [0, 1]."""
    return score - noop_penalty * (no_op_steps / steps if steps else 0.0)


def parse_action(reply: str) -> str | None:
    """Lowercased text between the first ``<action>`` tag pair, or None (an invalid step)."""
    match = ACTION_TAG.search(reply)
    if not match:
        return None
    action = " ".join(match.group(1).lower().split())
    return action or None


def truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_conversation(
    env_name: str,
    task_description: str,
    skills_text: str,
    step_index: int,
    max_steps: int,
    history: list[tuple[str, str]],
    observation: Observation,
    config: AgentConfig,
) -> list[Message]:
    """The agent prompt. Skill text is placed verbatim inside its section and nowhere else."""
    lines = [f"Your task is to: {task_description}", ""]
    if skills_text:
        lines += ["## Retrieved Relevant Experience", skills_text, ""]
    lines.append(f"Step {step_index + 1} of {max_steps}.")
    if history:
        lines.append("Recent history:")
        for obs, act in history[-config.history :]:
            lines += [f"Observation: {truncate(obs, config.max_observation_chars)}", f"Action: {act}"]
    lines += [
        f"Current observation: {truncate(observation.text, config.max_observation_chars)}",
        "Admissible actions: " + ", ".join(observation.candidates),
    ]
    if config.policy == "generate":
        lines.append("Think briefly, then put exactly one admissible action in <action>...</action>.")
    else:
        lines.append("Reply with exactly one admissible action in <action>...</action>.")
    return [Message("system", ROLE.format(env=env_name)), Message("user", "\n".join(lines))]


def pick_action(
    scores: list[float],
    candidates: tuple[str, ...],
    taken: dict[str, int],
    config: AgentConfig,
    rng: random.Random,
) -> str:
    """The score policy's choice: the best candidate after the repeat penalty, or a softmax sample."""
    adjusted = penalised(scores, candidates, taken, config)
    if config.temperature > 0:
        top = max(adjusted)
        weights = [math.exp((s - top) / config.temperature) for s in adjusted]
        return rng.choices(candidates, weights=weights, k=1)[0]
    return greedy(adjusted, candidates)


def penalised(
    scores: list[float], candidates: tuple[str, ...], taken: dict[str, int], config: AgentConfig
) -> list[float]:
    """The candidates' scores minus the repeat penalty for each earlier use in the episode."""
    return [s - config.repeat_penalty * taken.get(c, 0) for s, c in zip(scores, candidates, strict=True)]


def greedy(adjusted: list[float], candidates: tuple[str, ...]) -> str:
    """The best-scored candidate (the first on a tie)."""
    return candidates[max(range(len(candidates)), key=adjusted.__getitem__)]


@dataclass
class EpisodeRun:
    """One episode in progress: the prompt for its next step, and what an action does to it.

    ``Agent.play`` drives one run to its end; the batched engine drives many in lockstep. Both go through
    this class, so an episode is the same whichever plays it.
    """

    env: Environment
    task: TaskInstance
    skills_text: str
    seed: int
    noop_penalty: float
    config: AgentConfig
    rng: random.Random = field(init=False)
    observation: Observation = field(init=False)
    history: list[tuple[str, str]] = field(default_factory=list)
    taken: dict[str, int] = field(default_factory=dict)
    trajectory: list[Step] = field(default_factory=list)
    score: float = 0.0
    won: bool = False
    done: bool = False
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed: float = 0.0  # seconds spent on this episode (its share of each lockstep step in the engine)
    fault: str = ""  # the simulator failure that ended this run early (the engine replays it)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.task.key}/{self.seed}")
        self.observation = self.env.reset(self.task)
        self.done = self.env.max_steps <= 0

    @property
    def session(self) -> str:
        return f"{self.task.key}/{self.seed}/{id(self)}"

    def conversation(self) -> list[Message]:
        return build_conversation(
            self.env.name,
            self.observation.task_description,
            self.skills_text,
            len(self.trajectory),
            self.env.max_steps,
            self.history,
            self.observation,
            self.config,
        )

    def apply(self, action: str | None) -> None:
        """Take ``action`` (None: the model gave no parsable action) and move to the next step."""
        observation = self.observation
        if action is None or action not in observation.candidates:
            # An unparsable or inadmissible action does nothing in the world but costs a step (NHR).
            self.trajectory.append(Step(action or "", "Invalid action.", self.score, True, False))
            self.history.append((observation.text, action or "(none)"))
        else:
            self.taken[action] = self.taken.get(action, 0) + 1
            outcome = self.env.step(action)
            self.history.append((observation.text, action))
            self.observation = outcome.observation
            self.score, self.won = outcome.score, outcome.won
            self.trajectory.append(Step(action, self.observation.text, self.score, outcome.no_op, True))
            if outcome.done:
                self.done = True
        if len(self.trajectory) >= self.env.max_steps:
            self.done = True

    def result(self) -> EpisodeResult:
        no_ops = sum(s.no_op for s in self.trajectory)
        return EpisodeResult(
            task=self.task.key,
            category=self.task.category,
            won=self.won,
            score=self.score,
            steps=len(self.trajectory),
            no_op_steps=no_ops,
            reward=episode_reward(self.score, no_ops, len(self.trajectory), self.noop_penalty),
            llm_calls=self.llm_calls,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            seconds=self.elapsed,
            trajectory=self.trajectory,
        )


@dataclass
class Agent:
    """Plays episodes with one backbone. Stateless between episodes."""

    llm: LLM
    config: AgentConfig

    def choose(
        self,
        conversation: list[Message],
        candidates: tuple[str, ...],
        taken: dict[str, int],
        rng: random.Random,
    ) -> str | None:
        if self.config.policy == "generate":
            reply = self.llm.generate(
                [conversation], self.config.max_new_tokens, self.config.temperature, rng.randrange(2**31)
            )[0]
            return parse_action(reply.text)
        scores = self.llm.score(conversation, list(candidates), prefill="<action>")
        return pick_action(scores, candidates, taken, self.config, rng)

    def play(
        self, env: Environment, task: TaskInstance, skills_text: str, seed: int, noop_penalty: float
    ) -> EpisodeResult:
        """One episode, one model call per step (the reference the batched engine must match)."""
        start = time.perf_counter()
        run = EpisodeRun(env, task, skills_text, seed, noop_penalty, self.config)
        while not run.done:
            before = self.llm.usage.as_dict()
            run.apply(self.choose(run.conversation(), run.observation.candidates, run.taken, run.rng))
            after = self.llm.usage.as_dict()
            run.llm_calls += after["calls"] - before["calls"]
            run.prompt_tokens += after["prompt_tokens"] - before["prompt_tokens"]
            run.completion_tokens += after["completion_tokens"] - before["completion_tokens"]
        run.elapsed = time.perf_counter() - start
        return run.result()
