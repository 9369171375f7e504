"""The single-call ReAct-style agent of method.md: one prompt, one action per step.

Two action policies: ``generate`` (the model writes ``<action>...</action>``, parsed as method.md says) and
``score`` (the model ranks the candidate actions by mean token log-probability; tiny models echo the
observation when asked to generate, models.md).
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
    history: int = 2  # (observation, action) pairs shown, method.md
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
    """R = SR - lambda * NHR (method.md), SR being the progress in [0, 1]."""
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
        adjusted = [
            s - self.config.repeat_penalty * taken.get(c, 0) for s, c in zip(scores, candidates, strict=True)
        ]
        if self.config.temperature > 0:
            top = max(adjusted)
            weights = [math.exp((s - top) / self.config.temperature) for s in adjusted]
            return rng.choices(candidates, weights=weights, k=1)[0]
        return candidates[max(range(len(candidates)), key=adjusted.__getitem__)]

    def play(
        self, env: Environment, task: TaskInstance, skills_text: str, seed: int, noop_penalty: float
    ) -> EpisodeResult:
        start = time.perf_counter()
        before = self.llm.usage.as_dict()
        rng = random.Random(f"{task.key}/{seed}")
        observation = env.reset(task)
        history: list[tuple[str, str]] = []
        taken: dict[str, int] = {}
        trajectory: list[Step] = []
        score, won = 0.0, False
        for index in range(env.max_steps):
            conversation = build_conversation(
                env.name,
                observation.task_description,
                skills_text,
                index,
                env.max_steps,
                history,
                observation,
                self.config,
            )
            action = self.choose(conversation, observation.candidates, taken, rng)
            if action is None or action not in observation.candidates:
                # An unparsable or inadmissible action does nothing in the world but costs a step (NHR).
                trajectory.append(Step(action or "", "Invalid action.", score, True, False))
                history.append((observation.text, action or "(none)"))
                continue
            taken[action] = taken.get(action, 0) + 1
            outcome = env.step(action)
            history.append((observation.text, action))
            observation = outcome.observation
            score, won = outcome.score, outcome.won
            trajectory.append(Step(action, observation.text, score, outcome.no_op, True))
            if outcome.done:
                break
        after = self.llm.usage.as_dict()
        no_ops = sum(s.no_op for s in trajectory)
        return EpisodeResult(
            task=task.key,
            category=task.category,
            won=won,
            score=score,
            steps=len(trajectory),
            no_op_steps=no_ops,
            reward=episode_reward(score, no_ops, len(trajectory), noop_penalty),
            llm_calls=after["calls"] - before["calls"],
            prompt_tokens=after["prompt_tokens"] - before["prompt_tokens"],
            completion_tokens=after["completion_tokens"] - before["completion_tokens"],
            seconds=time.perf_counter() - start,
            trajectory=trajectory,
        )
