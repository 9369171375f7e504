"""The model profile ("model card"): architecture from the weights, provenance from config, weaknesses from
preliminary rollouts. No evaluation numbers go into it (docs/method.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from masa.io import FileFormatError, load_yaml, read_text

CARD_FIELDS = (
    "family",
    "variant",
    "parameter_count",
    "release_date",
    "architecture",
    "num_layers",
    "hidden_size",
    "num_attention_heads",
    "num_kv_heads",
    "context_window",
    "vocab_size",
    "base_or_instruct",
    "alignment_method",
    "training_data_size",
    "multilingual",
    "strengths",
    "weaknesses",
)
ARCHITECTURE_FIELDS = {  # card field -> transformers config keys, in order of preference
    "architecture": ("model_type",),
    "num_layers": ("num_hidden_layers", "n_layer"),
    "hidden_size": ("hidden_size", "n_embd"),
    "num_attention_heads": ("num_attention_heads", "n_head"),
    "num_kv_heads": ("num_key_value_heads", "num_attention_heads"),
    "context_window": ("max_position_embeddings", "n_positions"),
    "vocab_size": ("vocab_size",),
}
PROVENANCE_FIELDS = (
    "family",
    "variant",
    "release_date",
    "base_or_instruct",
    "alignment_method",
    "training_data_size",
    "multilingual",
    "strengths",
)


INTEGER_FIELDS = ("parameter_count", "num_layers", "hidden_size", "num_attention_heads", "num_kv_heads")
INTEGER_FIELDS += ("context_window", "vocab_size")
LIST_FIELDS = ("strengths", "weaknesses")


class CardFormatError(FileFormatError):
    """A model card that does not follow the format; the message names the file, the position and what was
    expected."""


REQUIRED_FIELDS = ("family", "parameter_count", "weaknesses")  # what tells a model apart and what it fails at
SIZE_SUFFIXES = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMBT])\s*", re.IGNORECASE)


def load_card(path: str | Path) -> dict[str, Any]:
    """A card written by ``build_card``, by hand or in the MASA release's form, checked before any prompt
    sees it. The one validator of the pipeline and ``masa align``."""
    card = load_yaml(read_text(path), str(path), CardFormatError)
    return check_card(card, str(path))


def check_card(card: Any, source: str) -> dict[str, Any]:
    """The card with the release's shorthand normalised ("4B" -> 4000000000, "a, b" -> ["a", "b"]).

    Every problem is collected and reported in one error, so a hand-written card is fixed in one pass.
    """
    if not isinstance(card, dict):
        raise CardFormatError(f"{source}: expected a mapping of card fields, got {type(card).__name__}")
    problems = [
        f"{key}: unknown card field; expected one of {', '.join(CARD_FIELDS)}"
        for key in card
        if key not in CARD_FIELDS
    ]
    problems += [f"{key}: required field missing" for key in REQUIRED_FIELDS if key not in card]
    out = dict(card)
    for key, value in card.items():
        if key not in CARD_FIELDS or value is None:
            continue
        value, problem = _check_value(key, value)
        out[key] = value
        if problem:
            problems.append(problem)
    if problems:
        raise CardFormatError(f"{source}: " + f"; {source}: ".join(problems))
    return out


def _check_value(key: str, value: Any) -> tuple[Any, str | None]:
    """(normalised value, the problem or None) of one card field."""
    if key == "parameter_count" and isinstance(value, str) and (size := _SIZE.fullmatch(value)):
        value = round(float(size.group(1)) * SIZE_SUFFIXES[size.group(2).upper()])
    if key in INTEGER_FIELDS and (not isinstance(value, int) or isinstance(value, bool)):
        return (
            value,
            f"{key}: expected an integer{' or a size like 4B' if key == 'parameter_count' else ''}, got {value!r}",
        )
    if key in LIST_FIELDS:
        if isinstance(value, str):  # the release writes "math, code generation, tool use"
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            return (
                value,
                f"{key}: expected a list of strings or one comma-separated string, got {type(value).__name__}",
            )
        bad = [
            f"{key}[{i}]: expected a string, got {item!r}"
            for i, item in enumerate(value)
            if not isinstance(item, str)
        ]
        return value, "; ".join(bad) or None
    if key == "multilingual" and not isinstance(value, bool):
        return value, f"multilingual: expected true or false, got {value!r}"
    if key not in INTEGER_FIELDS and isinstance(value, dict | list):  # text; YAML may read a date
        return value, f"{key}: expected a single value, got a {type(value).__name__}"
    return value, None


def architecture_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Architecture fields from a transformers ``config.json`` (nested ``text_config`` first)."""
    sources = [config.get("text_config") or {}, config]
    out: dict[str, Any] = {}
    for card_field, keys in ARCHITECTURE_FIELDS.items():
        out[card_field] = next((s[k] for s in sources for k in keys if s.get(k) is not None), None)
    return out


def count_parameters(model_dir: Path) -> int:
    """Parameters as stored in the safetensors headers (no weights are loaded)."""
    total = 0
    for shard in sorted(model_dir.glob("*.safetensors")):
        with shard.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        for name, meta in header.items():
            if name != "__metadata__":
                count = 1
                for dim in meta["shape"]:
                    count *= dim
                total += count
    return total


def build_card(model_dir: Path | None, provenance: dict[str, Any], weaknesses: list[str]) -> dict[str, Any]:
    """A flat card with docs/method.md's fields, in docs/method.md's order.

    ``model_dir`` is a local transformers folder; for a served model (no local weights) the architecture
    fields come from ``provenance`` and must be given there.
    """
    card: dict[str, Any] = dict.fromkeys(CARD_FIELDS)
    for key in PROVENANCE_FIELDS:
        card[key] = provenance.get(key)
    if model_dir is not None:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        card.update(architecture_from_config(config))
        card["parameter_count"] = count_parameters(model_dir)
    else:
        for key in (*ARCHITECTURE_FIELDS, "parameter_count"):
            card[key] = provenance.get(key)
    card["weaknesses"] = list(weaknesses)
    return card
