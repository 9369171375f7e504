"""What makes a transformers model fast on a CPU: grouped-query attention as plain matrix products, and an
allocator that keeps freed memory.

Attention. An agent step is prefill: a few hundred new prompt tokens per episode against a cached prefix, under the
engine's block-causal mask. With such a mask, torch's fused CPU attention kernel (``sdpa``) ran at about half
the speed of the same arithmetic written as ``softmax(Q K^T) V`` batched matrix products (9.5 ms against
4.6 ms per SmolLM2 layer for 4 episodes x 250 new tokens over 560 positions, bf16, 2 cores), and attention was
40% of a step's model time. The query heads that share a key/value head are multiplied as one matrix, so the
keys and values are never repeated per head (transformers' ``eager`` copies them).

The arithmetic is transformers' ``eager`` attention (products in the model's dtype, softmax accumulated in
float32), with the scale applied to the queries. Generation and one-by-one scoring use the same function, so the engine and ``Agent.play`` still
score alike.

Memory. A forward pass allocates and frees tensors of a few megabytes per layer (attention weights, MLP
activations). glibc serves blocks that large with fresh ``mmap`` pages and returns them on free, so every
layer pays page faults and zeroing again: the attention above took 10 ms per layer instead of 4 ms, and a
whole engine pass ran 10-25% slower. ``keep_freed_memory`` makes glibc recycle such blocks instead (what
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` do when set before start; PyTorch's CPU tuning guides
preload jemalloc or tcmalloc for the same reason). The price is a resident size that stays at its peak.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

log = logging.getLogger(__name__)
NAME = "masa_grouped"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems


def grouped_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function signature: query [batch, heads, q, dim], key and value
    [batch, kv_heads, k, dim], an additive mask [batch, 1, q, ≥k] or None; returns [batch, q, heads, dim]."""
    import torch

    if kwargs.get("softcap") is not None or (dropout and module.training):
        raise ValueError(f"{NAME} attention supports neither logit soft-capping nor dropout")
    batch, heads, queries, dim = query.shape
    kv_heads, positions = key.shape[1], key.shape[2]
    # Scaling the queries costs a pass over [q, dim] instead of [q, k]; exact when the scale is a power of
    # two (head sizes 64 and 256), else within the model dtype's rounding of eager's order.
    grouped = (query * scaling).reshape(batch, kv_heads, heads // kv_heads * queries, dim)
    weights = torch.matmul(grouped, key.transpose(-1, -2)).view(batch, heads, queries, positions)
    if attention_mask is not None:
        weights = weights.add_(attention_mask[..., :positions])
    weights = torch.softmax(weights, dim=-1)  # reduced-precision inputs are accumulated in float32
    out = torch.matmul(weights.view(batch, kv_heads, -1, positions), value)
    return out.view(batch, heads, queries, dim).transpose(1, 2).contiguous(), None


def register() -> str:
    """Make ``NAME`` a valid ``attn_implementation`` (idempotent); its masks are ``eager``'s additive ones."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(NAME, grouped_attention)
    AttentionMaskInterface.register(NAME, eager_mask)
    return NAME


def keep_freed_memory() -> bool:
    """Ask glibc to serve blocks below 32 MB from its heap and not to trim freed memory back to the system
    (see the module docstring). False, and nothing changed, where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError, TypeError):
        log.info("no glibc mallopt in this process: the allocator keeps its defaults")
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) and mallopt(M_TRIM_THRESHOLD, 1 << 30))
