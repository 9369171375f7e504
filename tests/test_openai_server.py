"""The OpenAI-compatible backend against a real server: llama.cpp's (`llama_cpp.server`, OpenAI's chat API)
serving the packaged SmolLM2 GGUF on loopback, with real ScienceWorld episodes played through the Agent.

The server comes from `bash .ci/llama-server-install.sh` (a prebuilt llama-cpp-python, nothing compiled), which
CI runs; elsewhere the test is skipped. Only 127.0.0.1 is used, and every wait is bounded.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from masa.llm.base import Message
from masa.llm.openai_backend import OpenAILLM, ServerError
from masa.rollout.agent import Agent, AgentConfig
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]
SERVER_DIR = Path(os.environ.get("MASA_LLAMA_SERVER", REPO / ".llama-server"))
ALIAS = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_with_parent() -> None:
    """Runs in the server's process: it gets SIGTERM when the test process dies, even if pytest is killed
    before the fixture's teardown (Linux prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory) -> Iterator[str]:
    if not (SERVER_DIR / "fastapi" / "__init__.py").is_file():
        pytest.skip(f"llama.cpp's server web stack is not in {SERVER_DIR}: bash .ci/llama-server-install.sh")
    from masa.llm.packaged import PACKAGED_MODELS, locate_part

    (part,) = PACKAGED_MODELS[ALIAS].parts  # one part: the GGUF file itself
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(locate_part(part))]
    command += ["--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port)]
    # one thread: llama.cpp's threads spin while they wait, which collapses on a busy 2-core machine
    command += ["--n_ctx", "4096", "--n_threads", "1", "--n_threads_batch", "1"]
    env = {**os.environ, "PYTHONPATH": str(SERVER_DIR)}
    with log.open("w") as out:
        server = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=stop_with_parent
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(120):  # up to 60 s to load the model and bind
            if server.poll() is not None:
                pytest.fail(f"llama.cpp's server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"llama.cpp's server did not answer in 60 s:\n{log.read_text()[-3000:]}")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def test_agent_plays_scienceworld_through_the_server_and_counts_its_tokens(server_url):
    from masa.envs.scienceworld import ScienceWorld

    llm = OpenAILLM(name="llama.cpp", base_url=server_url, model=ALIAS, max_concurrency=1, timeout=120)
    agent = Agent(llm, AgentConfig(policy="generate", max_new_tokens=16))
    env = ScienceWorld(tasks=["find-living-thing"], max_steps=2, max_candidates=8)
    try:
        tasks = env.instances("find-living-thing", "dev")[:2]
        episodes = [agent.play(env, task, "", seed, 0.25) for seed, task in enumerate(tasks)]
    finally:
        env.close()
    print(
        f"\nllama.cpp server episodes: {[(e.task, e.steps, e.prompt_tokens, e.completion_tokens) for e in episodes]}"
    )
    for episode in episodes:
        assert episode.llm_calls == episode.steps > 0  # one chat request per step
        # the prompt (role, task, observation, candidate actions) is hundreds of tokens; replies are capped
        assert episode.prompt_tokens > 100 * episode.steps
        assert 0 < episode.completion_tokens <= 16 * episode.steps
    assert llm.usage.calls == sum(e.llm_calls for e in episodes)
    assert llm.usage.prompt_tokens == sum(e.prompt_tokens for e in episodes)


def test_concurrent_requests_each_get_their_own_reply_and_usage(server_url):
    llm = OpenAILLM(name="llama.cpp", base_url=server_url, model=ALIAS, max_concurrency=3, timeout=120)
    short = [Message("user", "Say hi.")]
    long = [Message("user", "Describe a kitchen in one sentence. " * 20)]
    replies = llm.generate([short, long, short], max_new_tokens=4)
    assert len(replies) == 3 and all(r.text and 0 < r.completion_tokens <= 4 for r in replies)
    assert replies[1].prompt_tokens > replies[0].prompt_tokens == replies[2].prompt_tokens
    assert llm.usage.calls == 3 and llm.usage.prompt_tokens == sum(r.prompt_tokens for r in replies)


def test_a_request_that_outlives_its_timeout_fails_naming_the_server(server_url):
    llm = OpenAILLM(
        name="llama.cpp", base_url=server_url, model=ALIAS, timeout=0.001, max_retries=1, backoff=0.01
    )
    with pytest.raises(
        ServerError, match=rf"{server_url}/chat/completions .*failed after retries: \w*Timeout"
    ):
        llm.generate([[Message("user", "Say hi.")]], max_new_tokens=4)
