"""Kill-and-resume: a search process is SIGKILLed at chosen points (and at random moments), re-run, and must
finish with the same library and records as an uninterrupted run, without playing a finished episode again.

The child (tests/crash_child.py) runs the real hill climbing / UCB code, evaluator and rollout cache with a
deterministic fake model and environment, and stops at the requested point so the kill lands exactly there.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHILD = REPO / "tests" / "crash_child.py"
EPISODE_STEPS = 5  # the child's max_steps: the most model calls one interrupted episode can cost


def start(search: str, workdir: Path, pause: str = "") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(CHILD), search, str(workdir)] + (["--pause", pause] if pause else [])
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_to_end(search: str, workdir: Path) -> None:
    process = start(search, workdir)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()


def kill_at(search: str, workdir: Path, pause: str) -> None:
    """Run until the child reports it reached ``pause``, then SIGKILL it there."""
    marker = workdir / "paused"
    marker.unlink(missing_ok=True)
    process = start(search, workdir, pause)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert process.poll() is None, (
            f"child ended before reaching {pause}: {process.stderr.read().decode()}"
        )
        assert time.monotonic() < deadline, f"child never reached {pause}"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (workdir / "result.json").exists()


def kill_during(search: str, workdir: Path, calls: int) -> bool:
    """SIGKILL the child, without its cooperation, as soon as it has made ``calls`` model calls: wherever it
    is by then (mid-episode, in a cache or checkpoint write). True if it was still running."""
    process = start(search, workdir)
    log = workdir / "llm_calls.log"
    while process.poll() is None:
        if log.is_file() and model_calls(workdir) >= calls:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return True
        time.sleep(0.001)
    return False


def outcome(workdir: Path) -> dict:
    """The run's results without what only describes this run's cost (wall time, which episodes were
    served from the cache, the model calls they saved): those legitimately differ after a resume."""
    result = json.loads((workdir / "result.json").read_text())
    cost = {"steps", "llm_calls", "prompt_tokens", "completion_tokens", "seconds", "cache_hits"}
    # The teacher's usage and fallbacks stay: a resumed search must report the whole search's (its seconds
    # are wall time and go).
    for candidate in result["candidates"]:
        candidate["summary"] = {k: v for k, v in candidate["summary"].items() if k not in cost}
        for episode in candidate["episodes"]:
            for key in ("seconds", "cached", "llm_calls", "prompt_tokens", "completion_tokens"):
                episode.pop(key)
    return result


def played(workdir: Path) -> list[str]:
    return (workdir / "episodes.log").read_text().split()


def model_calls(workdir: Path) -> int:
    return len((workdir / "llm_calls.log").read_text().splitlines())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run per search, the yardstick of every interrupted one."""
    runs = {}
    for search in ("hillclimb", "ucb"):
        workdir = tmp_path_factory.mktemp(f"uninterrupted-{search}")
        run_to_end(search, workdir)
        runs[search] = workdir
    return runs


def assert_same_as_uninterrupted(workdir: Path, reference: Path, exact_calls: bool = True) -> None:
    resumed, whole = outcome(workdir), outcome(reference)
    assert (
        resumed["teacher_usage"] == whole["teacher_usage"]
    )  # calls, tokens and fallbacks of the whole search
    assert resumed["teacher_replies"] == whole["teacher_replies"]
    assert resumed == whole
    episodes = played(workdir)
    assert [k for k, n in Counter(episodes).items() if n > 1] == []  # no finished episode played twice
    assert set(episodes) <= set(played(reference))
    if exact_calls:  # killed between episodes: not one model call repeated
        assert model_calls(workdir) == model_calls(reference)
    else:  # killed at a random moment: at most the one episode in flight is replayed
        assert model_calls(reference) <= model_calls(workdir) <= model_calls(reference) + EPISODE_STEPS


def test_reference_runs_exercise_acceptance_and_the_tree(reference):
    """The kill points below mean something only if the runs accept, reject and branch."""
    hill = outcome(reference["hillclimb"])
    assert [c["accepted"] for c in hill["candidates"]][1:].count(True) >= 1
    assert [c["accepted"] for c in hill["candidates"]][1:].count(False) >= 2
    assert hill["stopped_by"] == "patience"
    tree = outcome(reference["ucb"])
    assert len({c["parent_id"] for c in tree["candidates"]}) >= 3  # children below more than the root
    for run in (hill, tree):  # the teacher both answers and falls back, so its counts can be told apart
        usage = run["teacher_usage"]
        assert usage["calls"] > usage["fallbacks"] > 0
        assert {c["teacher"] for c in run["candidates"]} >= {"llm"}
    for search in (
        "hillclimb",
        "ucb",
    ):  # six episodes per candidate, repeated skill texts served by the cache
        workdir = reference[search]
        assert len(played(workdir)) == len(set(played(workdir))) >= 30


@pytest.mark.parametrize(
    ("search", "pauses"),
    [
        # right after the checkpoint of the first accepted iteration (issue 4's test)
        pytest.param("hillclimb", ["accepted:1"], id="hillclimb-after-first-accepted-iteration"),
        pytest.param("hillclimb", ["checkpoint:1"], id="hillclimb-after-initial-evaluation"),
        # mid-iteration: 3 of the 6 episodes of iteration 1 played
        pytest.param("hillclimb", ["episode:9"], id="hillclimb-mid-iteration"),
        # inside the checkpoint write of iteration 2: temporary file written, not yet renamed
        pytest.param("hillclimb", ["replace:3"], id="hillclimb-during-checkpoint-write"),
        pytest.param("hillclimb", ["episode:4", "episode:7", "replace:2"], id="hillclimb-killed-three-times"),
        pytest.param("ucb", ["checkpoint:3"], id="ucb-after-iteration-2"),
        pytest.param("ucb", ["episode:16"], id="ucb-mid-iteration"),
        pytest.param("ucb", ["replace:4"], id="ucb-during-checkpoint-write"),
        pytest.param("ucb", ["episode:20", "checkpoint:2"], id="ucb-killed-twice"),
    ],
)
def test_sigkill_at_a_chosen_point_then_rerun_gives_the_uninterrupted_result(
    search, pauses, reference, tmp_path
):
    for pause in pauses:
        kill_at(search, tmp_path, pause)
    assert (tmp_path / "checkpoint.json").is_file()
    run_to_end(search, tmp_path)
    assert_same_as_uninterrupted(tmp_path, reference[search])


@pytest.mark.parametrize("search", ["hillclimb", "ucb"])
def test_sigkill_at_random_moments_then_rerun_gives_the_uninterrupted_result(
    search, reference, tmp_path_factory
):
    total = model_calls(reference[search])
    rng = random.Random(f"kill/{search}")
    killed = 0
    for calls in sorted(rng.sample(range(1, total), 4)):
        workdir = tmp_path_factory.mktemp(f"{search}-random")
        killed += kill_during(search, workdir, calls)
        run_to_end(search, workdir)
        assert_same_as_uninterrupted(workdir, reference[search], exact_calls=False)
    assert killed >= 3  # the kills landed while the search was running
