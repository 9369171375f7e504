"""ScienceWorld adapter: a lazily started JVM, cheap steps, and a short candidate list tiny models can score.

ScienceWorld offers hundreds to thousands of "valid" action strings per step, most of them useless ("mix
kitchen", "pour chair into red box"). Backbones of 135M-270M parameters choose by scoring every candidate's
log-likelihood, so the adapter ranks the valid actions and keeps at most ``max_candidates``: ``look
around``, a guarded ``focus on``, one way to reach every other room, object actions ranked by how much they
touch the task's words and the object class it asks for, and ``wait1``.

Speed: the wrapper's ``ScienceWorldEnv.step`` rebuilds the valid-action list (a Java list crossed element by
element) and two free actions on every call (100-140 ms). The adapter talks to the Java server directly:
``step``, score and free look/inventory (3-20 ms), then one JSON call for the valid actions (it carries the
object and type ids the ranking needs), cached by the visible state so a repeated state costs nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from masa.envs.base import Environment, ExpertState, Observation, StepOutcome, TaskInstance

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
WON_SCORE = 100
FOCUS_SLOTS = 5  # guarded focus actions offered at once (find-plant's greenhouse: 3 plants and 5 bees)
JVM_START = threading.Lock()
VALID_CACHE = 64  # visible states remembered per episode

# Replies meaning the input was not understood; the ambiguity prompt is handled separately.
NOT_UNDERSTOOD = ("No known action matches", "Unknown action")
AMBIGUOUS = "Ambiguous request"
CANCELLED = "\n(Cancelled: the action was ambiguous. Use one of the listed actions.)"
# The simulator's refusals (strings of its action classes). After one the world is as it was, whatever the
# room text says: plants keep growing meanwhile, and electrical connections never show in it.
REFUSAL = re.compile(
    r"already (?:open|closed|activated|deactivated|connected|flushing|appears to be in)|is not |isn't |"
    r"can't |cannot |not clear how|not sure how|does not |doesn't |nothing to pour|appears broken"
)
WORLD_VERBS = (
    "open ", "close ", "pick up ", "put down ", "move ", "pour ", "mix ", "activate ", "deactivate ",
    "connect ", "disconnect ", "eat ", "use ", "go ", "teleport ", "dunk ", "flush ",
)  # fmt: skip
ONE_OBJECT_VERBS = (
    "look at ", "look in ", "focus on ", "pick up ", "put down ", "open ", "close ", "activate ",
    "deactivate ", "eat ", "flush ", "mix ", "read ", "go to ", "teleport to ",
)  # fmt: skip
NAVIGATION = ("go to ", "teleport to ", "open door to ")
EXPERT_TASKS = "find-"  # the tasks whose structure ``equivalent_actions`` knows (ScienceWorld.expert_states)
NEVER_OFFERED = frozenset({"reset task", "task", "wait"})  # restarts, ten ticks, the prompt again
STOPWORDS = frozenset({
    "a", "an", "the", "of", "on", "in", "to", "is", "it", "its", "and", "or", "if", "then", "first",
    "next", "your", "task", "you", "when", "are", "be", "done", "this", "that", "find", "focus", "move",
    "place", "put", "use", "which", "with", "will", "by", "from", "for", "at", "as", "after", "before",
    "into", "located", "around", "part", "way", "completely", "created", "cause", "take", "actions",
    "action", "make", "changes", "environment", "state", "matter", "determine", "whether", "two", "most",
    "least", "thing", "things",
})  # fmt: skip
COLOURS = frozenset({
    "red", "green", "blue", "orange", "yellow", "purple", "violet", "brown", "black", "white", "grey",
    "gray",
})  # fmt: skip
LIFE_STAGE_WORDS = frozenset({
    "adult", "baby", "juvenile", "egg", "seed", "seedling", "reproducing", "stage",
})  # fmt: skip
# Kinds of objects, by the last part of ScienceWorld's class name.
STRUCTURAL = frozenset({
    "Agent", "InventoryContainer", "Location", "Outside", "Room", "Universe", "Door", "LiquidDrain",
    "Portal", "Air",
})  # fmt: skip
APPLIANCES = frozenset({
    "Bathtub", "BlastFurnace", "Freezer", "Fridge", "Oven", "Sink", "Stove", "Toilet", "UltraColdFreezer",
    "HotPlate", "Ground", "FirePit", "Fountain", "Hole", "Sewer", "InclinedPlane",
})  # fmt: skip
NOT_ORGANISMS = frozenset({"Soil", "Pollen"})  # classes under livingthing.plant that are not organisms
CLASS_PHRASES = {
    "living thing": "living",
    "non-living thing": "nonliving",
    "animal": "animal",
    "plant": "plant",
}
CLASS_KINDS = {
    "animal": ("animal",),
    "plant": ("plant",),
    "living": ("animal", "plant", "living"),
    "nonliving": ("item", "container", "furniture"),  # movable, so GoalFocusOnNonlivingThing accepts them
}
CHANGE_OF_STATE = r"your task is to (?:boil|melt|freeze|change the state of matter of) ([^.]+)\."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower())


def content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in words(text) if w not in STOPWORDS and not w.isdigit())


def head_phrase(referent: str) -> str:
    """Own name: "cup containing blue paint in art studio" -> "cup", "orange in bowl" -> "orange"."""
    return re.split(r" (?:in|containing|on) ", referent, maxsplit=1)[0]


def current_room(look: str) -> str:
    """The room's name, from "This room is called the kitchen." or "... is called the outside."."""
    match = re.search(r"is called the ([^.\n]+)\.", look)
    return match.group(1).strip() if match else ""


def canonical(text: str) -> str:
    """The simulator's text with every block of tab-indented lines sorted.

    ScienceWorld lists a room's (or the inventory's) objects in hash-set order, which changes from one
    load of the same variation to the next; sorting makes the observation a function of the state, as
    the ``Environment`` contract requires. Candidates are ranked by value and text, so they repeat too,
    except where the simulator's own disambiguated names vary (several paint cups; never seen in find-*).
    """
    lines = text.split("\n")
    out: list[str] = []
    block: list[str] = []
    for line in [*lines, ""]:
        if line.startswith("\t"):
            block.append(line)
            continue
        out += sorted(block)
        block = []
        out.append(line)
    return "\n".join(out[:-1])


def tie_break(seed: int, text: str) -> int:
    """A stable pseudo-random order among equally ranked actions (no RNG state: the same on every run)."""
    return zlib.crc32(f"{seed}:{text}".encode())


@dataclass(frozen=True)
class TypeTable:
    """ScienceWorld's object type ids -> class names (the package ships them as object_type_ids.tsv)."""

    names: dict[int, str]

    @classmethod
    def load(cls) -> TypeTable:
        import scienceworld

        path = Path(scienceworld.__file__).with_name("object_type_ids.tsv")
        pairs = (line.rsplit("\t", 1) for line in path.read_text().splitlines() if "\t" in line)
        return cls({int(idx): name for name, idx in pairs})

    def kind(self, type_id: int) -> str:
        """animal, plant, living, structural, appliance, box, furniture, container, substance or item."""
        full = self.names.get(type_id, "")
        short = full.rsplit(".", 1)[-1]
        if ".livingthing.animals." in full:
            return "animal"
        if ".livingthing.plant." in full and short not in NOT_ORGANISMS:
            return "plant"
        if short == "LivingThing":
            return "living"
        if short in STRUCTURAL:
            return "structural"
        if short in APPLIANCES:
            return "appliance"
        if short == "AnswerBox":
            return "box"
        if ".containers.furniture." in full or short == "BookShelf":
            return "furniture"
        if ".containers." in full:
            return "container"
        if ".substance." in full and ".food." not in full and not short.endswith(("Block", "Brick")):
            return "substance"
        return "item"


@dataclass(frozen=True)
class ValidAction:
    text: str
    obj_ids: tuple[int, ...]
    kinds: tuple[str, ...]


Target = str | frozenset[str]  # an object class ("animal") or the words naming one ({"red", "light", "bulb"})


@dataclass(frozen=True)
class TaskProfile:
    """What the task description asks to act on, parsed once per episode.

    ``focus_steps`` lists the task's "focus on ..." targets in the order the description gives them
    ("First, focus on the thermometer. Next, focus on the chocolate. If ..., focus on the blue box. If ...,
    focus on the orange box." -> thermometer; chocolate; blue box or orange box): a focus out of order fails
    the task as surely as a wrong one. Generic phrases the simulator checks by class ("find a(n) living
    thing", "the animal with the longest life span") become classes; "the substance" becomes the named one.
    """

    words: frozenset[str]
    target_class: str | None
    focus_steps: tuple[tuple[Target, ...], ...]
    focus_budget: int  # successful focuses the task needs; none is offered after that many

    @classmethod
    def parse(cls, description: str, world_words: frozenset[str] = frozenset()) -> TaskProfile:
        """``world_words``: every word naming an object of this episode, to drop adjectives no name has."""
        text = description.lower().replace("task description:", " ")
        found = re.search(r"find a\(n\) ([^.]+)\.", text)
        target_class = CLASS_PHRASES.get(found.group(1).strip()) if found else None
        named = re.search(CHANGE_OF_STATE, text)
        resolved = {"substance": named.group(1) if named else None}
        steps: list[tuple[Target, ...]] = []
        after_condition = False
        for sentence in re.split(r"(?<=\.)\s+", text):
            for mention in re.findall(r"focus on (?:the |a |an |a\(n\) )?([^.,;]+)", sentence):
                phrase = resolved.get(mention.strip()) or mention.strip()
                target = target_class if phrase == "thing" else focus_target(phrase, world_words)
                if target is None:
                    continue
                condition = sentence.strip().startswith("if ")
                if condition and after_condition:  # "If ..., focus on X. If ..., focus on Y.": alternatives
                    steps[-1] += (target,)
                else:
                    steps.append((target,))
                after_condition = condition
        classes = [t for step in steps for t in step if isinstance(t, str)]
        stages = re.search(r"focus on the (\d+) ", text)
        budget = max(len(steps), int(stages.group(1)) if stages else 0, 1)
        return cls(content_words(text), target_class or next(iter(classes), None), tuple(steps), budget)

    def focus_allowed(self, names: tuple[str, ...], kind: str, step: int) -> bool:
        """The focus guard: a wrong ``focus on`` ends the episode at -100, so offer only safe targets.

        Only the targets of the next focus step pass (the last step repeats: "the 4 life stages"). Classes
        follow the simulator's own checks (GoalFocusOnAnimal / Plant / LivingThing / NonlivingThing):
        animals, plants, any organism, or, for "non-living thing", a movable non-living object (air,
        liquids and appliances would only waste the focus: they never reach the answer box). A named
        target ("the red light bulb", "water") needs every word of the phrase in one of the object's own
        names: its valid-list name, or a referent extending it ("unknown substance b" for the listed
        "unknown substance"). So "blue paint" never passes for "green paint", the anode of the red light
        bulb never for the bulb, and the answer box a find task names (a destination) is never offered.
        """
        if not self.focus_steps or step >= self.focus_budget:
            return False
        owns = [set(words(head_phrase(name))) for name in names]
        for target in self.focus_steps[min(step, len(self.focus_steps) - 1)]:
            if isinstance(target, str) and kind in CLASS_KINDS[target]:
                return True
            if not isinstance(target, str) and any(target <= own for own in owns):
                return True
        return False

    def name_hits(self, referent: str) -> float:
        """How many of the task's words the object's own name holds ("red box": 2 in a red-box task)."""
        return float(len(set(words(head_phrase(referent))) & self.words))

    def class_match(self, kind: str) -> float:
        """One if the object is of the class the task asks for (an animal in find-animal)."""
        return float(self.target_class is not None and kind in CLASS_KINDS[self.target_class])

    def named_words(self, actions: list[ValidAction]) -> set[str]:
        """Words naming what the task is about: its named focus targets, the visible things of its class."""
        wanted: set[str] = {w for step in self.focus_steps for t in step if not isinstance(t, str) for w in t}
        if self.target_class and self.target_class != "nonliving":
            for action in actions:
                if action.text.startswith("look at ") and action.kinds[0] in CLASS_KINDS[self.target_class]:
                    wanted |= set(words(head_phrase(action.text.removeprefix("look at ")))) - LIFE_STAGE_WORDS
        return wanted


def focus_target(phrase: str, world_words: frozenset[str]) -> Target | None:
    """A class for the generic phrases, else the content words of the phrase (None if there are none)."""
    head = phrase.split(" with ")[0].strip()
    if head in CLASS_PHRASES:
        return CLASS_PHRASES[head]
    wanted = content_words(phrase) - {"substance", "life", "stage", "stages"}
    if world_words:  # "the grown apple" -> apple: no object is named "grown"
        wanted = frozenset(w for w in wanted if w in world_words or w in COLOURS)
    return wanted or None


@dataclass(frozen=True)
class View:
    """One state as the candidate builder sees it."""

    actions: list[ValidAction]
    held: frozenset[int]  # ids of the objects in the inventory (at any depth)
    look: str
    focus_step: int  # successful focuses so far: which of the task's focus steps comes next
    focused: frozenset[str] = frozenset()  # names of the objects focused on so far
    aliases: dict[int, tuple[str, ...]] = field(default_factory=dict)  # object id -> all its referents
    rejected: frozenset[str] = frozenset()  # valid-list strings the parser refused in this very state


@dataclass(frozen=True)
class Obj:
    """One object of a valid action, as the ranking sees it."""

    name: str
    kind: str
    held: bool
    relevance: float  # task words in its name + 1 if of the task's class (+ container / focus bonus)
    named: float  # the same without the class: "non-living thing" makes every object of a class relevant


@dataclass
class CandidateBuilder:
    """Ranks one state's valid actions into a short list (see the module docstring)."""

    types: TypeTable
    max_candidates: int
    focus_guard: bool
    seed: int

    def build(self, view: View, profile: TaskProfile) -> tuple[str, ...]:
        """``look around``, the guarded focus targets, one action per other room, then the best-ranked
        object actions, and ``wait1`` last (processes such as heating or growing need time to run).

        Deterministic: ties are broken by a hash of (seed, text), never by an RNG's state.
        """
        if view.rejected:
            view = replace(view, actions=[a for a in view.actions if a.text not in view.rejected])
        texts = {a.text for a in view.actions}
        head = ["look around"] if "look around" in texts else []
        if self.focus_guard:
            head += self._guarded_focus(view, profile)
        head += self._navigation(view.actions, current_room(view.look))
        tail = ["wait1"] if "wait1" in texts else []
        room = self.max_candidates - len(tail)
        chosen = head[:room]
        for text in self._ranked(view, profile):
            if len(chosen) >= room:
                break
            if text not in chosen and text not in tail:
                chosen.append(text)
        return tuple((chosen + tail)[: self.max_candidates])

    def _guarded_focus(self, view: View, profile: TaskProfile) -> list[str]:
        """Safe focus targets (``TaskProfile.focus_allowed``; a seeded sample of ``FOCUS_SLOTS`` when more
        pass), never one already focused on: with several focus steps ("First, focus on the thermometer.
        Next, ...") a repeated focus fails the task."""
        safe = []
        for action in view.actions:
            target = action.text.removeprefix("focus on ")
            if target == action.text or head_phrase(target) in view.focused:
                continue
            aliases = [
                a for a in view.aliases.get(action.obj_ids[0], ()) if a.startswith(head_phrase(target))
            ]
            if profile.focus_allowed((target, *aliases), action.kinds[0], view.focus_step):
                safe.append(action.text)
        return sorted(safe, key=lambda t: tie_break(self.seed, t))[:FOCUS_SLOTS]

    @staticmethod
    def _navigation(actions: list[ValidAction], room: str) -> list[str]:
        """One action per other room: walk through an open door, else open a closed one, else teleport."""
        texts = sorted(a.text for a in actions if a.kinds == ("structural",))
        walk = [t for t in texts if t.startswith("go to ") and not re.search(r"^go to door| door$", t)]
        reached = {t.removeprefix("go to ") for t in walk} | {room}
        doors = [
            t
            for t in texts
            if t.startswith("open door to ") and t.removeprefix("open door to ") not in reached
        ]
        reached |= {t.removeprefix("open door to ") for t in doors}
        far = [
            t for t in texts if t.startswith("teleport to ") and t.removeprefix("teleport to ") not in reached
        ]
        return walk + doors + far

    def _ranked(self, view: View, profile: TaskProfile) -> list[str]:
        names = object_names(view.actions)
        bonus = container_bonus(profile.named_words(view.actions), view.look)
        bonus.update(dict.fromkeys(view.focused, 2.0))  # the task is about the focused object from then on
        skip = NAVIGATION + (("focus on ",) if self.focus_guard else ())
        scored: list[tuple[float, int, str]] = []
        for action in view.actions:
            if action.text.startswith(skip):
                continue
            objs = []
            for obj_id, kind in zip(action.obj_ids, action.kinds, strict=True):
                name = names.get(obj_id, "")
                named = profile.name_hits(name) + bonus.get(head_phrase(name), 0.0)
                objs.append(Obj(name, kind, obj_id in view.held, named + profile.class_match(kind), named))
            value = action_value(action.text, objs)
            if value is not None and value > 0:
                scored.append((-value, tie_break(self.seed, action.text), action.text))
        return [text for _, _, text in sorted(scored)]


def navigation_room(action: str) -> str:
    """The room a navigation action leads to ("teleport to living room" -> "living room")."""
    for prefix in NAVIGATION:
        if action.startswith(prefix):
            return action.removeprefix(prefix)
    return ""


def same_objects(candidate: str, action: str) -> bool:
    """``candidate`` is ``action`` under shorter names: the same verb, and each side of " to " names a subset
    of the words ``action`` names there ("move dove to red box" for "move egg dove egg in inventory to red
    box"; not "move orange to orange box" for "move finger painting to orange box")."""
    if candidate.split(" ", 1)[0] != action.split(" ", 1)[0]:
        return False
    parts, wanted = candidate.split(" to ", 1), action.split(" to ", 1)
    if len(parts) != len(wanted):
        return False
    return all(
        content_words(p) and content_words(p) <= content_words(w) for p, w in zip(parts, wanted, strict=True)
    )


def equivalent_actions(
    action: str, later: list[str], candidates: tuple[str, ...], any_focus: bool
) -> frozenset[str]:
    """The candidates as good as the expert's ``action`` (``later``: the rest of its path) in a find-* task.

    The expert's route is one of many, so agreement with it alone rewards imitating an arbitrary walk. The
    task's own structure says which actions keep an optimal completion: the expert's action, or one of the
    same verb on the same objects under another name ("move dove to red box" for "move egg dove egg in
    inventory to red box"); a navigation action to any room of the leg the expert is walking (up to its next
    action that is not navigation: the room it is heading for, or one on the way, by door or teleport); and,
    while nothing is focused on yet (``any_focus``), every focus the guard offers, since each is a thing of
    the asked kind and focusing on it is the task's first subgoal.
    """
    accepted = {action} & set(candidates)
    if action.startswith(NAVIGATION):
        leg = [action]
        for step in later:
            if not step.startswith(NAVIGATION):
                break
            leg.append(step)
        rooms = {navigation_room(step) for step in leg}
        accepted |= {c for c in candidates if c.startswith(NAVIGATION) and navigation_room(c) in rooms}
    else:
        accepted |= {c for c in candidates if not c.startswith(NAVIGATION) and same_objects(c, action)}
    if any_focus:
        accepted |= {c for c in candidates if c.startswith("focus on ")}
    return frozenset(accepted)


def object_names(actions: list[ValidAction]) -> dict[int, str]:
    """Each visible object's unique name, read off its one-object actions ("look at X" -> X)."""
    names: dict[int, str] = {}
    for action in actions:
        if len(action.obj_ids) == 1 and action.obj_ids[0] not in names:
            verb = next((v for v in ONE_OBJECT_VERBS if action.text.startswith(v)), None)
            if verb:
                names[action.obj_ids[0]] = action.text.removeprefix(verb)
    return names


def container_bonus(wanted: set[str], look: str) -> dict[str, float]:
    """Containers whose contents the room text ties to the task rank like the thing they hold.

    "a flower pot 8 (containing a cherry tree in the adult stage, soil)" in a find-plant task: carrying the
    pot is how the gold path moves a plant; "a metal pot (containing water)" when the task is to boil water.
    """
    bonus = {}
    for name, contents in re.findall(r"\ban? ([^\n(]+?) \(containing ([^)]*)\)", look.lower()):
        if wanted & (set(words(contents)) - LIFE_STAGE_WORDS - STOPWORDS):
            bonus[name.strip()] = 1.0
    return bonus


def action_value(text: str, objs: list[Obj]) -> float | None:
    """Verb prior + 3 x task relevance of the objects involved; None for actions never worth offering.

    The rules encode what ScienceWorld's valid list does not: carrying furniture, pouring a chair or mixing
    a butterfly is "valid" but useless, and eating, dunking or flushing things destroys them.
    """
    if text == "inventory":
        return 0.2
    if not objs or any(o.kind == "structural" for o in objs):
        return None
    first, relevance = objs[0], 3 * sum(o.relevance for o in objs)
    if text.startswith("pick up "):
        if first.held or first.kind in ("appliance", "box"):
            return None
        return (0.5 if first.kind == "furniture" else 2.0) + relevance
    if text.startswith("move "):
        return _move_value(*objs)
    if text.startswith("focus on "):  # reached only with the focus guard off
        return 0.1 + relevance
    if text.startswith(("open ", "activate ")):
        return 0.5 + relevance
    if text.startswith("read ") and first.kind == "item":
        return 0.5 + relevance
    if text.startswith("put down ") and first.held:
        return relevance or 0.1
    return _value_if_relevant(text, objs, 3 * sum(o.named for o in objs))


def _move_value(source: Obj, target: Obj) -> float | None:
    """Moving something held or task-relevant into the answer box or a task-relevant container ranks high;
    a relevant thing into any container (water into a pot) low; anything else, or a move to where the thing
    already is ("move cup in red box to red box"), not at all."""
    if not (source.held or source.relevance) or source.kind in ("appliance", "box"):
        return None
    if target.kind not in ("box", "container", "furniture", "appliance") or source.name.endswith(
        f" in {target.name}"
    ):
        return None
    if target.relevance or target.kind == "box":
        return 1.0 + 2 * source.held + 3 * target.relevance + source.relevance
    return 0.5 + source.relevance if source.relevance else None


def _value_if_relevant(text: str, objs: list[Obj], relevance: float) -> float | None:
    """Actions offered only when they touch something the task names: pour, mix, use, connect, look at /
    in, deactivate (not merely its class: "find a non-living thing" does not make pouring paint useful)."""
    if not relevance:
        return None
    first = objs[0]
    if text.startswith("pour "):
        filled = "containing" in first.name and "containing nothing" not in first.name
        pourable = first.kind == "substance" or filled
        return relevance if pourable and objs[1].kind in ("container", "appliance") else None
    if text.startswith("mix "):
        return relevance if first.kind == "container" else None
    if text.startswith("use "):
        return relevance if first.held else None
    if text.startswith(("connect ", "disconnect ", "deactivate ")):
        return relevance - 1
    if text.startswith("look at "):  # information only: below carrying things
        return relevance / 3
    if text.startswith("look in ") and first.kind in ("container", "furniture", "appliance"):
        return relevance - 1
    return None


@dataclass
class _Episode:
    task: TaskInstance
    description: str
    profile: TaskProfile
    steps: int = 0
    focus_done: int = 0
    focused: frozenset[str] = frozenset()
    aliases: dict[int, tuple[str, ...]] = field(default_factory=dict)
    rejected: set[tuple[tuple[str, str], str]] = field(default_factory=set)  # (state, action) refused
    last_text: str = ""
    snapshot: tuple[str, str, int] = ("", "", 0)  # look, inventory, raw score
    over: bool = False
    valid_cache: OrderedDict[tuple[str, str], tuple[list[ValidAction], frozenset[int]]] = field(
        default_factory=OrderedDict
    )


class ScienceWorld(Environment):
    """ScienceWorld behind the ``Environment`` interface; categories are ScienceWorld task names.

    Instances are variation indices from ScienceWorld's own train/dev/test split. Scores are progress in
    [0, 1] (a failed task's -100 maps to 0); ``won`` means the simulator's score reached 100.
    """

    name = "scienceworld"
    label = "ScienceWorld"
    steps_concurrently = True  # every instance talks to its own JVM

    def __init__(
        self,
        tasks: list[str],
        max_steps: int,
        simplifications: str = "easy",
        max_candidates: int = 30,
        heap_mb: int = 512,
        focus_guard: bool = True,
        seed: int = 0,
    ) -> None:
        self.tasks = list(tasks)
        self.max_steps = max_steps
        self.simplifications = simplifications
        self.heap_mb = heap_mb
        self.seed = seed
        self.builder = CandidateBuilder(TypeTable.load(), max_candidates, focus_guard, seed)
        self._env: Any = None
        self._splits: dict[str, dict[str, list[int]]] = {}
        self._episode: _Episode | None = None

    # --- JVM -----------------------------------------------------------------------------------------------
    def _server(self) -> Any:
        """Start the JVM on first use. py4j launches java as a subprocess inheriting our environment, so
        JAVA_TOOL_OPTIONS caps its heap (the JVM default is a quarter of the machine's RAM). The variable is
        the process's, shared by the engine's threads, hence the lock."""
        if self._env is None:
            require_java()
            from scienceworld import ScienceWorldEnv

            with JVM_START:
                previous = os.environ.get("JAVA_TOOL_OPTIONS")
                os.environ["JAVA_TOOL_OPTIONS"] = f"{previous or ''} -Xmx{self.heap_mb}m".strip()
                try:
                    self._env = ScienceWorldEnv("", envStepLimit=10**9)  # the step budget is enforced here
                finally:
                    if previous is None:
                        os.environ.pop("JAVA_TOOL_OPTIONS", None)
                    else:
                        os.environ["JAVA_TOOL_OPTIONS"] = previous
        return self._env.server

    def spawn(self) -> ScienceWorld:
        """Same tasks and settings; its own JVM starts on its first reset. The split table is shared."""
        twin = ScienceWorld(
            self.tasks,
            self.max_steps,
            self.simplifications,
            self.builder.max_candidates,
            self.heap_mb,
            self.builder.focus_guard,
            self.seed,
        )
        twin._splits = self._splits
        return twin

    def close(self) -> None:
        env, self._env, self._episode = self._env, None, None
        if env is not None:
            env.close()

    @property
    def faults(self) -> tuple[type[BaseException], ...]:
        """A dead or hung JVM surfaces as a py4j error (Py4JNetworkError when java was killed)."""
        from py4j.protocol import Py4JError

        return (*super().faults, Py4JError)

    def restart(self) -> None:
        try:
            self.close()
        except Exception as err:  # closing a dead JVM's gateway may fail too; the next reset starts a new one
            log.warning("closing the dead ScienceWorld JVM failed: %s", err)

    # --- tasks ---------------------------------------------------------------------------------------------
    def categories(self) -> list[str]:
        return list(self.tasks)

    def instances(self, category: str, split: str) -> list[TaskInstance]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} (expected one of {SPLITS})")
        return [TaskInstance(self.name, category, str(v), split) for v in self._variations(category)[split]]

    def _variations(self, category: str) -> dict[str, list[int]]:
        """The simulator answers split queries only for a loaded task, so load variation 0 once per task."""
        if category not in self._splits:
            server = self._server()
            server.load(category, 0, self.simplifications, False)
            self._episode = None
            self._splits[category] = {
                "train": sorted(int(v) for v in server.getVariationsTrain()),
                "dev": sorted(int(v) for v in server.getVariationsDev()),
                "test": sorted(int(v) for v in server.getVariationsTest()),
            }
        return self._splits[category]

    def gold_path(self, task: TaskInstance) -> list[str]:
        """The simulator's gold action sequence for ``task`` (for tests and candidate-coverage checks)."""
        server = self._server()
        server.load(task.category, int(task.instance), self.simplifications, True)
        self._episode = None
        return [str(a) for a in server.getGoldActionSequence()]

    def expert_states(self, task: TaskInstance) -> tuple[list[ExpertState], int]:
        """The decisions along the simulator's gold path, each with ``equivalent_actions`` as acceptable.

        The gold path is replayed through this adapter, so every state has the candidate list an agent
        would get. A gold action that changes nothing is no decision (under ``easy`` the doors start open:
        ``open door to X`` is a no-op). A decision none of whose acceptable actions is a candidate cannot be
        scored and is counted instead. Only find-* tasks have the structure the equivalence relies on.

        The simulator picks among equal routes and objects at random, its generator seeded once per JVM: the
        same sequence of loads from a fresh JVM gives the same paths, so a job that starts its own
        environment and walks its instances in order is reproducible; two loads in one JVM may differ.
        """
        if not task.category.startswith(EXPERT_TASKS):
            raise NotImplementedError(
                f"expert agreement is defined for ScienceWorld's find-* tasks, not {task.category}"
            )
        gold = self.gold_path(task)
        states: list[ExpertState] = []
        unexpressed = 0
        history: list[tuple[str, str]] = []
        taken: dict[str, int] = {}
        episode_steps, self.max_steps = self.max_steps, len(gold) + 1  # the expert may need more steps
        try:
            observation = self.reset(task)
            for i, action in enumerate(gold):
                unfocused = (
                    self.builder.focus_guard and self._episode is not None and not self._episode.focus_done
                )
                acceptable = equivalent_actions(action, gold[i + 1 :], observation.candidates, unfocused)
                state = ExpertState(
                    task, len(states) + unexpressed, tuple(history), tuple(sorted(taken.items())),
                    observation, action, acceptable,
                )  # fmt: skip
                outcome = self.step(action)
                if not outcome.no_op:
                    if acceptable:
                        states.append(state)
                    else:
                        unexpressed += 1
                history.append((observation.text, action))
                taken[action] = taken.get(action, 0) + 1
                observation = outcome.observation
                if outcome.done:
                    break
        finally:
            self.max_steps = episode_steps
        return states, unexpressed

    # --- episodes ------------------------------------------------------------------------------------------
    def reset(self, task: TaskInstance) -> Observation:
        server = self._server()
        server.load(task.category, int(task.instance), self.simplifications, False)
        description = str(server.getTaskDescription())
        world = json.loads(server.getAllObjectIdsTypesReferentsLUTJSON())
        world_words = frozenset(w for obj in world.values() for r in obj["referents"] for w in words(r))
        episode = _Episode(task, description, TaskProfile.parse(description, world_words))
        episode.aliases = {int(k): tuple(obj["referents"]) for k, obj in world.items()}
        look = canonical(str(server.step("look around")))  # the wrapper's reset makes the same first move
        episode.last_text = look
        episode.snapshot = snapshot(server)
        self._episode = episode
        return Observation(f"{description}\n\n{look}", description, self._candidates(server, episode))

    def step(self, action: str) -> StepOutcome:
        episode = self._episode
        if episode is None or episode.over:
            raise RuntimeError("no running episode: call reset() first")
        server = self._server()
        action = action.strip()
        before = episode.snapshot
        text = canonical(str(server.step(action)))
        ambiguous = text.startswith(AMBIGUOUS)
        if ambiguous:  # the simulator now waits for a number; any other input cancels, else it eats an action
            server.step("")
            text = text.rstrip() + CANCELLED
        not_understood = text.startswith(NOT_UNDERSTOOD)
        if ambiguous or not_understood:  # the valid list is not always parseable: two oranges held
            episode.rejected.add((before[:2], action))
        episode.steps += 1
        episode.snapshot = after = snapshot(server)
        raw = after[2]
        if action.startswith("focus on ") and raw > before[2]:
            episode.focus_done += 1
            episode.focused |= {head_phrase(action.removeprefix("focus on "))}
        refused = action.startswith(WORLD_VERBS) and raw == before[2] and REFUSAL.search(text) is not None
        repeated = before == after and text == episode.last_text  # e.g. a second "look around"
        no_op = ambiguous or not_understood or refused or repeated
        episode.last_text = text
        won = raw >= WON_SCORE
        done = bool(server.getCompleted()) or won or raw < 0 or episode.steps >= self.max_steps
        episode.over = done
        candidates = () if done else self._candidates(server, episode)
        observation = Observation(text, episode.description, candidates)
        return StepOutcome(observation, max(raw, 0) / 100, done, won, no_op)

    def valid_actions(self) -> list[str]:
        """Every valid action on a reachable object in the current state (e.g. to map generated text to)."""
        if self._episode is None:
            raise RuntimeError("no running episode: call reset() first")
        return [a.text for a in self._valid_actions(self._server(), self._episode)[0]]

    def _candidates(self, server: Any, episode: _Episode) -> tuple[str, ...]:
        actions, held = self._valid_actions(server, episode)
        state = episode.snapshot[:2]
        rejected = frozenset(a for s, a in episode.rejected if s == state)
        view = View(actions, held, state[0], episode.focus_done, episode.focused, episode.aliases, rejected)
        return self.builder.build(view, episode.profile)

    def _valid_actions(self, server: Any, episode: _Episode) -> tuple[list[ValidAction], frozenset[int]]:
        """The valid actions on reachable objects, and the held objects, cached by room and inventory text."""
        key = episode.snapshot[:2]
        if key in episode.valid_cache:
            episode.valid_cache.move_to_end(key)
            return episode.valid_cache[key]
        kind = self.builder.types.kind
        actions = [
            ValidAction(d["action"], tuple(d["obj_ids"]), tuple(kind(t) for t in d["type_ids"]))
            for d in json.loads(server.getValidActionObjectCombinationsJSON())["validActions"]
            if d["action"] not in NEVER_OFFERED
        ]
        in_view = {int(k) for k in json.loads(server.getPossibleObjectReferentLUTJSON())}
        held = held_objects(actions, in_view, episode.snapshot[1])
        reachable = (
            in_view
            | held
            | {o for a in actions for o, k in zip(a.obj_ids, a.kinds, strict=True) if k == "structural"}
        )
        entry = [a for a in actions if reachable.issuperset(a.obj_ids)], frozenset(held)
        episode.valid_cache[key] = entry
        if len(episode.valid_cache) > VALID_CACHE:
            episode.valid_cache.popitem(last=False)
        return entry


def require_java() -> None:
    """Fail before py4j tries to start a JVM that is not there (it raises FileNotFoundError, then an
    AttributeError while cleaning up), with how to install one."""
    if shutil.which("java") is None:
        raise RuntimeError(
            "ScienceWorld needs Java (8 or newer) and `java` is not on PATH: install it, e.g. "
            "`sudo apt-get install default-jre-headless` or `conda install -c conda-forge openjdk`, then re-run"
        )


def held_objects(actions: list[ValidAction], in_view: set[int], inventory: str) -> set[int]:
    """Ids of the objects in the inventory, found by name in the inventory text.

    Needed because the valid list also names objects shut inside closed containers (bees in the hive, cups
    in a closed cupboard), which the parser then rejects ("No known action matches that input."; 12% of a
    30-action list in find-* rooms). The simulator's referent table covers what is in view in the room
    (5 ms), not the inventory; anything else is reachable only if the inventory holds it.
    """
    held_words = set(words(inventory))
    held = set()
    for action in actions:
        if len(action.obj_ids) != 1 or action.obj_ids[0] in in_view:
            continue
        if action.text.startswith("put down "):
            held.add(action.obj_ids[0])
        elif action.text.startswith("look at "):
            name = set(words(head_phrase(action.text.removeprefix("look at ")))) - LIFE_STAGE_WORDS
            if name and name <= held_words:
                held.add(action.obj_ids[0])
    return held


def snapshot(server: Any) -> tuple[str, str, int]:
    """What the agent can observe for free: the room, the inventory and the raw score (-100..100)."""
    score = round(100 * float(server.getScore()))
    return canonical(str(server.freeActionLook())), canonical(str(server.freeActionInventory())), score
