"""Fine-tune the rewriter: next-token loss on the target skills only, LoRA (default) or full fine-tuning.

A plain torch loop rather than a trainer framework: the data is a few hundred short examples, and the loop
must behave the same on a 2-core CPU and on a GPU node.

Overlong examples lose *input skills*, never tokens: when prompt + target exceed ``max_length``, whole skills
are dropped from the end of the input set until it fits. The model card, task and instructions (what the
output is conditioned on) and the target (so the model always learns to close the JSON and stop) stay whole,
and the shortened input is still valid JSON, like the "partial" augmentation. An example that does not fit
even with an empty input is skipped. Both are logged.

Logits are computed only from the first target position on: the vocabulary projection of prompt positions
would cost ~15% of the step for nothing.

Training checkpoints every ``checkpoint_every`` steps into one file (trainable weights, optimizer, schedule,
RNG states, step, loss curve, seconds so far), written atomically, so a killed job re-run continues from its
last checkpoint and finishes with the same weights an uninterrupted run would have. The checkpoint records a
fingerprint of the config and data; one from another run is ignored rather than silently mixed in.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from masa.config import with_schema_defaults
from masa.io import atomic_open, write_json
from masa.llm.transformers_backend import plain_chat_prompt
from masa.rewriter.data import RewriterExample, format_prompt, view_json
from masa.rollout.cost import TRAINING_RECORD
from masa.skills.library import SkillLibrary

IGNORE = -100  # label of tokens that carry no loss (prompt, padding)


_REWRITER = with_schema_defaults({}, "rewriter")  # the defaults TrainConfig shares with the workflow


@dataclass
class TrainConfig:
    """Training settings. Those the ``rewriter`` config section has take config/schema.yaml's defaults, so a
    TrainConfig built in Python trains what the workflow trains; the rest are this loop's own."""

    method: str = _REWRITER["method"]  # "lora" | "full"
    lora_r: int = _REWRITER["lora_r"]
    lora_alpha: int = _REWRITER["lora_alpha"]
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = tuple(_REWRITER["target_modules"])
    learning_rate: float = _REWRITER["learning_rate"]  # LoRA's; full fine-tuning wants ~1e-5 (the paper's)
    epochs: int = _REWRITER["epochs"]
    max_steps: int | None = _REWRITER.get(
        "max_steps"
    )  # cap on optimizer steps: bounds CPU time (None: no cap)
    warmup_ratio: float = _REWRITER["warmup_ratio"]
    effective_batch: int = _REWRITER["effective_batch"]
    micro_batch: int = 1
    max_length: int = _REWRITER["max_length"]
    max_grad_norm: float = 1.0
    seed: int = 0
    dtype: str = "float32"  # weight dtype for training; bf16 autocast is added on CUDA
    bf16_on_cpu: bool = _REWRITER["bf16_on_cpu"]  # bf16 autocast on CPU: ~2x faster with AMX/avx512_bf16
    checkpoint_every: int = _REWRITER["checkpoint_every"]  # optimizer steps between resumable checkpoints
    # Recompute activations in the backward pass: what lets a 4B model train at 4096 tokens on one GPU.
    gradient_checkpointing: bool = _REWRITER["gradient_checkpointing"]

    def __post_init__(self) -> None:
        if self.method not in ("lora", "full"):
            raise ValueError(f"TrainConfig.method must be 'lora' or 'full', got {self.method!r}")
        if self.checkpoint_every < 0:
            raise ValueError(f"TrainConfig.checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.effective_batch % self.micro_batch:
            raise ValueError(
                f"effective_batch {self.effective_batch} is not a multiple of micro_batch {self.micro_batch}"
            )


@dataclass
class TrainResult:
    """What a training run did and cost; ``training.json`` in the output folder holds it (minus the curve)."""

    loss_curve: list[dict[str, float]] = field(default_factory=list)  # one {step, loss, lr} per step
    steps: int = 0
    seconds: float = 0.0  # wall-clock training seconds, summed over resumed runs
    trainable_params: int = 0
    examples: int = 0  # examples that fit max_length
    train_tokens: int = 0  # tokens through the model (prompt + target, padding excluded), all steps
    target_tokens: int = 0  # of which carried the loss
    method: str = "lora"
    device: str = "cpu"
    bf16: bool = False
    resumed_from_step: int = 0  # 0: trained from scratch


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    prompt_length: int
    dropped_skills: int  # input skills removed to fit max_length


# --- tokenisation -------------------------------------------------------------------------------------------
def prompt_text(tokenizer: Any, example: RewriterExample) -> str:
    """The prompt exactly as ``TransformersLLM.chat_prompt`` renders it at inference."""
    messages = format_prompt(
        example.card_text, example.input_skills_json, example.task_description, example.category
    )
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            tokenize=False,
            add_generation_prompt=True,
        )
    return plain_chat_prompt(messages, tokenizer.bos_token or "")


def encode_example(tokenizer: Any, example: RewriterExample, max_length: int) -> Encoded | None:
    """Prompt tokens (label -100) + target tokens + EOS, input skills dropped until it fits ``max_length``;
    ``None`` if it does not fit even with no input skills.

    Prompt and target are tokenised separately, as at inference, where generation starts right after the
    prompt's last token.
    """
    target = tokenizer(example.target_skills_json, add_special_tokens=False)["input_ids"]
    target = [*target, tokenizer.eos_token_id]
    view = SkillLibrary.from_json(example.input_skills_json, source="input skills")
    shortened, dropped = example, 0
    while True:
        prompt = tokenizer(prompt_text(tokenizer, shortened), add_special_tokens=False)["input_ids"]
        if len(prompt) + len(target) <= max_length:
            return Encoded(prompt + target, [IGNORE] * len(prompt) + target, len(prompt), dropped)
        if not _drop_last_skill(view, example.category):
            return None
        dropped += 1
        shortened = replace(example, input_skills_json=view_json(view, example.category))


def _drop_last_skill(view: SkillLibrary, category: str) -> bool:
    """Remove the last skill of the longer list (general on ties); ``False`` when nothing is left."""
    general, task = view.general_skills, view.task_specific_skills.setdefault(category, [])
    longer = general if len(general) >= len(task) else task
    if not longer:
        return False
    longer.pop()
    return True


# --- batching -----------------------------------------------------------------------------------------------
def _effective_batches(data: list[Encoded], size: int, epochs: int, seed: int) -> Iterator[list[Encoded]]:
    """Shuffled effective batches, epoch after epoch (a fresh deterministic order each epoch)."""
    rng = random.Random(seed)
    for _ in range(epochs):
        order = list(range(len(data)))
        rng.shuffle(order)
        for start in range(0, len(order), size):
            yield [data[i] for i in order[start : start + size]]


def _collate(batch: list[Encoded], pad_id: int, device: str) -> tuple[Any, Any, Any]:
    """Right-padded tensors: input ids, attention mask, labels (padding labelled -100)."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in batch]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch]
    labels = [e.labels + [IGNORE] * (width - len(e.labels)) for e in batch]
    return (
        torch.tensor(ids, device=device),
        torch.tensor(mask, device=device),
        torch.tensor(labels, device=device),
    )


def _target_tokens(batch: list[Encoded]) -> int:
    return sum(len(e.input_ids) - e.prompt_length for e in batch)


# --- model --------------------------------------------------------------------------------------------------
def _load_model(base_model_dir: str | Path, cfg: TrainConfig) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=getattr(torch, cfg.dtype))
    model.hf_quantizer = None  # packaged weights are already dequantised; the GGUF marker only blocks saving
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
    )
    return get_peft_model(model, lora)


def _micro_loss(model: Any, batch: list[Encoded], pad_id: int, device: str, n_tokens: int, bf16: bool) -> Any:
    """Summed token cross-entropy of one micro batch / target tokens in the whole effective batch.

    Normalising by the effective batch's token count makes gradient accumulation equal to one big batch.
    """
    import torch
    import torch.nn.functional as F

    ids, mask, labels = _collate(batch, pad_id, device)
    first = min(e.prompt_length for e in batch)  # first target position in the micro batch
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
        # logits from position first-1 (it predicts the first target token) to the end
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=ids.shape[1] - first + 1).logits
    loss = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        labels[:, first:].reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return loss / n_tokens


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay, for 0-based ``step``.

    Unlike transformers' ``get_cosine_schedule_with_warmup`` the first step already has a non-zero rate: with
    a budget of ~20 CPU steps, a step at learning rate 0 would waste 5% of the training time.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_rewriter(
    base_model_dir: str | Path,
    examples: list[RewriterExample],
    out_dir: str | Path,
    cfg: TrainConfig,
    log: Callable[[str], None] = print,
    checkpoint: str | Path | None = None,
) -> TrainResult:
    """Fine-tune ``base_model_dir`` on the examples and save the result to ``out_dir``.

    LoRA saves only the adapter (``peft.PeftModel.from_pretrained(base, out_dir)`` loads it); full fine-tuning
    saves the whole model and its tokenizer. ``training.json`` (cost) and ``loss_curve.json`` are written
    last, so their presence marks a finished run. With a ``checkpoint`` path and ``cfg.checkpoint_every``, the
    run saves its state there and resumes from it when started again; the file is removed once the run ends.
    """
    import torch
    from transformers import AutoTokenizer

    started = time.monotonic()
    torch.manual_seed(cfg.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = device == "cuda" or cfg.bf16_on_cpu
    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    data = _encode_all(tokenizer, examples, cfg.max_length, log)

    model = _load_model(base_model_dir, cfg).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    result = TrainResult(
        trainable_params=sum(p.numel() for p in params),
        examples=len(data),
        method=cfg.method,
        device=device,
        bf16=bf16,
    )
    total = math.ceil(len(data) / cfg.effective_batch) * cfg.epochs
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    warmup = round(cfg.warmup_ratio * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total))
    fingerprint = run_fingerprint(cfg, examples)
    previous_seconds = 0.0
    state = load_checkpoint(checkpoint, fingerprint, log) if checkpoint else None
    if state is not None:
        _restore(model, optimizer, schedule, state)
        result.loss_curve = list(state["loss_curve"])
        result.steps = result.resumed_from_step = int(state["step"])
        result.train_tokens, result.target_tokens = int(state["train_tokens"]), int(state["target_tokens"])
        previous_seconds = float(state["seconds"])
        log(f"resuming from checkpoint {checkpoint} at step {result.steps}")
    log(
        f"training {cfg.method} on {device}: {len(data)} examples, {total} steps, "
        f"{result.trainable_params} trainable parameters"
    )

    batches = _effective_batches(data, cfg.effective_batch, cfg.epochs, cfg.seed)
    for step, batch in zip(range(1, total + 1), batches, strict=False):
        if step <= result.resumed_from_step:
            continue  # the batch order is a pure function of the seed: skipping replays it exactly
        n_tokens = _target_tokens(batch)
        loss = 0.0
        for start in range(0, len(batch), cfg.micro_batch):
            micro = _micro_loss(model, batch[start : start + cfg.micro_batch], pad_id, device, n_tokens, bf16)
            micro.backward()
            loss += float(micro.detach())
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        lr = schedule.get_last_lr()[0]
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        result.loss_curve.append({"step": step, "loss": loss, "lr": lr})
        result.steps = step
        result.train_tokens += sum(len(e.input_ids) for e in batch)
        result.target_tokens += n_tokens
        result.seconds = previous_seconds + time.monotonic() - started
        log(f"step {step}/{total} loss {loss:.4f} lr {lr:.2e} ({result.seconds:.0f}s)")
        if checkpoint and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
            save_checkpoint(checkpoint, model, optimizer, schedule, result, fingerprint)
            log(f"checkpoint at step {step}: {checkpoint}")

    out = Path(out_dir)
    _save(model, tokenizer, out, cfg)
    result.seconds = previous_seconds + time.monotonic() - started
    record = training_record(result, cfg)
    write_json(out / "loss_curve.json", {**record, "loss_curve": result.loss_curve})
    write_json(out / TRAINING_RECORD, record)
    if checkpoint:
        Path(checkpoint).unlink(missing_ok=True)
    return result


def training_record(result: TrainResult, cfg: TrainConfig | None = None) -> dict[str, Any]:
    """``training.json``: what the run cost, flat, with ``tokens`` (= ``train_tokens``) for cost readers."""
    summary = {k: v for k, v in asdict(result).items() if k != "loss_curve"}
    return {**summary, "tokens": result.train_tokens, "config": asdict(cfg) if cfg else None}


# --- checkpoints --------------------------------------------------------------------------------------------
def run_fingerprint(cfg: TrainConfig, examples: list[RewriterExample]) -> str:
    """What a checkpoint must match to be resumed: every setting that changes the run, and the data."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "checkpoint_every"}
    text = json.dumps([settings, [asdict(ex) for ex in examples]], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_checkpoint(
    path: str | Path, model: Any, optimizer: Any, schedule: Any, result: TrainResult, fingerprint: str
) -> None:
    """Everything needed to continue bit-for-bit: trainable weights, optimizer, schedule, RNG states."""
    import torch

    state = {
        "fingerprint": fingerprint,
        "step": result.steps,
        "loss_curve": result.loss_curve,
        "seconds": result.seconds,
        "train_tokens": result.train_tokens,
        "target_tokens": result.target_tokens,
        "weights": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python_rng": random.getstate(),
    }
    _atomic_torch_save(state, Path(path))


def load_checkpoint(path: str | Path, fingerprint: str, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The saved state, or ``None`` when there is none or it belongs to another config or data."""
    import torch

    if not Path(path).is_file():
        return None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:  # truncated or altered
        log(f"checkpoint {path} is damaged ({err}): ignored, training from step 0")
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        log(f"checkpoint {path} is from another config or data set: ignored, training from step 0")
        return None
    return state


def _restore(model: Any, optimizer: Any, schedule: Any, state: dict[str, Any]) -> None:
    import torch

    weights = state["weights"]
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.copy_(weights[name])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    random.setstate(_as_random_state(state["python_rng"]))


def _as_random_state(value: Any) -> tuple[Any, ...]:
    """``random.setstate`` wants nested tuples; a round trip through the checkpoint may give lists."""
    version, internal, gauss = value
    return (version, tuple(internal), gauss)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, rename: a kill never leaves half a file.

    Streams to disk rather than through ``masa.io.atomic_write_bytes`` so a full fine-tune's state is not
    held twice in memory.
    """
    import torch

    with atomic_open(path) as handle:
        torch.save(obj, handle)


def _encode_all(
    tokenizer: Any, examples: list[RewriterExample], max_length: int, log: Callable[[str], None]
) -> list[Encoded]:
    encoded = [encode_example(tokenizer, ex, max_length) for ex in examples]
    data = [e for e in encoded if e is not None]
    shortened = [e.dropped_skills for e in data if e.dropped_skills]
    skipped = len(encoded) - len(data)
    if shortened or skipped:
        log(
            f"max_length {max_length}: {len(shortened)} examples lost {sum(shortened)} input skills, "
            f"{skipped} skipped (target too long)"
        )
    if not data:
        raise ValueError(f"no rewriter example fits max_length {max_length} (of {len(examples)} given)")
    return data


def _save(model: Any, tokenizer: Any, out_dir: Path, cfg: TrainConfig) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.method == "lora":
        model.save_pretrained(str(out_dir))
        return
    model.config.use_cache = True  # training turned the cache off; generation wants it back
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
