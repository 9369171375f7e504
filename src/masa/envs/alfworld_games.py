"""ALFWorld-style games built offline from what the ``alfworld`` wheel ships.

The official ALFWorld games (3,553 train / 140 valid_seen / 134 valid_unseen) come from ALFRED's recorded
scenes and are fetched by ``alfworld-download``, which needs the project's code host. Everywhere that is out
of reach this module writes games of the same kind from the wheel alone: the PDDL domain and text grammar
(``alfworld/data``), ALFRED's object and receptacle rules (``alfworld.gen.constants``), its goal templates
(``alfworld.gen.goal_library``) and the 120 floorplans' receptacles and object types
(``alfworld/gen/layouts``). Each game is a ``game.tw-pddl`` file in the format ``alfworld-generate`` writes
(domain, grammar with the goal text, problem, solvable flag, walkthrough), in a folder laid out like the
official data (``<split>/<task_type>-<object>-<mrecep>-<parent>-<scene>/trial_<n>/``), so the adapter reads
both sources the same way.

Placements are sampled, not ALFRED's: results on these games are not comparable to published ALFWorld numbers
(the adapter labels them so). Search and profile games use ALFRED's train floorplans and evaluation games its
test floorplans, so evaluation scenes are unseen; every game is checked solvable by the shipped planner in a
child process under a time limit, and its plan replayed to ``won`` before it is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import random
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from masa.io import atomic_write_text, write_json

log = logging.getLogger(__name__)

# ALFWorld's task types (alfworld.agents.environment.alfred_tw_env.TASK_TYPES) -> the paper's category names,
# in the paper's order.
TASK_TYPES = {
    "pick_and_place_simple": "pick_and_place",
    "pick_two_obj_and_place": "pick_two_obj_and_place",
    "look_at_obj_in_light": "look_at_obj_in_light",
    "pick_clean_then_place_in_recep": "clean",
    "pick_heat_then_place_in_recep": "heat",
    "pick_cool_then_place_in_recep": "cool",
}
CATEGORIES = tuple(TASK_TYPES.values())
TASK_TYPE_OF = {category: task_type for task_type, category in TASK_TYPES.items()}
GAME_FILE = "game.tw-pddl"
TRAJ_FILE = "traj_data.json"
SPLIT_FOLDERS = ("train", "dev", "test")  # generated sets: search, profile, evaluation
APPLIANCE = {  # the receptacle a state-change task needs in the scene (the domain's Clean/Heat/CoolObject)
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
ABILITY = {  # the object property the task's state change needs (alfworld.gen.constants.VAL_ACTION_OBJECTS)
    "pick_clean_then_place_in_recep": "Cleanable",
    "pick_heat_then_place_in_recep": "Heatable",
    "pick_cool_then_place_in_recep": "Coolable",
}
LAMP_HOLDERS = ("SideTable", "Desk", "Dresser", "Shelf", "CoffeeTable", "DiningTable", "TVStand")
START = "loc_bar_start"
# (split folder, config key under `games`, default count per task type)
GAME_USES = (("train", "search", 4), ("dev", "profile", 1), ("test", "evaluation", 4))


@dataclass(frozen=True)
class GameSettings:
    """What decides the generated set; the same settings and seed always give the same games."""

    categories: tuple[str, ...] = CATEGORIES
    games: tuple[tuple[str, int], ...] = (("train", 4), ("dev", 1), ("test", 4))  # per category
    seed: int = 0
    max_receptacles: int | None = None  # None: every receptacle; never fewer than the task needs
    distractors: int = 3  # other pickable objects placed in the scene
    planner_timeout: float = 30.0  # seconds per game; slower games are dropped and logged
    max_attempts: int = 4  # sampled games tried per wanted game before giving up

    @classmethod
    def from_params(cls, params: dict[str, Any], seed: int) -> GameSettings:
        games = params.get("games", {})
        return cls(
            categories=tuple(params.get("tasks", CATEGORIES)),
            games=tuple((split, int(games.get(use, default))) for split, use, default in GAME_USES),
            seed=seed,
            max_receptacles=params.get("max_receptacles"),
            distractors=params.get("distractors", 3),
            planner_timeout=params.get("planner_timeout", 30.0),
        )


@dataclass(frozen=True)
class GameSpec:
    """One sampled game: the task and where everything starts."""

    task_type: str
    scene: int
    object_target: str
    parent_target: str  # "" for look_at_obj_in_light
    toggle_target: str  # "" unless look_at_obj_in_light
    receptacles: tuple[tuple[str, str, int], ...]  # (id, type, location index)
    objects: tuple[tuple[str, str, str], ...]  # (id, type, receptacle id)
    template: str

    @property
    def folder(self) -> str:
        """ALFRED's trial folder name: task-object-mrecep-parent (the lamp for look_at)-scene."""
        parent = self.parent_target or self.toggle_target
        return f"{self.task_type}-{self.object_target}-None-{parent}-{self.scene}"


def open_game(path: str | Path, policy_commands: bool = False) -> tuple[Any, Any]:
    """A TextWorld PDDL environment with ALFWorld's wrappers, loaded with one game and reset."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    from textworld.envs import PddlEnv

    infos = textworld.EnvInfos(
        won=True, admissible_commands=True, policy_commands=policy_commands, extras=["gamefile"]
    )
    env = AlfredInfos(AlfredDemangler(PddlEnv(infos), shuffle=False))
    env.load(str(path))
    return env, env.reset()


@cache
def _alfworld() -> tuple[Any, Any, Path]:
    import alfworld.gen.constants as constants
    import alfworld.gen.goal_library as goals
    import alfworld.info

    return constants, goals, Path(alfworld.info.ALFRED_PDDL_PATH)


def layouts_dir() -> Path:
    import alfworld.gen

    return Path(alfworld.gen.__file__).parent / "layouts"


def pddl_name(text: str) -> str:
    """ALFRED's mangling of ids into PDDL names (PlannedGameState.fix_pddl_str_chars); the demangler
    turns ``Type_bar_...`` back into ``type N``."""
    for old, new in (("-", "_minus_"), ("|", "_bar_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_")):
        text = text.replace(old, new)
    return text


def pickable_types() -> frozenset[str]:
    """Object types ALFRED lets the agent put somewhere (everything a receptacle may hold)."""
    constants, _, _ = _alfworld()
    return frozenset(o for objs in constants.VAL_RECEPTACLE_OBJECTS.values() for o in objs)


@cache
def openable(scene: int) -> dict[str, list[float]]:
    """A floorplan's receptacle ids -> the agent pose (x, z, rotation, horizon) that interacts with them."""
    return json.loads((layouts_dir() / f"FloorPlan{scene}-openable.json").read_text())


def scene_receptacles(scene: int) -> list[tuple[str, str]]:
    """(id, type) of a floorplan's fixed receptacles; basins carry their type last (``Sink|..|SinkBasin``)."""
    constants, _, _ = _alfworld()
    fixed = set(constants.RECEPTACLES) - set(constants.MOVABLE_RECEPTACLES)
    data = openable(scene)
    out = []
    for key in sorted(data):
        parts = key.split("|")
        rtype = parts[-1] if len(parts) > 4 else parts[0]
        if rtype in fixed:
            out.append((key, rtype))
    return out


def scene_objects(scene: int) -> list[str]:
    return sorted(json.loads((layouts_dir() / f"FloorPlan{scene}-objects.json").read_text()))


def scenes(task_type: str, split: str) -> list[int]:
    """Floorplans of the room kinds ALFRED allows for the task: its train scenes for search and profile
    games, its test scenes for evaluation games."""
    constants, _, _ = _alfworld()
    pool = constants.TEST_SCENE_NUMBERS if split == "test" else constants.TRAIN_SCENE_NUMBERS
    kinds = constants.GOALS_VALID[task_type]
    allowed = {n for kind in kinds for n in constants.SCENE_TYPE[kind]}
    return sorted(n for n in pool if n in allowed and (layouts_dir() / f"FloorPlan{n}-objects.json").exists())


def sample_game(task_type: str, scene: int, rng: random.Random, settings: GameSettings) -> GameSpec | None:
    """A game of ``task_type`` in ``scene``, or None when the scene lacks what the task needs."""
    constants, goals, _ = _alfworld()
    can_hold = constants.VAL_RECEPTACLE_OBJECTS
    receps = scene_receptacles(scene)
    types_here = {t for _, t in receps}
    present = [o for o in scene_objects(scene) if o in pickable_types() and o not in types_here]
    needs = APPLIANCE.get(task_type)
    if needs and needs not in types_here:
        return None
    toggle = ""
    if task_type == "look_at_obj_in_light":
        lamps = [o for o in scene_objects(scene) if o in constants.VAL_ACTION_OBJECTS["Toggleable"]]
        holders = [r for r in receps if r[1] in LAMP_HOLDERS]
        if not lamps or not holders:
            return None
        toggle = rng.choice(lamps)
    ability = constants.VAL_ACTION_OBJECTS.get(ABILITY.get(task_type, ""), None)
    targets = [o for o in present if ability is None or o in ability]
    rng.shuffle(targets)
    for obj in targets:
        starts = [r for r in receps if obj in can_hold.get(r[1], ())]
        parents = sorted({t for _, t in starts} - {needs or ""})
        if task_type == "look_at_obj_in_light":
            parent = ""
        elif parents:
            parent = rng.choice(parents)
        else:
            continue
        starts = [r for r in starts if r[1] != parent]
        if not starts:
            continue
        return _place(task_type, scene, obj, parent, toggle, receps, starts, present, rng, settings, goals)
    return None


def _place(
    task_type: str,
    scene: int,
    obj: str,
    parent: str,
    toggle: str,
    receps: list[tuple[str, str]],
    starts: list[tuple[str, str]],
    present: list[str],
    rng: random.Random,
    settings: GameSettings,
    goals: Any,
) -> GameSpec:
    constants, _, _ = _alfworld()
    count = 2 if task_type == "pick_two_obj_and_place" else 1
    placed: list[tuple[str, str, tuple[str, str]]] = [(obj, "t", rng.choice(starts)) for _ in range(count)]
    if toggle:
        placed.append((toggle, "l", rng.choice([r for r in receps if r[1] in LAMP_HOLDERS])))
    others = [o for o in present if o != obj]
    for other in rng.sample(others, min(settings.distractors, len(others))):
        homes = [r for r in receps if other in constants.VAL_RECEPTACLE_OBJECTS.get(r[1], ())]
        if homes:
            placed.append((other, "d", rng.choice(homes)))
    kept = {r for _, _, r in placed} | {r for r in receps if r[1] in (parent, APPLIANCE.get(task_type))}
    rest = [r for r in receps if r not in kept]
    if settings.max_receptacles is not None:
        rest = rng.sample(rest, max(0, min(len(rest), settings.max_receptacles - len(kept))))
    chosen = sorted(kept | set(rest))
    poses = openable(scene)
    spots = sorted({tuple(poses[key]) for key, _ in chosen})  # receptacles reached from one pose share it
    where = {key: spots.index(tuple(poses[key])) for key, _ in chosen}
    receptacles = tuple((pddl_name(key), rtype, where[key]) for key, rtype in sorted(chosen))
    objects = tuple(
        (pddl_name(f"{otype}|{kind}{i}"), otype, pddl_name(home[0]))
        for i, (otype, kind, home) in enumerate(placed)
    )
    template = rng.choice(goals.gdict[task_type]["templates"])
    return GameSpec(task_type, scene, obj, parent, toggle, receptacles, objects, template)


def problem_pddl(spec: GameSpec) -> str:
    """The PDDL problem: ALFRED's object/type declarations, the scene's facts (with the ``canContain`` facts
    the planner needs: without them every problem is unsolvable) and the goal from ALFRED's library."""
    constants, goals, _ = _alfworld()
    fixed = set(constants.RECEPTACLES) - set(constants.MOVABLE_RECEPTACLES)
    otypes = sorted((set(constants.OBJECTS) | set(constants.MOVABLE_RECEPTACLES)) - fixed)
    actions = constants.VAL_ACTION_OBJECTS
    nlocs = 1 + max((loc for _, _, loc in spec.receptacles), default=0)
    decl = [
        "agent1 - agent",
        *(f"{t}Type - otype" for t in otypes),
        *(f"{t}Type - rtype" for t in sorted(fixed)),
    ]
    decl += [f"{rid} - receptacle" for rid, _, _ in spec.receptacles]
    decl += [f"{oid} - object" for oid, _, _ in spec.objects]
    decl += [f"loc_bar_{i} - location" for i in range(nlocs)] + [f"{START} - location"]
    facts = [f"(atLocation agent1 {START})"]
    rtypes = {rtype for _, rtype, _ in spec.receptacles}
    otypes_here = {otype for _, otype, _ in spec.objects}
    for rtype in sorted(rtypes):
        for otype in sorted(otypes_here & set(constants.VAL_RECEPTACLE_OBJECTS.get(rtype, ()))):
            facts.append(f"(canContain {rtype}Type {otype}Type)")
    for rid, rtype, loc in spec.receptacles:
        facts += [f"(receptacleType {rid} {rtype}Type)", f"(receptacleAtLocation {rid} loc_bar_{loc})"]
        if rtype in constants.OPENABLE_CLASS_SET:
            facts.append(f"(openable {rid})")
    location = {rid: loc for rid, _, loc in spec.receptacles}
    for oid, otype, home in spec.objects:
        facts += [f"(objectType {oid} {otype}Type)", f"(inReceptacle {oid} {home})"]
        facts.append(f"(objectAtLocation {oid} loc_bar_{location[home]})")
        if otype in actions["Toggleable"]:
            facts.append(f"(toggleable {oid})")
        else:
            facts.append(f"(pickupable {oid})")
        if otype in constants.MOVABLE_RECEPTACLES:
            facts.append(f"(isReceptacleObject {oid})")
        for ability, predicate in (
            ("Cleanable", "cleanable"),
            ("Heatable", "heatable"),
            ("Coolable", "coolable"),
        ):
            if otype in actions[ability]:
                facts.append(f"({predicate} {oid})")
    goal = goals.gdict[spec.task_type]["pddl"].format(
        obj=spec.object_target, recep=spec.parent_target, toggle=spec.toggle_target, mrecep=""
    )
    body = "\n        ".join
    return (
        f"(define (problem {spec.folder.lower().replace('-', '_')})\n    (:domain alfred)\n"
        f"    (:objects\n        {body(decl)}\n    )\n    (:init\n        {body(facts)}\n    )\n"
        f"{goal.replace('#', '-')}"
    )


def traj_data(spec: GameSpec) -> dict[str, Any]:
    """The part of ALFRED's traj_data.json that ALFWorld reads (task type and goal parameters)."""
    return {
        "task_type": spec.task_type,
        "scene": {"floor_plan": f"FloorPlan{spec.scene}"},
        "pddl_params": {
            "object_target": spec.object_target,
            "parent_target": spec.parent_target,
            "toggle_target": spec.toggle_target,
            "mrecep_target": "",
            "object_sliced": False,
        },
        "masa_generated": asdict(spec),
    }


def game_data(spec: GameSpec) -> dict[str, Any]:
    """The ``game.tw-pddl`` content, as ``alfworld-generate`` writes it (goal text from ALFRED's templates)."""
    _, _, domain_path = _alfworld()
    import alfworld.info

    params = traj_data(spec)["pddl_params"]
    goal_text = spec.template.format(
        obj=params["object_target"].lower(),
        recep=params["parent_target"].lower(),
        toggle=params["toggle_target"].lower(),
        mrecep="",
    )
    grammar = Path(alfworld.info.ALFRED_TWL2_PATH).read_text().replace("UNKNOWN GOAL", goal_text)
    return {
        "pddl_domain": domain_path.read_text(),
        "grammar": grammar,
        "pddl_problem": problem_pddl(spec),
        "solvable": None,
        "walkthrough": None,
    }


def _plan_child(game_path: str, conn: Any) -> None:
    """Child process: the planner's plan for the game, replayed to check that it wins (or None)."""
    try:
        env, state = open_game(game_path, policy_commands=True)
        plan = list(state["policy_commands"] or [])
        won = False
        for command in plan:
            state, _, done = env.step(command)
            won = bool(state["won"])
            if done:
                break
        env.close()
        conn.send(plan if won else None)
    except Exception as error:  # the planner or translator failing means: not solvable
        conn.send(f"error: {type(error).__name__}: {error}")


def solve(game_path: Path, timeout: float) -> list[str] | str:
    """The walkthrough of a game, or why there is none ("timeout", "unsolvable", "error: ...").

    Runs in a forked child so a search that runs away (one sampled game kept the planner busy for minutes)
    is killed at ``timeout`` instead of stalling the build.
    """
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_plan_child, args=(str(game_path), sender), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            return "timeout"
        result = receiver.recv()
    except EOFError:
        result = "error: the planner process died"
    finally:
        child.kill()
        child.join()
    if result is None:
        return "unsolvable"
    return result


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class BuildRecord:
    split: str
    category: str
    path: str  # relative to the games folder
    sha256: str
    walkthrough_steps: int
    seconds: float


def build_games(out_dir: Path, settings: GameSettings) -> dict[str, Any]:
    """Write every wanted game under ``out_dir`` and return the manifest (also written as manifest.json).

    Games are sampled from a seeded stream per (category, split), so the set is reproducible; a game whose
    file equals one already kept (any split) is skipped, and the splits are checked disjoint by file hash.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    kept: list[BuildRecord] = []
    dropped: list[dict[str, Any]] = []
    seen: set[str] = set()
    for category in settings.categories:
        task_type = TASK_TYPE_OF[category]
        for split, wanted in settings.games:
            rng = random.Random(f"{settings.seed}:{task_type}:{split}")
            pool = scenes(task_type, split)
            if not pool:
                raise ValueError(f"no ALFRED floorplan of the right kind for {task_type} in split {split}")
            made = 0
            for attempt in range(wanted * settings.max_attempts):
                if made >= wanted:
                    break
                spec = sample_game(task_type, rng.choice(pool), rng, settings)
                if spec is None:
                    continue
                folder = out_dir / split / spec.folder / f"trial_{attempt:04d}"
                record, reason = _build_one(out_dir, folder, split, category, spec, settings, seen)
                if record is None:
                    dropped.append(
                        {"split": split, "category": category, "folder": str(folder), "reason": reason}
                    )
                    log.warning("dropped %s: %s", folder, reason)
                    continue
                kept.append(record)
                seen.add(record.sha256)
                made += 1
            if made < wanted:
                log.warning("%s/%s: %d of %d games", split, category, made, wanted)
    manifest = {
        "settings": asdict(settings),
        "games": [asdict(r) for r in kept],
        "dropped": dropped,
    }
    check_disjoint(manifest)
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def _build_one(
    out_dir: Path,
    folder: Path,
    split: str,
    category: str,
    spec: GameSpec,
    settings: GameSettings,
    seen: set[str],
) -> tuple[BuildRecord | None, str]:
    folder.mkdir(parents=True, exist_ok=True)
    game_path = folder / GAME_FILE
    data = game_data(spec)
    atomic_write_text(game_path, json.dumps(data))
    digest = file_hash(game_path)
    if digest in seen:
        _remove(folder)
        return None, "duplicate of a kept game"
    start = time.perf_counter()
    result = solve(game_path, settings.planner_timeout)
    seconds = time.perf_counter() - start
    if isinstance(result, str):
        _remove(folder)
        return None, f"{result} after {seconds:.1f} s"
    data.update(solvable=True, walkthrough=result)
    atomic_write_text(game_path, json.dumps(data))
    write_json(folder / TRAJ_FILE, traj_data(spec))
    record = BuildRecord(
        split, category, str(game_path.relative_to(out_dir)), file_hash(game_path), len(result), seconds
    )
    log.info("%s %s: %d-step walkthrough, %.1f s", split, spec.folder, len(result), seconds)
    return record, ""


def _remove(folder: Path) -> None:
    for item in folder.iterdir():
        item.unlink()
    folder.rmdir()


def check_disjoint(manifest: dict[str, Any]) -> None:
    """No game file (by content hash) may sit in two splits: search and evaluation never share a game."""
    splits: dict[str, set[str]] = {}
    for game in manifest["games"]:
        splits.setdefault(game["split"], set()).add(game["sha256"])
    names = sorted(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if splits[a] & splits[b]:
                raise ValueError(
                    f"generated games: splits {a} and {b} share game files {sorted(splits[a] & splits[b])[:3]}"
                )
