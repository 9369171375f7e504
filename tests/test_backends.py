"""The LLM backends: the transformers one on a real packaged model, the server one against a real HTTP server
on loopback, the vLLM one up to the engine boundary (vLLM itself needs a GPU)."""

from __future__ import annotations

import json
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from masa.llm.base import Message
from masa.llm.openai_backend import OpenAILLM, ServerError

CONV = [Message("system", "You are an agent."), Message("user", "You see a door. Reply with one action.")]


LONG = [CONV[0], Message("user", "Rule: never repeat a useless action. " * 70 + CONV[1].content)]


@pytest.mark.parametrize(("model", "conv"), [("smollm2_dir", CONV), ("gemma_dir", LONG)])
def test_prefix_cached_scores_equal_full_sequence_scores(model, conv, request):
    """Gemma's prompt is longer than its 512-token sliding window, so the batched suffix pass must respect it."""
    import torch

    from masa.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM(name="s", path=str(request.getfixturevalue(model)), dtype="float32")
    candidates = ["open door", "go to kitchen and then open the fridge"]
    fast = llm.score(conv, candidates, prefill="<action>")
    prefix = llm._encode(llm.chat_prompt(conv, "<action>"))
    if conv is LONG:
        assert len(prefix) > 512, len(prefix)  # past Gemma 3's sliding window, or the test shows nothing
    for candidate, value in zip(candidates, fast, strict=True):
        ids = llm._encode(candidate)
        with torch.inference_mode():
            logits = llm._model(input_ids=torch.tensor([prefix + ids])).logits[0]
        logprobs = torch.log_softmax(logits.float(), -1)
        expected = sum(logprobs[len(prefix) - 1 + i, t].item() for i, t in enumerate(ids)) / len(ids)
        assert value == pytest.approx(expected, abs=1e-3)
    assert llm.usage.calls == 1


def test_generation_is_batched_and_counted(smollm2_dir):
    from masa.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM(name="s", path=str(smollm2_dir))
    out = llm.generate([CONV, [*CONV[:1], Message("user", "Say hi.")]], max_new_tokens=5, prefill="<action>")
    assert len(out) == 2 and all(g.text.startswith("<action>") for g in out)
    assert all(0 < g.completion_tokens <= 5 for g in out)
    assert llm.usage.calls == 2 and llm.usage.completion_tokens == sum(g.completion_tokens for g in out)


class ScriptedServer(BaseHTTPRequestHandler):
    statuses: ClassVar[list[int]] = []
    requests: ClassVar[list[dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ScriptedServer.requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        status = ScriptedServer.statuses.pop(0) if ScriptedServer.statuses else 200
        payload = (
            {
                "choices": [{"message": {"content": " open door</action>"}}],
                "usage": {"prompt_tokens": 21, "completion_tokens": 4},
            }
            if status == 200
            else {"error": "busy"}
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), ScriptedServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    ScriptedServer.statuses, ScriptedServer.requests = [], []
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()


def test_openai_backend_retries_transient_errors_and_counts_tokens(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "secret")
    ScriptedServer.statuses = [503, 429]
    llm = OpenAILLM(name="srv", base_url=server, model="m", api_key_env="MY_KEY", backoff=0.01)
    out = llm.generate([CONV], max_new_tokens=8, prefill="<action>")
    assert out[0].text == "<action> open door</action>"
    assert len(ScriptedServer.requests) == 3 and ScriptedServer.requests[-1]["path"] == "/v1/chat/completions"
    body = ScriptedServer.requests[-1]["body"]
    assert (
        body["messages"][-1] == {"role": "assistant", "content": "<action>"}
        and body["continue_final_message"]
    )
    assert ScriptedServer.requests[-1]["auth"] == "Bearer secret"
    assert llm.usage.as_dict() == {"calls": 1, "prompt_tokens": 21, "completion_tokens": 4}


def test_openai_backend_fails_clearly_when_the_server_stays_down(server):
    ScriptedServer.statuses = [503] * 10
    llm = OpenAILLM(name="srv", base_url=server, model="m", max_retries=2, backoff=0.01)
    with pytest.raises(ServerError, match=r"failed after retries: HTTP 503"):
        llm.generate([CONV], max_new_tokens=8)
    unreachable = OpenAILLM(
        name="srv", base_url="http://127.0.0.1:9/v1", model="m", max_retries=1, backoff=0.01
    )
    with pytest.raises(ServerError, match="ConnectionError"):
        unreachable.generate([CONV], max_new_tokens=8)


def test_vllm_backend_scores_from_prompt_logprobs(monkeypatch):
    """A stand-in for the vllm module records what the backend asks of the engine."""
    calls = {}

    class Tokenizer:
        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "P:" + messages[-1]["content"] + "|"

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": list(range(len(text.split())))}

    class Logprob:
        def __init__(self, value):
            self.logprob = value

    class Engine:
        def __init__(self, **kwargs):
            calls["init"] = kwargs

        def get_tokenizer(self):
            return Tokenizer()

        def generate(self, prompts, params):
            calls["prompts"], calls["params"] = prompts, params
            outs = []
            for p in prompts:
                ids = list(range(len(p.split())))
                lps = [None] + [{t: Logprob(-float(t))} for t in ids[1:]]
                outs.append(
                    types.SimpleNamespace(
                        prompt_token_ids=ids,
                        prompt_logprobs=lps,
                        outputs=[types.SimpleNamespace(text="x", token_ids=[1])],
                    )
                )
            return outs

    fake = types.SimpleNamespace(LLM=Engine, SamplingParams=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from masa.llm.vllm_backend import VLLMLLM

    llm = VLLMLLM(name="v", model="/models/qwen", tensor_parallel_size=2)
    assert calls["init"] == {"model": "/models/qwen", "tensor_parallel_size": 2, "dtype": "bfloat16"}
    scores = llm.score(CONV, ["open door", "look"], prefill="<action> ")
    prefix = llm.chat_prompt(CONV, "<action> ")
    assert calls["prompts"] == [prefix + "open door", prefix + "look"]
    assert calls["params"]["prompt_logprobs"] == 0 and calls["params"]["max_tokens"] == 1
    # the candidate's tokens are the positions after the prefix; their mean log-prob is the score
    start = len(prefix.split())
    for candidate, score in zip(["open door", "look"], scores, strict=True):
        positions = range(start, len((prefix + candidate).split()))
        assert score == pytest.approx(-sum(positions) / len(positions))
    assert llm.generate([CONV], 4)[0].text == "x"


@pytest.mark.parametrize("model", ["smollm2_dir", "gemma_dir"])
def test_reusing_the_previous_prompt_cache_gives_the_same_scores(model, request):
    """Consecutive agent steps share role, task and skills; Gemma's sliding-window layers (512 tokens) are
    exercised by a prompt longer than the window."""
    from masa.llm.transformers_backend import TransformersLLM

    path = str(request.getfixturevalue(model))
    skills = " ".join(
        f"Skill {i}: look around before acting and never repeat a useless action." for i in range(60)
    )
    steps = [
        [Message("system", "You are an agent."), Message("user", f"{skills}\nStep {i}: you see a door.")]
        for i in range(1, 4)
    ]
    candidates = ["open door", "look around", "go to kitchen"]
    warm = TransformersLLM(name="warm", path=path)
    warm_scores = [warm.score(conv, candidates, prefill="<action>") for conv in steps]
    cold_scores = [
        TransformersLLM(name="cold", path=path).score(conv, candidates, prefill="<action>") for conv in steps
    ]
    for w, c in zip(warm_scores, cold_scores, strict=True):
        assert w == pytest.approx(c, abs=0.05)  # bf16 kernels differ slightly with the split point
    if model == "smollm2_dir":
        assert warm.reused_prefix_tokens > 1000  # the shared prompt was not recomputed


def test_backoff_doubles_up_to_its_cap():
    from masa.llm.openai_backend import retry_delay

    assert [retry_delay(a, 1.0, 5.0) for a in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_openai_backend_sends_chat_template_arguments(server):
    llm = OpenAILLM(
        name="srv", base_url=server, model="m", chat_template_kwargs={"enable_thinking": False}, backoff=0.01
    )
    llm.generate([CONV], max_new_tokens=8)
    assert ScriptedServer.requests[-1]["body"]["chat_template_kwargs"] == {"enable_thinking": False}
    OpenAILLM(name="srv", base_url=server, model="m").generate([CONV], max_new_tokens=8)
    assert "chat_template_kwargs" not in ScriptedServer.requests[-1]["body"]


def test_load_llm_passes_engine_settings_from_the_config(monkeypatch):
    """Tensor parallelism and Qwen3's non-thinking switch reach vLLM's engine and chat template."""
    seen = {}

    class Tokenizer:
        def apply_chat_template(self, messages, tokenize, add_generation_prompt, **kwargs):
            seen["template"] = kwargs
            return "P"

    class Engine:
        def __init__(self, **kwargs):
            seen["engine"] = kwargs

        def get_tokenizer(self):
            return Tokenizer()

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=Engine))
    from masa.stages.context import load_llm

    spec = {
        "backend": "vllm",
        "path": "Qwen/Qwen3-14B",
        "tensor_parallel_size": 2,
        "chat_template_kwargs": {"enable_thinking": False},
    }
    llm = load_llm(spec, None, "qwen3-14b")
    llm.chat_prompt(CONV)
    assert seen["engine"] == {"model": "Qwen/Qwen3-14B", "tensor_parallel_size": 2, "dtype": "bfloat16"}
    assert seen["template"] == {"enable_thinking": False}
    served = load_llm({"backend": "openai", "base_url": "u", "model": "m", "max_retries": 7}, None, "t")
    assert served.max_retries == 7


def test_chat_template_arguments_reach_the_transformers_template(smollm2_dir):
    """Qwen3's template reads `enable_thinking`; a template that does the same shows the switch arrives."""
    from masa.llm.transformers_backend import TransformersLLM

    template = "{% if enable_thinking is defined and not enable_thinking %}<no-think>{% endif %}{{ messages[-1].content }}"
    prompts = []
    for kwargs in ({}, {"enable_thinking": False}):
        llm = TransformersLLM(name="s", path=str(smollm2_dir), chat_template_kwargs=kwargs)
        llm._tok.chat_template = template
        prompts.append(llm.chat_prompt(CONV))
    assert prompts == [CONV[-1].content, "<no-think>" + CONV[-1].content]


def test_openai_backend_names_a_missing_key_variable(server, monkeypatch):
    monkeypatch.delenv("MISSING_KEY", raising=False)
    llm = OpenAILLM(name="srv", base_url=server, model="m", api_key_env="MISSING_KEY")
    with pytest.raises(ServerError, match="api_key_env names MISSING_KEY, which is not set"):
        llm.generate([CONV], max_new_tokens=8)
    assert ScriptedServer.requests == []
