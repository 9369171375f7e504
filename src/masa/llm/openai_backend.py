"""Any OpenAI-compatible chat server (vLLM's, llama.cpp's, hosted APIs) as a backbone or a teacher.

Requests run concurrently up to ``max_concurrency``, each bounded by ``timeout``; transient failures
(connection errors, timeouts, 408/409/425/429, 5xx) are retried ``max_retries`` times with exponential backoff
capped at ``max_backoff``, then the job fails with a message naming the server's URL, so Snakemake's
``retries`` can take over. Token counts come from the server's ``usage`` field.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests

from masa.llm.base import LLM, Generation, Message

RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


class ServerError(RuntimeError):
    pass


def retry_delay(attempt: int, backoff: float, max_backoff: float) -> float:
    """Seconds to wait before retry ``attempt + 1``: doubling from ``backoff``, never above ``max_backoff``."""
    return min(max_backoff, backoff * 2**attempt)


@dataclass
class OpenAILLM(LLM):
    base_url: str = ""
    model: str = ""
    api_key_env: str = ""  # name of the environment variable holding the key (never the key itself)
    max_concurrency: int = 4
    timeout: float = 120.0
    max_retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 30.0
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. Qwen3's enable_thinking
    # OpenAI's structured outputs (``response_format: json_schema``), served by vLLM and llama.cpp too.
    follows_schema: ClassVar[bool] = True

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env, "")
        if not key:
            # Fail before the request: a server's 401 would not say which variable is missing.
            raise ServerError(
                f"model server {self.base_url}: api_key_env names {self.api_key_env}, which is not set; "
                f"export {self.api_key_env}=<key> (or remove api_key_env for a server without keys)"
            )
        return {"Authorization": f"Bearer {key}"}

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url.rstrip("/") + "/chat/completions"
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = requests.post(url, json=payload, headers=self._headers(), timeout=self.timeout)
            except requests.RequestException as err:
                last = f"{type(err).__name__}: {err}"
            else:
                if response.status_code == 200:
                    return response.json()
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRYABLE:
                    break
            if attempt < self.max_retries:
                time.sleep(retry_delay(attempt, self.backoff, self.max_backoff))
        raise ServerError(f"model server {url} (model {self.model!r}) failed after retries: {last}")

    def _one(
        self,
        conversation: list[Message],
        max_new_tokens: int,
        temperature: float,
        seed: int,
        prefill: str,
        schema: dict[str, Any] | None,
    ) -> Generation:
        messages = [{"role": m.role, "content": m.content} for m in conversation]
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        if self.chat_template_kwargs:
            # vLLM's server passes these to the chat template (Qwen3: {"enable_thinking": false}).
            payload["chat_template_kwargs"] = self.chat_template_kwargs
        if schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": schema, "strict": True},
            }
        if prefill:
            # vLLM continues a final assistant message with these flags; other servers may treat it as a turn.
            messages.append({"role": "assistant", "content": prefill})
            payload.update(continue_final_message=True, add_generation_prompt=False)
        data = self._post(payload)
        text = data["choices"][0]["message"].get("content") or ""
        usage = data.get("usage") or {}
        return Generation(
            prefill + text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
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
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            results = list(
                pool.map(
                    lambda c: self._one(c, max_new_tokens, temperature, seed, prefill, schema),
                    conversations,
                )
            )
        self.usage.add_generations(results)
        return results

    def score(self, conversation: list[Message], candidates: list[str], prefill: str = "") -> list[float]:
        raise NotImplementedError(
            "a chat server cannot score given continuations; use agent.policy: generate with the openai backend, "
            "or serve the model locally (transformers or vllm backend) for policy: score"
        )
