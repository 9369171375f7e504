"""CPU speed-ups of the transformers backend change no result: grouped attention computes transformers' eager
attention, and the packaged models score the same with it as with torch's fused kernel."""

from __future__ import annotations

import platform
import types

import pytest

from masa.llm.base import Message
from masa.llm.cpu import NAME, grouped_attention, keep_freed_memory


def attention_inputs(dtype):
    import torch

    generator = torch.Generator().manual_seed(0)
    batch, heads, kv_heads, queries, positions, dim = 2, 6, 2, 5, 9, 16
    query = torch.randn(batch, heads, queries, dim, generator=generator).to(dtype)
    key = torch.randn(batch, kv_heads, positions, dim, generator=generator).to(dtype)
    value = torch.randn(batch, kv_heads, positions, dim, generator=generator).to(dtype)
    allowed = torch.rand(batch, 1, queries, positions + 3, generator=generator) > 0.3
    allowed[..., 0] = True  # no empty softmax row
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    module = types.SimpleNamespace(num_key_value_groups=heads // kv_heads, training=False)
    return module, query, key, value, mask  # the mask is longer than the keys, as transformers may pass it


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 1e-6), ("bfloat16", 2e-2)])
def test_grouped_attention_computes_eager_attention(dtype, tolerance):
    import torch
    from transformers.models.llama.modeling_llama import eager_attention_forward

    module, query, key, value, mask = attention_inputs(getattr(torch, dtype))
    got, _ = grouped_attention(module, query, key, value, mask, scaling=0.25)
    expected, _ = eager_attention_forward(module, query, key, value, mask[..., : key.shape[2]], scaling=0.25)
    assert got.shape == expected.shape == (2, 5, 6, 16)
    assert torch.allclose(got.float(), expected.float(), atol=tolerance)


def test_grouped_attention_refuses_soft_capping():
    import torch

    module, query, key, value, mask = attention_inputs(torch.float32)
    with pytest.raises(ValueError, match="soft-capping"):
        grouped_attention(module, query, key, value, mask, scaling=0.25, softcap=30.0)


@pytest.mark.parametrize("model", ["smollm2_dir", "gemma_dir"])
def test_packaged_models_score_alike_with_grouped_and_fused_attention(model, request):
    """Gemma 3's prompt is longer than its 512-token sliding window, so the window's mask is exercised."""
    from masa.llm.transformers_backend import TransformersLLM

    path = str(request.getfixturevalue(model))
    conversation = [
        Message("system", "You are an agent."),
        Message(
            "user", "Rule: never repeat a useless action. " * 70 + "You see a door. Reply with one action."
        ),
    ]
    candidates = ["open door", "look around", "go to kitchen and then open the fridge"]
    scores = {}
    for attention in ("auto", "sdpa"):
        llm = TransformersLLM(name=attention, path=path, dtype="float32", attention=attention, threads=2)
        scores[llm._model.config._attn_implementation] = llm.score(conversation, candidates, "<action>")
    assert set(scores) == {NAME, "sdpa"}  # "auto" on a CPU chose the grouped attention
    assert scores[NAME] == pytest.approx(scores["sdpa"], abs=1e-3)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_allocator_is_told_to_keep_freed_memory_on_glibc():
    assert keep_freed_memory() is True
