"""The ScienceWorld adapter against the real simulator (one JVM for the module, no mocks)."""

from __future__ import annotations

import shutil

import pytest

from masa.envs.base import TaskInstance
from masa.envs.scienceworld import ScienceWorld, TaskProfile, canonical

pytestmark = [
    pytest.mark.models,  # every test here starts the simulator's JVM
    pytest.mark.skipif(shutil.which("java") is None, reason="ScienceWorld needs java on PATH"),
]

TASKS = ["find-living-thing", "find-non-living-thing"]
LIVING = (
    "Your task is to find a(n) living thing. First, focus on the thing. "
    "Then, move it to the red box in the kitchen."
)
MELTING = (
    "Your task is to measure the melting point of chocolate, which is located around the kitchen. "
    "First, focus on the thermometer. Next, focus on the chocolate. "
    "If the melting point of chocolate is above -10.0 degrees celsius, focus on the blue box. "
    "If the melting point of chocolate is below -10.0 degrees celsius, focus on the orange box. "
    "The boxes are located around the kitchen."
)


@pytest.fixture(scope="module")
def env():
    environment = ScienceWorld(TASKS, max_steps=40, max_candidates=24)
    yield environment
    environment.close()


def living(env: ScienceWorld, index: int = 0) -> TaskInstance:
    return env.instances("find-living-thing", "train")[index]


def test_splits_are_disjoint_stable_and_ordered(env):
    for category in TASKS:
        splits = {split: env.instances(category, split) for split in ("train", "dev", "test")}
        keys = [{t.instance for t in ts} for ts in splits.values()]
        assert all(keys) and not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
        assert env.instances(category, "train") == splits["train"]
        assert [int(t.instance) for t in splits["dev"]] == sorted(int(t.instance) for t in splits["dev"])
        assert {t.split for t in splits["test"]} == {"test"} and {t.env for t in splits["test"]} == {
            "scienceworld"
        }
    assert env.categories() == TASKS
    with pytest.raises(ValueError):
        env.instances(TASKS[0], "validation")


def test_reset_gives_a_short_deterministic_candidate_list(env):
    first = env.reset(living(env))
    assert first.task_description.startswith("Your task is to find a(n) living thing")
    assert "This room is called" in first.text and first.task_description in first.text
    assert 0 < len(first.candidates) <= 24 and len(set(first.candidates)) == len(first.candidates)
    assert "look around" in first.candidates and "reset task" not in first.candidates
    assert any(c.startswith("teleport to ") for c in first.candidates)  # every room is one action away
    assert set(first.candidates) <= set(env.valid_actions())
    env.reset(env.instances("find-non-living-thing", "dev")[0])  # another load in between
    assert env.reset(living(env)) == first  # same instance, same observation (object order canonicalised)


def test_gold_path_wins_with_full_score(env):
    task = living(env, 3)
    gold = env.gold_path(task)
    observation = env.reset(task)
    outcome = None
    for action in gold:
        if action.startswith("focus on "):
            assert action in observation.candidates  # the guard offers the right kind of target
        outcome = env.step(action)
        observation = outcome.observation
        if outcome.done:
            break
    assert outcome is not None and outcome.won and outcome.done and outcome.score == 1.0
    assert observation.candidates == ()
    with pytest.raises(RuntimeError):
        env.step("look around")


def test_no_ops_unknown_ambiguous_and_repeated_actions(env):
    env.reset(living(env))
    assert env.step("look around").no_op  # the same room text as the reset observation
    assert env.step("look around").no_op
    moved = env.step("teleport to kitchen")
    assert not moved.no_op and moved.score > 0  # partial credit for reaching the answer box's room
    assert env.step("teleport to kitchen").no_op  # same reply, nothing changed
    assert env.step("xyzzy").no_op
    # The agent holds an orange and the kitchen's bowl has one too: the simulator asks which one.
    ambiguous = env.step("pick up orange")
    assert ambiguous.no_op and "Ambiguous" in ambiguous.observation.text and not ambiguous.done
    after = env.step("look around")  # not swallowed as an answer to the prompt
    assert after.observation.text.startswith("This room is called the kitchen") and not after.no_op
    assert env.step("open door to hallway").no_op  # "The door is already open."


def test_a_listed_action_the_parser_refuses_is_not_offered_again(env):
    # Two oranges held: the simulator's own valid list offers a "move orange in inventory" it then finds
    # ambiguous. Once refused in a state, the adapter stops offering it there.
    env.reset(env.instances("find-living-thing", "dev")[0])
    held_two = env.step("pick up orange in bowl").observation
    action = "move orange in inventory to red box"
    assert action in held_two.candidates
    refused = env.step(action)
    assert refused.no_op and refused.observation.text.startswith("Ambiguous")
    assert action not in refused.observation.candidates and action in env.valid_actions()


def test_focus_guard_offers_only_safe_targets(env):
    task = living(env)
    env.reset(task)
    outside = env.step("teleport to outside").observation
    focus = [c for c in outside.candidates if c.startswith("focus on ")]
    assert focus and "focus on air" in env.valid_actions() and "focus on air" not in focus
    assert not {"focus on axe", "focus on fountain", "focus on ground"} & set(focus)
    for action in focus:  # each one is accepted by the simulator (a wrong focus would end at -100)
        env.reset(task)
        before = env.step("teleport to outside").score
        outcome = env.step(action)
        assert outcome.score > before and not outcome.done
        assert not any(c.startswith("focus on ") for c in outcome.observation.candidates)  # focus is spent


def test_step_budget_ends_the_episode(env):
    env.reset(living(env))
    env.max_steps, saved = 2, env.max_steps
    try:
        assert not env.step("wait1").done
        assert env.step("wait1").done
    finally:
        env.max_steps = saved


def test_task_profile_orders_focus_steps():
    living_profile = TaskProfile.parse(LIVING)
    assert living_profile.target_class == "living" and living_profile.focus_budget == 1
    assert living_profile.focus_allowed(("dove",), "animal", 0)
    assert not living_profile.focus_allowed(("red box",), "box", 0)
    assert not living_profile.focus_allowed(("dove",), "animal", 1)  # the one focus is spent
    melting = TaskProfile.parse(MELTING)
    assert melting.focus_budget == 3
    assert melting.focus_allowed(("thermometer",), "item", 0)
    assert not melting.focus_allowed(("chocolate",), "item", 0)  # out of order
    assert melting.focus_allowed(("chocolate",), "item", 1)
    assert melting.focus_allowed(("blue box",), "box", 2) and melting.focus_allowed(("orange box",), "box", 2)
    assert not melting.focus_allowed(("green box",), "box", 2)


def test_canonical_sorts_listed_objects_only():
    text = (
        "This room is called the hallway. In it, you see: \n\tthe agent\n\ta picture\nYou also see:\n\tB\n\tA"
    )
    assert canonical(text) == (
        "This room is called the hallway. In it, you see: \n\ta picture\n\tthe agent\nYou also see:\n\tA\n\tB"
    )
    assert canonical("You teleport to the kitchen.") == "You teleport to the kitchen."


def test_a_spawned_environment_plays_an_instance_exactly_like_its_original(env):
    """The engine's pool: a copy has the same settings and splits, its own JVM, and the same episodes."""
    twin = env.spawn()
    try:
        task = living(env, 1)
        assert twin.instances("find-living-thing", "train") == env.instances("find-living-thing", "train")
        first, second = env.reset(task), twin.reset(task)
        assert first == second
        action = first.candidates[1]
        assert env.step(action) == twin.step(action)
    finally:
        twin.close()


def test_the_expert_path_gives_decisions_with_every_equivalent_action():
    """Pinned on a recorded gold path (find-living-thing, test variation 225, the default's 12 candidates,
    the first load of a fresh JVM): the no-op door openings are no decisions; a room of the expert's current
    leg is as good by teleport; any guarded focus is as good before the first; a shorter name of the
    expert's object is the same action."""
    environment = ScienceWorld(TASKS, max_steps=8, max_candidates=12)
    try:
        task = TaskInstance("scienceworld", "find-living-thing", "225", "test")
        states, unexpressed = environment.expert_states(task)
        assert environment.max_steps == 8  # restored after the longer replay
    finally:
        environment.close()
    assert unexpressed == 0
    assert [s.expert_action for s in states] == [
        "go to hallway", "go to kitchen", "go to outside", "look around", "focus on common toad",
        "pick up common toad", "go to greenhouse", "go to hallway", "go to living room",
        "move egg common toad in inventory to orange box",
    ]  # fmt: skip
    assert [s.step for s in states] == list(range(10))
    assert states[0].acceptable == {"go to hallway", "teleport to kitchen", "teleport to outside"}
    assert states[2].acceptable == {"go to outside"}
    assert states[4].acceptable == {"focus on baby baby wolf", "focus on common toad", "focus on egg turtle"}
    assert states[5].acceptable == {"pick up common toad"}  # focused: only that object will do
    assert states[9].acceptable == {"move common toad to orange box"}
    assert all(s.acceptable <= set(s.observation.candidates) for s in states)
    # the agent's view: history holds the expert's earlier actions, no-op openings included
    assert [action for _, action in states[1].history] == [
        "open door to hallway",
        "go to hallway",
        "open door to kitchen",
    ]
