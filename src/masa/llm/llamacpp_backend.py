"""llama.cpp in the job's own process: fast CPU decoding of a GGUF file, with replies held to a JSON schema.

On a CPU llama.cpp decodes 5-10x faster than transformers (docs/models.md), which is what free-form
generation (the teacher, the rewriter) is bound by; scoring actions stays with the transformers backend.
A ``schema`` is compiled to a llama.cpp grammar, so every token the model emits keeps the reply a valid
instance of it: a small teacher cannot answer in the wrong shape, only with weak content.

``llama_cpp`` is the prebuilt llama-cpp-python 0.2.62 that ``setup.sh`` installs; it is imported only when
this backend is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from masa.llm.base import LLM, Generation, Message


class LlamaCppError(RuntimeError):
    pass


def gguf_file(path: str | Path) -> Path:
    """The GGUF file at ``path``, or the single one inside the folder ``path`` (a prepared packaged model)."""
    path = Path(path)
    if path.is_file():
        return path
    found = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if len(found) != 1:
        raise LlamaCppError(
            f"{path}: expected a .gguf file or a folder holding exactly one (found {len(found)}); "
            "for a packaged model let the assemble_gguf rule build it"
        )
    return found[0]


@dataclass
class LlamaCppLLM(LLM):
    path: str = ""
    threads: int | None = None
    context: int = 4096
    follows_schema: ClassVar[bool] = True
    _model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as err:
            raise LlamaCppError(
                "backend: llamacpp needs llama-cpp-python; `bash setup.sh` installs a prebuilt one"
            ) from err
        threads = self.threads or 1
        self._model = Llama(
            model_path=str(gguf_file(self.path)),
            n_ctx=self.context,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )

    def _one(
        self,
        conversation: list[Message],
        max_new_tokens: int,
        temperature: float,
        seed: int,
        schema: dict[str, Any] | None,
    ) -> Generation:
        extra: dict[str, Any] = {}
        if schema is not None:
            extra["response_format"] = {"type": "json_object", "schema": schema}
        reply = self._model.create_chat_completion(
            [{"role": m.role, "content": m.content} for m in conversation],
            max_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
            **extra,
        )
        usage = reply.get("usage") or {}
        return Generation(
            reply["choices"][0]["message"].get("content") or "",
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )

    def generate(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        prefill: str = "",
        schema: dict[str, Any] | None = None,
    ) -> list[Generation]:
        if prefill:
            # The chat API has no way to continue an assistant turn; a schema is this backend's way to
            # start a reply in the right shape.
            raise LlamaCppError("the llamacpp backend cannot prefill a reply; pass a schema instead")
        results = [self._one(c, max_new_tokens, temperature, seed, schema) for c in conversations]
        self.usage.add_generations(results)
        return results

    def score(self, conversation: list[Message], candidates: list[str], prefill: str = "") -> list[float]:
        raise NotImplementedError(
            "the llamacpp backend generates only (the teacher, the rewriter); score actions with the "
            "transformers or vllm backend (policy: score)"
        )
