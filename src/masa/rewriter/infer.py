"""Run the rewriter: one category at a time, validated, retried, and never worse than "no change".

A small model sometimes writes broken or empty JSON; the caller then gets the input skills back with
``fell_back=True`` rather than an exception, so a downstream evaluation always has a library to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masa.llm.base import LLM
from masa.llm.transformers_backend import TransformersLLM
from masa.rewriter.data import category_view, format_prompt, merge_category_view, view_json
from masa.skills.library import LibraryFormatError, SkillLibrary

RETRY_TEMPERATURE = 0.7


@dataclass
class RewriteResult:
    library: SkillLibrary  # the full library: input library with the rewritten category merged in
    valid: bool  # some attempt produced a valid category view
    attempts: int
    fell_back: bool  # no attempt was valid; ``library`` is a copy of the input
    raw: list[str] = field(default_factory=list)  # every reply, in order


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first ``{...}`` in ``text`` that parses as a JSON object (the decoder skips braces in strings)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def parse_view(reply: str, category: str) -> SkillLibrary | None:
    """The category view in a reply, or ``None`` unless it has general skills and skills for ``category``."""
    data = extract_json_object(reply)
    if data is None:
        return None
    try:
        view = category_view(SkillLibrary.from_dict(data, source="rewriter reply"), category)
    except LibraryFormatError:
        return None
    if not view.general_skills or not view.task_specific_skills[category]:
        return None
    return view


def rewrite(
    llm_or_model: LLM,
    card_text: str,
    input_library: SkillLibrary,
    category: str,
    task_description: str,
    max_new_tokens: int = 512,
    retries: int = 1,
    seed: int = 0,
) -> RewriteResult:
    """Rewrite ``category``'s view of ``input_library`` for the model described by ``card_text``.

    The first attempt is greedy; each of up to ``retries`` further attempts samples at temperature 0.7 with a
    new seed, since repeating a deterministic failure is pointless.
    """
    conversation = format_prompt(
        card_text, view_json(category_view(input_library, category), category), task_description, category
    )
    raw: list[str] = []
    for attempt in range(retries + 1):
        temperature = 0.0 if attempt == 0 else RETRY_TEMPERATURE
        reply = llm_or_model.generate([conversation], max_new_tokens, temperature, seed + attempt)[0].text
        raw.append(reply)
        view = parse_view(reply, category)
        if view is not None:
            library = merge_category_view(input_library, view, category)
            return RewriteResult(library, valid=True, attempts=attempt + 1, fell_back=False, raw=raw)
    return RewriteResult(input_library.copy(), valid=False, attempts=len(raw), fell_back=True, raw=raw)


def load_rewriter(
    base_model_dir: str | Path,
    adapter_dir: str | Path,
    name: str = "rewriter",
    threads: int | None = None,
) -> TransformersLLM:
    """The trained rewriter as a ``TransformersLLM``, in float32.

    A LoRA adapter is merged into the base weights in memory (no merged copy on disk to go stale); a full
    fine-tune folder is loaded as it is. float32 because rounding the merged weights to bf16 perturbs them by
    ~17% of the LoRA delta (measured after 24 steps), and on CPU bf16 generation was no faster.
    """
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        return TransformersLLM(name=name, path=str(adapter_dir), dtype="float32", threads=threads)
    from peft import PeftModel

    llm = TransformersLLM(name=name, path=str(base_model_dir), dtype="float32", threads=threads)
    llm._model = PeftModel.from_pretrained(llm._model, str(adapter_dir)).merge_and_unload().eval()
    return llm
