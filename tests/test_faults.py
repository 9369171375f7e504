"""Faults outside the agent: a simulator process that dies is restarted and the episode retried once, then
recorded as failed with the reason; an unreachable model server is retried with backoff, then the job fails
with a message naming the server."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
from pathlib import Path

import pytest

from masa.envs.base import EnvironmentFault
from masa.llm.base import Message
from masa.llm.openai_backend import OpenAILLM, ServerError
from masa.rollout.agent import Agent, AgentConfig
from masa.rollout.evaluator import Evaluator, RolloutCache
from masa.skills.library import Skill, SkillLibrary
from tests.fakes import CorridorEnv, ScriptedLLM, fake_settings

LIBRARY = SkillLibrary(general_skills=[Skill("g1", "Go", "Always go forward.")])


class DyingCorridor(CorridorEnv):
    """Its 'process' dies at the second step of the next ``deaths`` episodes."""

    def __init__(self, deaths: int):
        super().__init__()
        self.deaths, self.restarts, self.steps = deaths, 0, 0

    def reset(self, task):
        self.steps = 0
        return super().reset(task)

    def step(self, action):
        self.steps += 1
        if self.steps == 2 and self.deaths > 0:
            self.deaths -= 1
            raise EnvironmentFault("game process exited with code -9")
        return super().step(action)

    def restart(self):
        self.restarts += 1
        super().restart()


def evaluator(env, cache_dir=None, llm=None):
    llm = llm or ScriptedLLM("fake", liked="forward")
    return Evaluator(
        Agent(llm, AgentConfig()), env, fake_settings(), cache=RolloutCache(cache_dir), progress=False
    )


def test_a_dead_environment_is_restarted_and_the_episode_replayed(caplog):
    tasks = CorridorEnv().instances("walk", "train")
    clean = evaluator(CorridorEnv()).run(LIBRARY, tasks)
    env = DyingCorridor(deaths=1)
    with caplog.at_level(logging.WARNING, logger="masa.rollout.evaluator"):
        result = evaluator(env).run(LIBRARY, tasks)
    assert env.restarts == 1
    assert [e.trajectory for e in result.episodes] == [e.trajectory for e in clean.episodes]
    assert result.summary.failed == 0 and not any(e.error for e in result.episodes)
    assert "environment failed (attempt 1): EnvironmentFault: game process exited with code -9" in caplog.text


def test_an_environment_that_dies_again_is_recorded_as_failed_with_the_reason_and_not_cached(
    tmp_path, caplog
):
    tasks = CorridorEnv().instances("walk", "train")
    env = DyingCorridor(deaths=2)  # the first episode dies, and dies again on the retry
    with caplog.at_level(logging.WARNING, logger="masa.rollout.evaluator"):
        result = evaluator(env, tmp_path).run(LIBRARY, tasks)
    first, *rest = result.episodes
    assert env.restarts == 2
    assert first.error == "EnvironmentFault: game process exited with code -9"
    assert (first.won, first.reward, first.steps) == (False, 0.0, 0)
    assert all(not e.error and e.won for e in rest)  # the search goes on with the other episodes
    assert result.summary.failed == 1
    assert "recorded as failed after a restart and a retry" in caplog.text
    again = evaluator(CorridorEnv(), tmp_path).run(LIBRARY, tasks)
    assert [e.cached for e in again.episodes] == [False, True, True]  # the failed one is played again
    assert again.episodes[0].won


def java_children() -> list[int]:
    """Our java child processes (py4j starts the JVM as a direct child), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            if name == "java" and int(rest[1]) == os.getpid() and rest[0] != "Z":
                found.append(int(entry))
    return found


@pytest.mark.models  # starts the real simulator
def test_a_killed_scienceworld_jvm_is_restarted_and_the_episode_replayed_then_failed_if_it_dies_again():
    pytest.importorskip("scienceworld")
    from masa.envs.scienceworld import ScienceWorld

    class KilledJVM(ScienceWorld):
        """Kills its real java child (SIGKILL) before the second step of the next ``kills`` episodes."""

        kills = 0

        def step(self, action):
            if self._episode is not None and self._episode.steps == 1 and self.kills > 0:
                self.kills -= 1
                for pid in java_children():
                    os.kill(pid, signal.SIGKILL)
            return super().step(action)

    logging.getLogger("py4j").setLevel(logging.CRITICAL)  # py4j logs every refused reconnect at ERROR
    env = KilledJVM(["find-living-thing"], max_steps=3, max_candidates=8)
    try:
        tasks = env.instances("find-living-thing", "train")[:1]
        play = evaluator(env, llm=ScriptedLLM("fake")).run
        clean = play(LIBRARY, tasks).episodes[0]
        env.kills = 1
        replayed = play(LIBRARY, tasks).episodes[0]
        assert not replayed.error and replayed.trajectory == clean.trajectory
        env.kills = 2
        failed = play(LIBRARY, tasks)
        # Py4JNetworkError or Py4JError, depending on where the kill caught the bridge
        assert failed.episodes[0].error.startswith("Py4J") and failed.summary.failed == 1
    finally:
        env.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_an_unreachable_model_server_is_retried_with_backoff_then_fails_naming_it(monkeypatch):
    import masa.llm.openai_backend as backend

    sleeps: list[float] = []
    monkeypatch.setattr(backend.time, "sleep", sleeps.append)
    url = f"http://127.0.0.1:{closed_port()}/v1"
    llm = OpenAILLM(name="teacher", base_url=url, model="qwen", max_retries=3, backoff=0.5)
    with pytest.raises(ServerError) as err:
        llm.generate([[Message("user", "hi")]], max_new_tokens=4)
    assert len(sleeps) == 3 and all(b > a > 0 for a, b in itertools.pairwise(sleeps))  # backoff grows
    message = str(err.value)
    assert url in message and "qwen" in message and "ConnectionError" in message
    assert llm.usage.calls == 0


def test_failed_episodes_are_counted_apart_from_the_reward_and_never_compared(tmp_path):
    """Issue 13 group 3: a failed episode is not a reward of 0 in the summary nor in acceptance."""
    from masa.search.acceptance import paired_differences

    tasks = CorridorEnv().instances("walk", "train")
    result = evaluator(DyingCorridor(deaths=2), tmp_path).run(LIBRARY, tasks)
    clean = evaluator(CorridorEnv()).run(LIBRARY, tasks)
    assert result.summary.failed == 1 and result.summary.episodes == 3
    assert result.summary.reward_mean == clean.summary.reward_mean  # over the two played episodes
    assert result.summary.success_rate == 1.0
    assert len(paired_differences(result.episodes, clean.episodes)) == 2  # the failed pair is left out


def test_an_evaluation_whose_failures_pass_the_share_fails_its_job_with_the_cause(tmp_path, monkeypatch):
    import masa.stages.evaluate as stage
    from masa.stages.context import Context, TaskSets

    env = DyingCorridor(deaths=100)  # every simulator dies on every attempt
    tasks = env.instances("walk", "test")
    sets = TaskSets({"walk": env.instances("walk", "train")}, [], {"walk": tasks})
    ctx = Context(evaluator(env), env, sets, LIBRARY, 0)
    monkeypatch.setattr(stage, "open_context", lambda *args, **kwargs: ctx)
    out = tmp_path / "no_skill.json"
    settings = {"temperature": 0.0, "seeds": [0], "bootstrap_resamples": 100, "max_failed_share": 0.5}
    with pytest.raises(stage.EvaluationFailed, match=r"3 of 3 episodes failed.*game process exited"):
        stage.evaluate_method(
            "no_skill", {"name": "fake"}, {"name": "corridor"}, {}, settings, None, "", None, str(out)
        )
    assert not out.exists()  # no record that would read as a score of 0


def test_no_java_fails_before_starting_scienceworld_with_the_install_hint(monkeypatch):
    """Issue 13 group 6: not FileNotFoundError from py4j plus an AttributeError."""
    from masa.envs import scienceworld

    monkeypatch.setattr(scienceworld.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"needs Java .*`java` is not on PATH: install it"):
        scienceworld.require_java()
