"""vLLM's offline engine (GPU clusters): batched generation and prompt log-probabilities for scoring.

``vllm`` is imported only when this backend is built (optional dependency group ``gpu``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from masa.llm.base import LLM, Generation, Message


@dataclass
class VLLMLLM(LLM):
    model: str = ""
    tensor_parallel_size: int = 1
    dtype: str = "bfloat16"
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. Qwen3's enable_thinking
    follows_schema: ClassVar[bool] = True  # vLLM's structured outputs (xgrammar or guidance)
    _engine: Any = field(default=None, repr=False)
    _tok: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import vllm

        self._vllm = vllm
        self._engine = vllm.LLM(
            model=self.model, tensor_parallel_size=self.tensor_parallel_size, dtype=self.dtype
        )
        self._tok = self._engine.get_tokenizer()

    def chat_prompt(self, conversation: list[Message], prefill: str = "") -> str:
        messages = [{"role": m.role, "content": m.content} for m in conversation]
        prompt = self._tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
        )
        return prompt + prefill

    def generate(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        prefill: str = "",
        schema: dict[str, Any] | None = None,
    ) -> list[Generation]:
        constraint: dict[str, Any] = {}
        if schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            constraint["structured_outputs"] = StructuredOutputsParams(json=schema)
        params = self._vllm.SamplingParams(
            max_tokens=max_new_tokens, temperature=temperature, seed=seed, **constraint
        )
        outputs = self._engine.generate([self.chat_prompt(c, prefill) for c in conversations], params)
        results = [
            Generation(
                prefill + out.outputs[0].text, len(out.prompt_token_ids), len(out.outputs[0].token_ids)
            )
            for out in outputs
        ]
        self.usage.add_generations(results)
        return results

    def score(self, conversation: list[Message], candidates: list[str], prefill: str = "") -> list[float]:
        """Mean log-probability of each candidate's tokens, from vLLM's prompt log-probabilities; the shared
        prefix is served from vLLM's prefix cache."""
        prefix = self.chat_prompt(conversation, prefill)
        start = len(self._tok(prefix, add_special_tokens=False)["input_ids"])
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self._engine.generate([prefix + c for c in candidates], params)
        scores = []
        for out in outputs:
            ids = out.prompt_token_ids[start:]
            logprobs = out.prompt_logprobs[start:]
            values = [entry[token].logprob for token, entry in zip(ids, logprobs, strict=True)]
            scores.append(sum(values) / max(1, len(values)))
        self.usage.add(calls=1, prompt_tokens=sum(len(o.prompt_token_ids) for o in outputs))
        return scores
