"""The model profile ("model card"): architecture from the weights, provenance from config, weaknesses from
preliminary rollouts. No evaluation numbers go into it (method.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    """A flat card with method.md's fields, in method.md's order.

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
