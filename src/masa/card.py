"""The model profile ("model card"): architecture from the weights, provenance from config, weaknesses from
preliminary rollouts. No evaluation numbers go into it (method.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from masa.io import FileFormatError

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


def load_card(path: str | Path) -> dict[str, Any]:
    """A card written by ``build_card`` (or by hand), checked field by field before any prompt sees it."""
    try:
        card = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise CardFormatError(f"{path}: not valid YAML at {where}: {err.problem}") from err
    return check_card(card, str(path))


def check_card(card: Any, source: str) -> dict[str, Any]:
    if not isinstance(card, dict):
        raise CardFormatError(f"{source}: expected a mapping of card fields, got {type(card).__name__}")
    for key, value in card.items():
        if key not in CARD_FIELDS:
            raise CardFormatError(
                f"{source}: {key}: unknown card field; expected one of {', '.join(CARD_FIELDS)}"
            )
        if value is None:
            continue
        if key in INTEGER_FIELDS and (not isinstance(value, int) or isinstance(value, bool)):
            raise CardFormatError(f"{source}: {key}: expected an integer, got {value!r}")
        if key in LIST_FIELDS:
            if not isinstance(value, list):
                raise CardFormatError(
                    f"{source}: {key}: expected a list of strings, got {type(value).__name__}"
                )
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise CardFormatError(f"{source}: {key}[{i}]: expected a string, got {item!r}")
        elif key == "multilingual" and not isinstance(value, bool):
            raise CardFormatError(f"{source}: multilingual: expected true or false, got {value!r}")
        elif key not in INTEGER_FIELDS and isinstance(value, dict | list):  # text; YAML may read a date
            raise CardFormatError(f"{source}: {key}: expected a single value, got a {type(value).__name__}")
    return card


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
