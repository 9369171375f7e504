"""ALFWorld adapter: the official games where they are installed, generated ALFWorld-style games elsewhere.

Both sources are folders laid out like ``alfworld-download``'s ``json_2.1.1``
(``<split>/<task_type>-.../trial_.../{game.tw-pddl, traj_data.json}``) and are played through the TextWorld
PDDL API with ALFWorld's own wrappers (``AlfredDemangler``, ``AlfredInfos``), as ``AlfredTWEnv`` does, minus
its expert. Games are collected the way ``AlfredTWEnv.collect_game_files`` does it: the category is the
``task_type`` of ``traj_data.json`` (mapped to the paper's six names), movable and sliced trials are skipped,
and only games marked solvable count.

A source is part of the environment's identity: ``source: official`` and ``source: generated`` never share
an environment name, results path or label, so numbers on generated games cannot pass for ALFWorld numbers.

Splits (the environment's ``train``/``dev``/``test``, which stages use for search/profile/evaluation):
- official: ``train`` = the train folder minus a fixed tenth of it, ``dev`` = that tenth (disjoint from
  search, for the model card's preliminary rollouts), ``test`` = ``valid_seen`` (the paper's 140 games) or
  ``valid_unseen``.
- generated: the ``train``, ``dev`` and ``test`` folders the game builder writes (test on ALFRED's test
  floorplans), listed in its manifest with each game file's hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masa.envs.alfworld_games import CATEGORIES, GAME_FILE, TASK_TYPES, TRAJ_FILE, open_game
from masa.envs.base import Environment, Observation, StepOutcome, TaskInstance

log = logging.getLogger(__name__)

SOURCES = ("generated", "official")
LABELS = {
    "official": "ALFWorld (official games)",
    "generated": "ALFWorld-style (generated games; not comparable to published ALFWorld numbers)",
}
NOTHING_HAPPENS = "Nothing happens."
PROFILE_BUCKETS = 10  # official data: one train game in ten is kept for the profile (dev) split
EVAL_SPLITS = ("valid_seen", "valid_unseen")


def task_description(feedback: str) -> str:
    """The goal line of the intro ("Your task is to: put a clean mug in coffeemachine.")."""
    for line in feedback.splitlines():
        if line.strip().lower().startswith("your task is to:"):
            return line.strip()
    return feedback.strip().splitlines()[-1] if feedback.strip() else ""


@dataclass(frozen=True)
class Game:
    category: str
    split: str  # the environment's split: train | dev | test
    instance: str  # game folder relative to the data folder, plus the file hash for generated games
    path: Path  # the game.tw-pddl file


def collect(data_dir: Path, folder: str) -> list[tuple[str, Path]]:
    """(category, game file) of the solvable games under ``data_dir/folder``, as ALFWorld collects them."""
    found = []
    for traj in sorted((data_dir / folder).glob(f"**/{TRAJ_FILE}")):
        root = traj.parent
        if "movable" in str(root) or "Sliced" in str(root):
            continue
        task_type = json.loads(traj.read_text()).get("task_type")
        game = root / GAME_FILE
        if task_type not in TASK_TYPES or not game.is_file():
            continue
        if not json.loads(game.read_text()).get("solvable"):
            continue
        found.append((TASK_TYPES[task_type], game))
    return found


def profile_bucket(relative: str) -> bool:
    """A fixed, content-free choice of official train games for the profile split (stable across machines)."""
    return int(hashlib.sha256(relative.encode()).hexdigest(), 16) % PROFILE_BUCKETS == 0


def official_games(data_dir: Path, eval_split: str) -> list[Game]:
    if not (data_dir / "train").is_dir() or not (data_dir / eval_split).is_dir():
        raise FileNotFoundError(
            f"ALFWorld data folder {data_dir} lacks train/ or {eval_split}/: set data_dir to the json_2.1.1 "
            "folder alfworld-download writes (e.g. $ALFWORLD_DATA/json_2.1.1)"
        )
    games = []
    for category, path in collect(data_dir, "train"):
        relative = str(path.parent.relative_to(data_dir))
        split = "dev" if profile_bucket(relative) else "train"
        games.append(Game(category, split, relative, path))
    for category, path in collect(data_dir, eval_split):
        games.append(Game(category, "test", str(path.parent.relative_to(data_dir)), path))
    return games


def generated_games(data_dir: Path) -> list[Game]:
    manifest_path = data_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"no generated ALFWorld games in {data_dir} (manifest.json missing): build them with "
            "`snakemake --profile profiles/local resources/games/<env>/manifest.json`"
        )
    manifest = json.loads(manifest_path.read_text())
    return [
        Game(g["category"], g["split"], f"{Path(g['path']).parent}#{g['sha256'][:12]}", data_dir / g["path"])
        for g in manifest["games"]
    ]


class ALFWorld(Environment):
    """ALFWorld games through the TextWorld PDDL API; success = the game's ``won`` flag."""

    def __init__(
        self,
        name: str,
        source: str,
        data_dir: str | Path,
        tasks: list[str] | None = None,
        max_steps: int = 50,
        eval_split: str = "valid_seen",
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"environment {name!r}: source must be one of {SOURCES}, not {source!r}")
        if eval_split not in EVAL_SPLITS:
            raise ValueError(f"environment {name!r}: eval_split must be one of {EVAL_SPLITS}")
        unknown = sorted(set(tasks or ()) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"environment {name!r}: unknown tasks {unknown}; choose from {list(CATEGORIES)}")
        self.name = name
        self.source = source
        self.label = LABELS[source]
        self.data_dir = Path(data_dir)
        self.max_steps = max_steps
        self._categories = list(tasks or CATEGORIES)
        self.eval_split = eval_split
        self._games: dict[tuple[str, str], list[Game]] | None = None
        self._env: Any = None
        self._paths: dict[str, Path] = {}
        self._steps = 0
        self._description = ""
        self._over = True

    def categories(self) -> list[str]:
        return list(self._categories)

    def spawn(self) -> ALFWorld:
        """Same games and settings, with a game engine of its own: TextWorld games in one process share
        nothing but the discovered game list, so the batched engine plays several in lockstep (their steps
        run in turn: they are Python in this process)."""
        twin = ALFWorld(
            self.name, self.source, self.data_dir, self._categories, self.max_steps, self.eval_split
        )
        twin._games, twin._paths = self.games(), self._paths
        return twin

    def games(self) -> dict[tuple[str, str], list[Game]]:
        """Games by (category, split), found once."""
        if self._games is None:
            found = (
                official_games(self.data_dir, self.eval_split)
                if self.source == "official"
                else generated_games(self.data_dir)
            )
            self._games = {}
            for game in found:
                self._games.setdefault((game.category, game.split), []).append(game)
                self._paths[game.instance] = game.path
        return self._games

    def instances(self, category: str, split: str) -> list[TaskInstance]:
        games = self.games().get((category, split), [])
        return [TaskInstance(self.name, category, g.instance, split) for g in games]

    def reset(self, task: TaskInstance) -> Observation:
        self.games()
        path = self._paths.get(task.instance)
        if path is None:
            raise KeyError(f"{self.name}: no game {task.instance!r} in {self.data_dir}")
        if self._env is None:
            self._env, state = open_game(path)
        else:
            self._env.load(str(path))
            state = self._env.reset()
        self._steps = 0
        self._over = False
        feedback = str(state["feedback"]).strip()
        self._description = task_description(feedback)
        return Observation(feedback, self._description, self._candidates(state))

    def step(self, action: str) -> StepOutcome:
        if self._env is None or self._over:
            raise RuntimeError("no running episode: call reset() first")
        state, _, done = self._env.step(action.strip())
        self._steps += 1
        feedback = str(state["feedback"]).strip()
        won = bool(state["won"])
        done = bool(done) or won or self._steps >= self.max_steps
        self._over = done
        candidates = () if done else self._candidates(state)
        observation = Observation(feedback, self._description, candidates)
        return StepOutcome(observation, 1.0 if won else 0.0, done, won, feedback == NOTHING_HAPPENS)

    @staticmethod
    def _candidates(state: Any) -> tuple[str, ...]:
        """ALFWorld's admissible commands, all of them (``look`` and ``inventory`` included, as in the paper)."""
        return tuple(state["admissible_commands"] or ())

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
