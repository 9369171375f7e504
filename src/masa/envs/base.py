"""What the agent needs from a text environment, whichever simulator is behind it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


class EnvironmentFault(RuntimeError):
    """The simulator process died or stopped answering: ``restart()`` the environment and play again."""


@dataclass(frozen=True, order=True)
class TaskInstance:
    """One playable task: a category (task type) and the instance within it (a variation or a game)."""

    env: str
    category: str
    instance: str  # e.g. the ScienceWorld variation index as text, or a game file's stem
    split: str  # "train" | "dev" | "test" (the environment's own split)

    @property
    def key(self) -> str:
        return f"{self.env}/{self.category}/{self.split}/{self.instance}"


@dataclass(frozen=True)
class Observation:
    text: str
    task_description: str
    candidates: tuple[str, ...]  # actions the agent may choose from at this step (admissible or shortlisted)


@dataclass(frozen=True)
class StepOutcome:
    observation: Observation
    score: float  # progress in [0, 1] so far (ScienceWorld: max(score, 0) / 100; ALFWorld: won)
    done: bool
    won: bool
    no_op: bool  # the action changed nothing (docs/method.md's NHR numerator)


@dataclass(frozen=True)
class ExpertState:
    """One decision on an expert's path, as the agent would have met it had it acted like the expert.

    ``acceptable`` holds the candidates that keep an optimal completion (the expert's own action and those
    equivalent to it: another safe focus, a shorter way to the room it is heading for), so an agreement
    score does not reward imitating one arbitrary route.
    """

    task: TaskInstance
    step: int  # decisions taken before this one (the prompt's step counter)
    history: tuple[tuple[str, str], ...]  # (observation, action) pairs before this state
    taken: tuple[tuple[str, int], ...]  # earlier uses of each action (the agent's repeat penalty)
    observation: Observation
    expert_action: str
    acceptable: frozenset[str]


class Environment(ABC):
    """A text environment serving task instances of named categories.

    Implementations must be deterministic for a given (instance, action sequence), so that two skill sets
    scored on the same instances are compared on common random numbers.
    """

    name: str
    max_steps: int
    # Where results come from, for every table that shows them ("ALFWorld (official games)", ...): two
    # sources of one benchmark must never be read as the same thing.
    label: str = ""
    # Whether two instances may be reset and stepped from two threads at once: true when each runs its
    # simulator in a process of its own (a ScienceWorld JVM), so the engine steps a pool side by side.
    steps_concurrently: bool = False

    @property
    def display_name(self) -> str:
        return self.label or self.name

    @property
    def faults(self) -> tuple[type[BaseException], ...]:
        """Exceptions that mean the simulator itself failed (not the agent): the episode is retried once on
        a restarted environment. Environments add their bridge's errors (py4j for ScienceWorld)."""
        return (EnvironmentFault,)

    def restart(self) -> None:
        """Drop the (dead) simulator so that the next ``reset`` starts a fresh one."""
        self.close()

    @abstractmethod
    def categories(self) -> list[str]:
        """Task categories this environment offers (the UCB search runs one tree per category)."""

    @abstractmethod
    def instances(self, category: str, split: str) -> list[TaskInstance]:
        """All instances of a category in one of the environment's splits, in a stable order."""

    @abstractmethod
    def reset(self, task: TaskInstance) -> Observation:
        """Start an episode of ``task``."""

    @abstractmethod
    def step(self, action: str) -> StepOutcome:
        """Apply one action to the running episode."""

    def expert_states(self, task: TaskInstance) -> tuple[list[ExpertState], int]:
        """The decision states along an expert's path through ``task``, and how many of its decisions the
        candidate list could not express (left out). Environments without an expert raise."""
        raise NotImplementedError(f"{self.name} has no expert path to score agreement against")

    def spawn(self) -> Environment | None:
        """A fresh environment with the same settings, so the batched engine can play episodes side by side;
        None when this environment cannot be copied (the engine then plays one episode at a time)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release simulator resources (a JVM, a game process)."""
