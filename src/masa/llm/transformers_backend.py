"""Hugging Face transformers backend (CPU or GPU): batched chat generation and prefix-cached scoring."""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masa.llm import cpu
from masa.llm.base import LLM, Generation, Message, Scored, ScoreRequest

SCORE_CHUNK = 16  # candidates per batched forward pass; bounds memory with 262k-token vocabularies
BATCH_ROWS = 8  # episodes per forward pass in score_many
LAYER_TYPES = ("full_attention", "sliding_attention")  # attention layers score_many can mask itself


def plain_chat_prompt(conversation: list[Message], bos: str = "") -> str:
    """A readable prompt for base models without a chat template (e.g. Gemma 3 270M base)."""
    lines = [bos] if bos else []
    for message in conversation:
        if message.role == "system":
            lines.append(message.content + "\n")
        elif message.role == "user":
            lines.append(f"User:\n{message.content}\n")
        else:
            lines.append(f"Assistant:\n{message.content}\n")
    lines.append("Assistant:\n")
    return "\n".join(lines)


@dataclass
class TransformersLLM(LLM):
    """A causal LM loaded from a local folder (safetensors), in bf16 by default."""

    path: str = ""
    dtype: str = "bfloat16"
    device: str = "auto"
    threads: int | None = None
    # transformers' attn_implementation; "auto": masa's grouped attention on CPU (2x torch's fused kernel
    # under the engine's mask, cpu.py), transformers' own choice on GPU
    attention: str = "auto"
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. Qwen3's enable_thinking
    _model: Any = field(default=None, repr=False)
    _tok: Any = field(default=None, repr=False)
    _last_prefix: list[int] | None = field(default=None, repr=False)
    _last_cache: Any = field(default=None, repr=False)
    reused_prefix_tokens: int = 0  # prompt tokens served from the previous call's KV cache
    batch_rows: int = BATCH_ROWS
    _sessions: OrderedDict[str, _Prefix] = field(default_factory=OrderedDict, repr=False)
    forward_passes: int = 0  # model forward calls made by score_many (one per chunk of rows)
    _own_caches: dict[str, tuple[Any, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.threads:
            torch.set_num_threads(self.threads)
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            cpu.keep_freed_memory()
        if not Path(self.path).is_dir():
            raise FileNotFoundError(
                f"model folder {self.path} does not exist (build it with the prepare_model rule)"
            )
        self._tok = AutoTokenizer.from_pretrained(self.path)
        self._tok.padding_side = "left"
        if self._tok.pad_token is None:
            self._tok.pad_token = self._tok.eos_token
        self._model = AutoModelForCausalLM.from_pretrained(self.path, dtype=getattr(torch, self.dtype))
        attention = self._attention()
        if attention is not None:
            self._model.set_attn_implementation(attention)
        self._model.to(self.device).eval()

    def _attention(self) -> str | None:
        """The attention implementation to switch the loaded model to; None keeps transformers' choice."""
        if self.attention != "auto":
            return self.attention
        config = self._model.config.get_text_config()
        if self.device != "cpu" or getattr(config, "attn_logit_softcapping", None):
            return None
        return cpu.register()

    # --- prompts -----------------------------------------------------------------------------------------------
    def chat_prompt(self, conversation: list[Message], prefill: str = "") -> str:
        if self._tok.chat_template:
            text = self._tok.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in conversation],
                tokenize=False,
                add_generation_prompt=True,
                **self.chat_template_kwargs,
            )
        else:
            text = plain_chat_prompt(conversation, self._tok.bos_token or "")
        return text + prefill

    def _encode(self, text: str) -> list[int]:
        return self._tok(text, add_special_tokens=False)["input_ids"]

    # --- generation --------------------------------------------------------------------------------------------
    def generate(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        prefill: str = "",
        schema: dict[str, Any] | None = None,
    ) -> list[Generation]:
        """Unconstrained generation: ``schema`` is not enforced here (``follows_schema`` is False), so
        callers prefill the reply's start and validate it."""
        import torch

        prompts = [self.chat_prompt(c, prefill) for c in conversations]
        batch = self._tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.device
        )
        torch.manual_seed(seed)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_p": 1.0}
            if temperature > 0
            else {"do_sample": False}
        )
        with torch.inference_mode():
            out = self._model.generate(
                **batch, max_new_tokens=max_new_tokens, pad_token_id=self._tok.pad_token_id, **sampling
            )
        width = batch["input_ids"].shape[1]
        results = []
        for row, mask in zip(out, batch["attention_mask"], strict=True):
            new = row[width:]
            new = new[new != self._tok.pad_token_id] if self._tok.pad_token_id is not None else new
            text = self._tok.decode(new, skip_special_tokens=True)
            results.append(Generation(prefill + text, int(mask.sum()), len(new)))
        self.usage.add_generations(results)
        return results

    # --- scoring -----------------------------------------------------------------------------------------------
    def score(self, conversation: list[Message], candidates: list[str], prefill: str = "") -> list[float]:
        """Run the prompt once, then every candidate on a copy of its KV cache (4-7x faster than full
        sequences, docs/models.md). The prompt itself reuses the previous call's cache up to their common prefix
        (role, task and skills stay the same across an episode's steps)."""
        import torch

        prefix = self._encode(self.chat_prompt(conversation, prefill))
        encoded = [self._encode(c) for c in candidates]  # once: the chunks and the token count both need them
        with torch.inference_mode():
            cache, last_logits = self._prefix_state(prefix)
            first_logprobs = torch.log_softmax(last_logits.float(), dim=-1)
            scores: list[float] = []
            for start in range(0, len(encoded), SCORE_CHUNK):
                chunk = [ids or [self._tok.eos_token_id] for ids in encoded[start : start + SCORE_CHUNK]]
                scores += self._score_chunk(cache, len(prefix), first_logprobs, chunk)
        self.usage.add(calls=1, prompt_tokens=len(prefix) + sum(len(ids) for ids in encoded))
        return scores

    def _prefix_state(self, prefix: list[int]) -> tuple[Any, Any]:
        """The KV cache and last-position logits of ``prefix``, extending the previous prompt's cache when the
        two share a beginning. Caches that cannot be cut back (sliding-window layers past their window) are
        recomputed from scratch."""
        import torch

        keep = 0
        if self._last_prefix is not None:
            limit = min(len(prefix), len(self._last_prefix)) - 1  # always recompute at least one position
            while keep < limit and prefix[keep] == self._last_prefix[keep]:
                keep += 1
        cache = None
        if keep > 0:
            cache = self._last_cache
            try:
                surplus = cache.get_seq_length() - keep
                if surplus:
                    cache.crop(-surplus)  # transformers 5: a negative count removes that many tokens
            except (RuntimeError, ValueError):
                cache, keep = None, 0
        self.reused_prefix_tokens += keep
        out = self._model(
            input_ids=torch.tensor([prefix[keep:]], device=self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self._last_prefix, self._last_cache = prefix, out.past_key_values
        return out.past_key_values, out.logits[0, -1]

    # --- batched scoring (the engine) ----------------------------------------------------------------------------
    def packs_candidates(self) -> bool:
        """Whether candidates can share one row under masks of our own: every layer attends to the full
        context or to a sliding window (the model then takes one mask per layer type) and logits are the
        plain output layer (no soft-capping)."""
        config = self._model.config.get_text_config()
        layer_types = getattr(config, "layer_types", None) or ["full_attention"]
        return set(layer_types) <= set(LAYER_TYPES) and not getattr(config, "final_logit_softcapping", None)

    def _masks(self, allowed: Any, query_positions: Any, keeps: Any, past_len: int) -> Any:
        """The additive mask of ``allowed``; for a model with sliding-window layers, one per layer type, the
        sliding one also hiding keys a window or more positions behind the query (transformers 5 models take
        such a mapping as prepared masks)."""
        import torch

        dtype = self._model.dtype  # an additive mask suits every attention implementation (eager, sdpa)

        def additive(keep: Any) -> Any:
            return torch.zeros(keep.shape, dtype=dtype, device=self.device).masked_fill(
                ~keep, torch.finfo(dtype).min
            )

        config = self._model.config.get_text_config()
        if "sliding_attention" not in (getattr(config, "layer_types", None) or ()):
            return additive(allowed)
        slots = torch.arange(past_len, device=self.device)
        past_positions = slots[None, :] - (past_len - keeps)[:, None]  # a right-aligned cached prompt
        key_positions = torch.cat([past_positions, query_positions], dim=1)
        recent = query_positions[:, :, None] - key_positions[:, None, :] < config.sliding_window
        return {"full_attention": additive(allowed), "sliding_attention": additive(allowed & recent[:, None])}

    def score_many(self, requests: list[ScoreRequest], prefill: str = "") -> list[Scored]:
        """Score many episodes' steps in few forward passes, with the same scores as ``score``.

        Each row of a pass is one episode: the part of its prompt not yet in a KV cache, then every candidate
        action, each candidate attending to the prompt and to itself only (a block-causal mask). The prompt's
        cache is the longest common prefix among the kept prompts: the episode's own last step (role, task,
        skills and older history stay) or, for a new episode, any other episode's (role and skills shared).
        The output layer runs only where a candidate token is predicted.
        """
        if not self.packs_candidates():
            return self._score_each(requests, prefill)
        import torch

        prompts = [self._encode(self.chat_prompt(r.conversation, prefill)) for r in requests]
        encoded = [[self._encode(c) or [self._tok.eos_token_id] for c in r.candidates] for r in requests]
        out: list[Scored] = []
        with torch.inference_mode():
            for start in range(0, len(requests), self.batch_rows):
                stop = start + self.batch_rows
                rows = [
                    _Row(r.session, p, c, *self._seed(p))
                    for r, p, c in zip(
                        requests[start:stop], prompts[start:stop], encoded[start:stop], strict=True
                    )
                ]
                for row, scores in zip(rows, self._score_rows(rows), strict=True):
                    out.append(Scored(scores, len(row.prompt) + sum(len(c) for c in row.candidates)))
        while len(self._sessions) > 2 * max(len(requests), self.batch_rows):  # finished episodes go first
            self._sessions.popitem(last=False)
        self.usage.add(calls=len(requests), prompt_tokens=sum(s.prompt_tokens for s in out))
        return out

    def _score_each(self, requests: list[ScoreRequest], prefill: str) -> list[Scored]:
        """``score`` request by request, each episode resuming from its own last prompt's cache (episodes in
        lockstep alternate, so the single previous-prompt cache of ``score`` would serve none of them)."""
        out = []
        for request in requests:
            self._last_prefix, self._last_cache = self._own_caches.pop(request.session, (None, None))
            before = self.usage.prompt_tokens
            scores = self.score(request.conversation, list(request.candidates), prefill)
            self._own_caches[request.session] = (self._last_prefix, self._last_cache)
            out.append(Scored(scores, self.usage.prompt_tokens - before))
        self._last_prefix = self._last_cache = None
        return out

    def forget_prompts(self) -> None:
        """Drop every kept prompt cache, so the next call starts cold (benchmarks and tests compare
        players from the same starting point)."""
        self._last_prefix = self._last_cache = None
        self._sessions.clear()
        self._own_caches.clear()

    def end_session(self, session: str) -> None:
        """A finished episode's cache stays as a seed for new episodes until newer ones push it out (the
        one-by-one path keeps none: its caches cannot be shared)."""
        self._own_caches.pop(session, None)
        if session in self._sessions:
            self._sessions.move_to_end(session, last=False)

    def _seed(self, prompt: list[int]) -> tuple[_Prefix | None, int]:
        """The kept prompt sharing the longest beginning with ``prompt``, and how many tokens it gives
        (always leaving at least the last prompt token to compute, whose logits predict the first action
        token)."""
        best, keep = None, 0
        for entry in self._sessions.values():
            shared = common_prefix(entry.tokens, prompt, len(prompt) - 1)
            if shared > keep:
                best, keep = entry, shared
        self.reused_prefix_tokens += keep
        return best, keep

    def _score_rows(self, rows: list[_Row]) -> list[list[float]]:
        import torch
        from transformers import DynamicCache

        past_len = max(r.keep for r in rows)
        layout = [r.layout() for r in rows]
        width = max(len(ids) for ids, _, _ in layout)
        pad = self._tok.pad_token_id
        ids = torch.tensor([i + [pad] * (width - len(i)) for i, _, _ in layout], device=self.device)
        positions = torch.tensor([p + [0] * (width - len(p)) for _, p, _ in layout], device=self.device)
        segments = torch.tensor([s + [-1] * (width - len(s)) for _, _, s in layout], device=self.device)
        keeps = torch.tensor([r.keep for r in rows], device=self.device)
        mask = self._masks(block_causal_mask(segments, keeps, past_len), positions, keeps, past_len)
        dtype = self._model.dtype
        # A cache of plain layers: every layer keeps every token (a model's own cache would drop what slid
        # out of a window, which the kept prompts and the masks still count).
        cache = DynamicCache()
        if past_len:
            # Cached prompts right-aligned, so each row's ends where its new tokens start (the mask hides the
            # zeros before a shorter one; a row without a cached prompt has only zeros there).
            seeded = [(r, row.seed_layers()) for r, row in enumerate(rows) if row.keep]
            layers = []
            for layer, (k0, _) in enumerate(seeded[0][1]):
                keys = torch.zeros(
                    len(rows), k0.shape[0], past_len, k0.shape[2], dtype=dtype, device=self.device
                )
                values = torch.zeros_like(keys)
                for r, seed in seeded:
                    k, v = seed[layer]
                    keys[r, :, past_len - rows[r].keep :] = k[:, : rows[r].keep]
                    values[r, :, past_len - rows[r].keep :] = v[:, : rows[r].keep]
                layers.append((keys, values))
            cache = DynamicCache(ddp_cache_data=layers)
        hidden = self._model.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
        )
        self.forward_passes += 1
        # Where each candidate token is predicted: the last prompt token, then the candidate's own tokens.
        picks: list[tuple[int, int, int, int]] = []  # row, query position, target token, candidate index
        for r, row in enumerate(rows):
            prompt_end = offset = len(row.prompt) - row.keep
            for c, cand in enumerate(row.candidates):
                sources = [prompt_end - 1] + [offset + k for k in range(len(cand) - 1)]
                picks += [(r, q, t, c) for q, t in zip(sources, cand, strict=True)]
                offset += len(cand)
        # Every candidate's first token is predicted at the same place: the output layer and its softmax over
        # the vocabulary (a third of a pass's time outside the layers) run once per distinct place.
        places = sorted({(r, q) for r, q, _, _ in picks})
        slot = {place: i for i, place in enumerate(places)}
        where = torch.tensor(places, device=self.device)
        states = hidden.last_hidden_state[where[:, 0], where[:, 1]]
        logprobs = torch.log_softmax(self._model.lm_head(states).float(), dim=-1)
        rows_of = torch.tensor([slot[r, q] for r, q, _, _ in picks], device=self.device)
        targets = torch.tensor([t for _, _, t, _ in picks], device=self.device)
        chosen = logprobs[rows_of, targets].tolist()
        sums = [[0.0] * len(row.candidates) for row in rows]
        for (r, _, _, c), value in zip(picks, chosen, strict=True):
            sums[r][c] += value
        self._keep_prompts(rows, hidden.past_key_values, past_len)
        return [
            [total / len(cand) for total, cand in zip(sums[r], row.candidates, strict=True)]
            for r, row in enumerate(rows)
        ]

    def _keep_prompts(self, rows: list[_Row], cache: Any, past_len: int) -> None:
        """Keep each row's prompt (not its candidates) as its session's cache, in a bounded LRU."""
        for r, row in enumerate(rows):
            start, stop = past_len - row.keep, past_len + len(row.prompt) - row.keep
            layers = [
                (layer.keys[r, :, start:stop].clone(), layer.values[r, :, start:stop].clone())
                for layer in cache.layers
            ]
            self._sessions[row.session] = _Prefix(row.prompt, layers)
            self._sessions.move_to_end(row.session)

    def _score_chunk(
        self, cache: Any, prefix_len: int, first_logprobs: Any, chunk: list[list[int]]
    ) -> list[float]:
        import torch

        width = max(len(ids) for ids in chunk)
        pad = self._tok.pad_token_id
        ids = torch.tensor([c + [pad] * (width - len(c)) for c in chunk], device=self.device)
        valid = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in chunk], device=self.device)
        batch_cache = copy.deepcopy(cache)
        batch_cache.batch_repeat_interleave(len(chunk))
        mask = torch.cat(
            [torch.ones(len(chunk), prefix_len, dtype=valid.dtype, device=self.device), valid], 1
        )
        positions = torch.arange(prefix_len, prefix_len + width, device=self.device).expand(len(chunk), -1)
        out = self._model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=batch_cache,
            use_cache=True,
        )
        logprobs = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
        totals = first_logprobs[ids[:, 0]]
        if width > 1:
            follow = logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) * valid[:, 1:]
            totals = totals + follow.sum(-1)
        return (totals / valid.sum(-1)).tolist()


@dataclass
class _Prefix:
    """A kept prompt and its KV cache, one (keys, values) pair per layer, each [heads, tokens, head_dim]."""

    tokens: list[int]
    layers: list[tuple[Any, Any]]


@dataclass
class _Row:
    """One episode in a ``score_many`` pass: its prompt, its candidates' tokens, and the cache it starts from."""

    session: str
    prompt: list[int]
    candidates: list[list[int]]
    seed: _Prefix | None
    keep: int

    def seed_layers(self) -> list[tuple[Any, Any]]:
        return self.seed.layers if self.seed is not None else []

    def layout(self) -> tuple[list[int], list[int], list[int]]:
        """Token ids, positions and segments (0 = prompt, c + 1 = candidate c) of the row's new tokens.
        Every candidate starts at the position right after the prompt."""
        ids = list(self.prompt[self.keep :])
        positions = list(range(self.keep, len(self.prompt)))
        segments = [0] * len(ids)
        for c, cand in enumerate(self.candidates):
            ids += cand
            positions += range(len(self.prompt), len(self.prompt) + len(cand))
            segments += [c + 1] * len(cand)
        return ids, positions, segments


def common_prefix(a: list[int], b: list[int], limit: int) -> int:
    """Length of the common beginning of ``a`` and ``b``, at most ``limit``."""
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def block_causal_mask(segments: Any, keeps: Any, past_len: int) -> Any:
    """Boolean [rows, 1, new, past + new] mask: prompt tokens attend causally to the row's cached prefix and
    earlier prompt tokens; a candidate's tokens attend to the prompt and causally to their own candidate, never
    to another candidate. Padding queries attend only to themselves (no empty softmax rows)."""
    import torch

    rows, width = segments.shape
    index = torch.arange(width, device=segments.device)
    seg_q, seg_k = segments[:, :, None], segments[:, None, :]
    causal = index[None, :, None] >= index[None, None, :]
    new = causal & (seg_k >= 0) & (seg_q >= 0) & ((seg_k == 0) | (seg_k == seg_q))
    new |= torch.eye(width, dtype=torch.bool, device=segments.device)[None] & (seg_q < 0)
    past = torch.arange(past_len, device=segments.device)[None, None, :] >= (past_len - keeps)[:, None, None]
    past = past.expand(rows, width, past_len) & (seg_q >= 0)
    return torch.cat([past, new], dim=-1)[:, None]
