"""The rewriter: data building (held-out guard, augmentation), Parquet output, a real LoRA run, inference."""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest
import yaml

from masa.llm.base import LLM, Generation, Message
from masa.rewriter.data import (
    SOURCES,
    AugmentConfig,
    RewriterExample,
    build_examples,
    card_text,
    category_view,
    check_no_heldout,
    format_prompt,
    merge_category_view,
    noisy_view,
    partial_view,
    read_dataset,
    verbose_view,
    view_json,
    write_dataset,
)
from masa.rewriter.infer import extract_json_object, load_rewriter, rewrite
from masa.rewriter.train import IGNORE, TrainConfig, encode_example, lr_factor, train_rewriter
from masa.skills.library import Mistake, Skill, SkillLibrary

CATEGORIES = ("boil", "freeze", "heldcat")
HELDOUT_CATEGORIES = ["heldcat"]
HELDOUT_BACKBONES = ["gamma"]
TASKS = {c: f"Tasks where the agent must {c} a substance." for c in CATEGORIES}
CARDS = {
    b: {
        "family": b,
        "parameter_count": 134_515_008,
        "strengths": ["short plans"],
        "weaknesses": ["long contexts"],
    }
    for b in ("alpha", "beta", "gamma", "flat")
}


def skill(skill_id: str, principle: str) -> Skill:
    return Skill(skill_id, f"Title {skill_id}", principle, "when stuck")


def base_library() -> SkillLibrary:
    return SkillLibrary(
        general_skills=[
            skill("g1", "Look around the room before acting and note every object you can use"),
            skill("g2", "Check the inventory after picking something up to confirm it worked"),
            skill("g3", "Prefer actions listed as valid rather than inventing new commands"),
        ],
        task_specific_skills={
            c: [skill(f"{c}1", f"Find a heat source first when you need to {c} something quickly")]
            for c in CATEGORIES
        },
        common_mistakes=[Mistake("m1", "Repeating the same failed action")],
    )


def evolved(library: SkillLibrary, tag: str) -> SkillLibrary:
    """A candidate: every principle marked with the backbone, stage and iteration that produced it."""
    out = library.copy()
    for s in out.general_skills + [s for v in out.task_specific_skills.values() for s in v]:
        s.principle += f" [{tag}]"
    return out


def trajectories() -> pd.DataFrame:
    """Two training backbones that improve, one held-out backbone, and one whose search never improved.

    beta's freeze search improves only a little (0.25 -> 0.35), below most of beta's other rewards.
    """
    rows = []
    base = base_library()
    for backbone in ("alpha", "beta", "gamma", "flat"):
        searches = [("general", "")] + [("task", c) for c in CATEGORIES]
        for stage, category in searches:
            slope = 0.0 if backbone == "flat" else 0.02 if (backbone, category) == ("beta", "freeze") else 0.1
            for it in range(6):
                tag = f"{backbone} {stage} {category} it{it}"
                reward = 0.2 + slope * it + (0.05 if stage == "task" else 0.0)
                rows.append(
                    {
                        "backbone": backbone,
                        "env": "sciworld",
                        "stage": stage,
                        "category": category,
                        "iteration": it,
                        "node_id": f"{backbone}-{stage}-{category}-{it}",
                        "parent_id": "" if it == 0 else f"{backbone}-{stage}-{category}-{it - 1}",
                        "depth": it,
                        "library_json": (base if it == 0 else evolved(base, tag)).to_json(),
                        "reward_mean": reward,
                        "reward_low": reward - 0.1,
                        "reward_high": reward + 0.1,
                        "success_rate": reward,
                        "noop_rate": 0.0,
                        "episodes": 8,
                        "env_steps": 64,
                        "llm_calls": 64,
                        "prompt_tokens": 6400,
                        "completion_tokens": 0,
                        "teacher": "initial" if it == 0 else "llm",
                        "accepted": True,
                    }
                )
    return pd.DataFrame(rows)


def examples(seed: int = 0, quantile: float = 0.5) -> list[RewriterExample]:
    return build_examples(
        trajectories(),
        CARDS,
        base_library(),
        TASKS,
        HELDOUT_CATEGORIES,
        HELDOUT_BACKBONES,
        min_reward_quantile=quantile,
        augment=AugmentConfig(),
        seed=seed,
        require_gain=True,
    )


# --- data ---------------------------------------------------------------------------------------------------
def test_heldout_categories_and_backbones_never_enter_the_data() -> None:
    data = examples()
    assert data
    assert {ex.backbone for ex in data} == {"alpha", "beta"}  # gamma held out, flat never beat its root
    assert {ex.category for ex in data} == {"boil", "freeze"}
    for ex in data:
        for text in (ex.input_skills_json, ex.target_skills_json):
            assert "heldcat" not in text and "gamma" not in text


def test_guard_raises_naming_the_heldout_backbone_and_category() -> None:
    good = examples()[0]
    with pytest.raises(ValueError, match="gamma"):
        check_no_heldout([RewriterExample(**{**asdict(good), "backbone": "gamma"})], [], ["gamma"])
    leaked = json.dumps({"general_skills": [], "task_specific_skills": {"heldcat": []}})
    with pytest.raises(ValueError, match="heldcat"):
        check_no_heldout([RewriterExample(**{**asdict(good), "input_skills_json": leaked})], ["heldcat"], [])


def test_targets_sources_and_determinism() -> None:
    data = examples()
    group = [ex for ex in data if ex.backbone == "alpha" and ex.category == "boil"]
    assert {ex.source for ex in group} == set(SOURCES)
    target = json.loads(group[0].target_skills_json)
    assert list(target) == ["general_skills", "task_specific_skills"]  # mistakes omitted
    assert "[alpha general  it5]" in target["general_skills"][0]["principle"]  # best general candidate
    assert "[alpha task boil it5]" in target["task_specific_skills"]["boil"][0]["principle"]  # best task one
    cross = next(ex for ex in group if ex.source == "cross_backbone")
    assert "[beta task boil it5]" in cross.input_skills_json
    teacher = next(ex for ex in group if ex.source == "teacher_oneshot")  # the root's first teacher child
    assert (
        "[alpha general  it1]" in teacher.input_skills_json
        and "[alpha task boil it1]" in teacher.input_skills_json
    )
    early = next(ex for ex in group if ex.source == "intermediate_early")
    assert "it1]" not in early.input_skills_json  # not repeated as an intermediate
    assert all(ex.input_skills_json != ex.target_skills_json for ex in data)
    assert data == examples()
    assert data != examples(seed=1)


def test_a_given_teacher_rewrite_replaces_the_trajectories_one() -> None:
    oneshot = evolved(base_library(), "adapter alpha")
    data = build_examples(
        trajectories(),
        CARDS,
        base_library(),
        TASKS,
        HELDOUT_CATEGORIES,
        HELDOUT_BACKBONES,
        min_reward_quantile=0.5,
        augment=AugmentConfig(),
        seed=0,
        require_gain=True,
        teacher_rewrites={"alpha": oneshot},
    )
    teacher = {
        (ex.backbone, ex.category): ex.input_skills_json for ex in data if ex.source == "teacher_oneshot"
    }
    assert teacher[("alpha", "boil")] == view_json(category_view(oneshot, "boil"), "boil")
    assert "[beta general  it1]" in teacher[("beta", "boil")]


def test_quantile_threshold_removes_weak_targets() -> None:
    def groups(quantile: float) -> set[tuple[str, str]]:
        return {(ex.backbone, ex.category) for ex in examples(quantile=quantile)}

    everything = {("alpha", "boil"), ("alpha", "freeze"), ("beta", "boil"), ("beta", "freeze")}
    assert groups(0.0) == everything
    assert groups(0.7) == everything - {("beta", "freeze")}  # 0.35 is below beta's 0.7 quantile


def test_augmentation_ratios() -> None:
    view = category_view(base_library(), "boil")
    noisy = noisy_view(view, 0.3, random.Random(0))
    for before, after in zip(
        view.general_skills + view.task_specific_skills["boil"],
        noisy.general_skills + noisy.task_specific_skills["boil"],
        strict=True,
    ):
        old, new = before.principle.split(), after.principle.split()
        assert len(new) == len(old)
        assert sum(a != b for a, b in zip(old, new, strict=True)) == round(0.3 * len(old))

    partial = partial_view(view, 0.6, random.Random(0))
    assert len(partial.general_skills) == round(0.6 * 3)
    assert len(partial.task_specific_skills["boil"]) == 1  # at least one of a non-empty list
    assert [s.skill_id for s in partial.general_skills] == sorted(s.skill_id for s in partial.general_skills)

    verbose = verbose_view(view, random.Random(0))
    for before, after in zip(view.general_skills, verbose.general_skills, strict=True):
        assert (
            after.principle.startswith(before.principle) and len(after.principle) > len(before.principle) + 40
        )


def test_category_view_and_merge() -> None:
    base = base_library()
    view = category_view(base, "boil")
    assert set(view.task_specific_skills) == {"boil"} and not view.common_mistakes
    assert json.loads(view_json(view, "boil")) == {
        "general_skills": [s.to_dict() for s in base.general_skills],
        "task_specific_skills": {"boil": [s.to_dict() for s in base.task_specific_skills["boil"]]},
    }
    new_view = evolved(view, "new")
    merged = merge_category_view(base, new_view, "boil")
    assert merged.general_skills == new_view.general_skills
    assert merged.task_specific_skills["boil"] == new_view.task_specific_skills["boil"]
    assert merged.task_specific_skills["freeze"] == base.task_specific_skills["freeze"]
    assert merged.common_mistakes == base.common_mistakes


def test_dataset_round_trips_through_parquet(tmp_path: Path) -> None:
    data = examples()
    path = tmp_path / "rewriter.parquet"
    write_dataset(data, path)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == list(asdict(data[0]))
    assert frame.to_dict("records") == [asdict(ex) for ex in data]
    assert read_dataset(path) == data


def test_stage_writes_a_huggingface_dataset_without_heldout_data(tmp_path: Path) -> None:
    """The file-level stage, from hive-partitioned trajectories to a set ``datasets`` loads."""
    import datasets

    from masa.io import write_yaml
    from masa.rewriter.data import dataset_metadata
    from masa.stages.export import PARTITION_COLUMNS, partition_path
    from masa.stages.rewriter import DataSource, build_rewriter_data

    frame, paths, cards = trajectories(), [], {}
    for (backbone, env), rows in frame.groupby(["backbone", "env"]):
        path = partition_path(tmp_path / "trajectories", backbone, env)
        path.parent.mkdir(parents=True)
        rows.drop(columns=list(PARTITION_COLUMNS)).to_parquet(path)
        paths.append(str(path))
        cards[backbone] = str(tmp_path / f"{backbone}.yaml")
        write_yaml(cards[backbone], CARDS[backbone])
    base_library().save(tmp_path / "base.json")
    out = tmp_path / "train.parquet"
    source = DataSource(str(tmp_path / "base.json"), list(CATEGORIES))
    count = build_rewriter_data(
        paths, cards, {"sciworld": source}, HELDOUT_CATEGORIES, 0.5, 0, str(out),
        heldout_backbones=HELDOUT_BACKBONES, targets="improved",
    )  # fmt: skip
    assert dataset_metadata(out) == {
        "scope": "environment", "environments": ["sciworld"], "heldout_environments": []
    }  # fmt: skip
    loaded = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert loaded.num_rows == count > 0
    assert loaded.column_names == [f.name for f in fields(RewriterExample)]
    assert set(loaded["source"]) == set(SOURCES)
    assert set(loaded["backbone"]) == {"alpha", "beta"} and set(loaded["category"]) == {"boil", "freeze"}
    assert not any("heldcat" in text or "gamma" in text for text in loaded["input_skills_json"])


def test_prompt_names_category_and_asks_for_json_only() -> None:
    messages = format_prompt(card_text(CARDS["alpha"]), "{}", TASKS["boil"], "boil")
    assert [m.role for m in messages] == ["system", "user"]
    assert "weaknesses: long contexts" in messages[1].content
    assert '"boil"' in messages[1].content and "ONLY" in messages[1].content


# --- training -----------------------------------------------------------------------------------------------
def test_overlong_examples_lose_input_skills_not_tokens(smollm2_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))
    ex = examples()[0]
    full = encode_example(tok, ex, 10_000)
    assert full is not None and full.dropped_skills == 0
    enc = encode_example(tok, ex, len(full.input_ids) - 1)
    assert enc is not None and enc.dropped_skills == 1 and len(enc.input_ids) < len(full.input_ids)
    prompt = tok.decode(enc.input_ids[: enc.prompt_length])
    assert prompt.startswith("<|im_start|>system") and "## Model card" in prompt and "Output ONLY" in prompt
    target = enc.input_ids[enc.prompt_length :]
    assert enc.labels == [IGNORE] * enc.prompt_length + target
    assert tok.decode(target[:-1]) == ex.target_skills_json and target[-1] == tok.eos_token_id
    assert encode_example(tok, ex, 100) is None


def test_schedule_warms_up_from_the_first_step_then_decays() -> None:
    factors = [lr_factor(step, 2, 10) for step in range(10)]
    assert 0 < factors[0] < factors[1] < factors[2] == 1.0
    assert all(a > b for a, b in pairwise(factors[2:])) and factors[-1] > 0


def shrink(ex: RewriterExample) -> RewriterExample:
    """The example with one general skill on each side, so that it fits a short test run."""

    def first_general(text: str) -> str:
        view = SkillLibrary.from_json(text)
        return view_json(view.with_general(view.general_skills[:1]), ex.category)

    return replace(
        ex,
        input_skills_json=first_general(ex.input_skills_json),
        target_skills_json=first_general(ex.target_skills_json),
    )


def test_tiny_lora_run_writes_a_loadable_adapter(smollm2_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = TrainConfig(
        max_steps=2, epochs=1, max_length=320, effective_batch=2, learning_rate=1e-3, target_modules=QV
    )
    data = [shrink(ex) for ex in examples()[:4]]
    result = train_rewriter(smollm2_dir, data, tmp_path / "adapter", cfg, log=lambda _: None)
    assert result.steps == 2 and len(result.loss_curve) == 2
    assert all(math.isfinite(p["loss"]) and p["loss"] > 0 for p in result.loss_curve)
    assert 0 < result.trainable_params < 1_000_000
    assert json.loads((tmp_path / "adapter" / "loss_curve.json").read_text())["steps"] == 2

    base = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.abs().sum()) > 0 for p in lora_b)  # the adapter learned something

    llm = load_rewriter(smollm2_dir, tmp_path / "adapter")
    assert llm.generate([[Message("user", "Hi")]], max_new_tokens=4)[0].completion_tokens > 0


def test_full_fine_tuning_saves_a_whole_model_with_its_record(smollm2_dir: Path, tmp_path: Path) -> None:
    """From a local model folder, with gradient checkpointing: the paper's recipe for Qwen3-4B (issue 17)."""
    cfg = TrainConfig(
        method="full",
        max_steps=1,
        epochs=1,
        max_length=320,
        effective_batch=2,
        learning_rate=1e-5,
        gradient_checkpointing=True,
    )
    result = train_rewriter(
        smollm2_dir, [shrink(ex) for ex in examples()[:2]], tmp_path / "full", cfg, log=print
    )
    assert result.trainable_params > 100_000_000  # every weight, not an adapter
    assert (tmp_path / "full" / "config.json").is_file() and not (
        tmp_path / "full" / "adapter_config.json"
    ).exists()
    record = json.loads((tmp_path / "full" / "training.json").read_text())
    assert record["method"] == "full" and record["steps"] == 1 and record["device"] == "cpu"
    assert record["tokens"] == record["train_tokens"] > record["target_tokens"] > 0 and record["seconds"] > 0
    llm = load_rewriter(smollm2_dir, tmp_path / "full")
    assert llm.generate([[Message("user", "Hi")]], max_new_tokens=4)[0].completion_tokens > 0


QV = ("q_proj", "v_proj")  # LoRA on two projections keeps these CPU tests short
RESUME_CONFIG = {
    "max_steps": 3,
    "epochs": 1,
    "max_length": 320,
    "effective_batch": 1,
    "learning_rate": 1e-3,
    "target_modules": QV,
}
CHILD_TRAINING = f"""
import sys
from masa.rewriter.data import read_dataset
from masa.rewriter.train import TrainConfig, train_rewriter

model, data, out, checkpoint = sys.argv[1:5]
cfg = TrainConfig(**{RESUME_CONFIG!r}, checkpoint_every=1, seed=3)
train_rewriter(model, read_dataset(data), out, cfg, log=print, checkpoint=checkpoint)
"""


def test_killed_training_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(
    smollm2_dir: Path, tmp_path: Path
) -> None:
    """A child process is SIGKILLed once it has written a checkpoint; the re-run continues from it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch
    from safetensors.torch import load_file

    data = [shrink(ex) for ex in examples()[:3]]
    write_dataset(data, tmp_path / "train.parquet")
    checkpoint = tmp_path / "checkpoint.pt"
    (tmp_path / "train_child.py").write_text(CHILD_TRAINING)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    command = [
        sys.executable,
        str(tmp_path / "train_child.py"),
        str(smollm2_dir),
        str(tmp_path / "train.parquet"),
    ]
    child = subprocess.Popen([*command, str(tmp_path / "killed"), str(checkpoint)], env=env)
    deadline = time.monotonic() + 300
    while not checkpoint.is_file() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert checkpoint.is_file(), "the child never wrote a checkpoint"
    assert not (tmp_path / "killed" / "training.json").exists(), "the child finished before it was killed"
    saved_step = torch.load(str(checkpoint), weights_only=True)["step"]
    assert 1 <= saved_step < 3

    cfg = TrainConfig(**RESUME_CONFIG, checkpoint_every=1, seed=3)  # type: ignore[arg-type]
    lines: list[str] = []
    resumed = train_rewriter(
        smollm2_dir, data, tmp_path / "killed", cfg, log=lines.append, checkpoint=checkpoint
    )
    assert f"resuming from checkpoint {checkpoint} at step {saved_step}" in lines
    assert [line.split()[1] for line in lines if line.startswith("step ")] == [
        f"{s}/3" for s in range(saved_step + 1, 4)
    ]  # only the steps after the checkpoint were trained again
    record = json.loads((tmp_path / "killed" / "training.json").read_text())
    assert record["resumed_from_step"] == saved_step == resumed.resumed_from_step and record["steps"] == 3
    curve = json.loads((tmp_path / "killed" / "loss_curve.json").read_text())["loss_curve"]
    assert [p["step"] for p in curve] == [1, 2, 3]
    assert not checkpoint.exists()  # removed once the run finished

    whole = train_rewriter(smollm2_dir, data, tmp_path / "whole", cfg, log=lambda _: None)
    assert curve == whole.loss_curve
    killed = load_file(str(tmp_path / "killed" / "adapter_model.safetensors"))
    uninterrupted = load_file(str(tmp_path / "whole" / "adapter_model.safetensors"))
    assert killed.keys() == uninterrupted.keys()
    assert all(torch.equal(killed[k], uninterrupted[k]) for k in killed)


# --- inference ----------------------------------------------------------------------------------------------
@dataclass
class FixedLLM(LLM):
    """Replies with the given texts in turn (the last one repeats) and records the sampling it was asked."""

    replies: list[str] = field(default_factory=list)
    calls: list[tuple[float, int]] = field(default_factory=list)

    def generate(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        prefill: str = "",
    ) -> list[Generation]:
        text = self.replies[min(len(self.calls), len(self.replies) - 1)]
        self.calls.append((temperature, seed))
        return [Generation(prefill + text, 0, 0) for _ in conversations]

    def score(self, conversation: list[Message], candidates: list[str], prefill: str = "") -> list[float]:
        raise NotImplementedError


def test_rewrite_falls_back_on_garbage() -> None:
    base = base_library()
    empty_task = json.dumps(
        {"general_skills": [skill("g", "x").to_dict()], "task_specific_skills": {"boil": []}}
    )
    llm = FixedLLM(name="fake", replies=["I am not JSON {oops", empty_task])
    result = rewrite(llm, "card", base, "boil", TASKS["boil"], max_new_tokens=64, retries=2, seed=5)
    assert result.fell_back and not result.valid and result.attempts == 3 and len(result.raw) == 3
    assert result.library == base
    assert llm.calls == [(0.0, 5), (0.7, 6), (0.7, 7)]


def test_rewrite_accepts_valid_json_in_chatter() -> None:
    base = base_library()
    new_view = evolved(category_view(base, "boil"), 'rewritten {braces} in "text"')
    llm = FixedLLM(name="fake", replies=[f"Sure! Here it is:\n{view_json(new_view, 'boil')}\nDone {{"])
    result = rewrite(llm, "card", base, "boil", TASKS["boil"], max_new_tokens=64, retries=2, seed=0)
    assert result.valid and not result.fell_back and result.attempts == 1
    assert result.library == merge_category_view(base, new_view, "boil")


def test_extract_json_object() -> None:
    assert extract_json_object('x {"a": "}{", "b": {"c": 1}} y {"d": 2}') == {"a": "}{", "b": {"c": 1}}
    assert extract_json_object('{"broken": [1, 2} then {"ok": "\\"}"}') == {"ok": '"}'}
    assert extract_json_object("no object [1, 2]") is None


def test_a_stage1_gain_alone_makes_a_target_and_no_gain_makes_none() -> None:
    """The default run's case: Stage 1 improved, every Stage 2 node tied its root."""
    frame = trajectories()
    flat_task = (frame["backbone"] == "alpha") & (frame["stage"] == "task")
    frame.loc[flat_task, "reward_mean"] = 0.5  # no Stage 2 gain for alpha
    kwargs = {"min_reward_quantile": 0.0, "augment": AugmentConfig(), "seed": 0, "require_gain": True}
    got = build_examples(frame, CARDS, base_library(), TASKS, HELDOUT_CATEGORIES, HELDOUT_BACKBONES, **kwargs)
    assert {ex.category for ex in got if ex.backbone == "alpha"} == {"boil", "freeze"}
    general = (frame["backbone"] == "alpha") & (frame["stage"] == "general")
    frame.loc[general, "reward_mean"] = 0.3  # and no Stage 1 gain either
    got = build_examples(frame, CARDS, base_library(), TASKS, HELDOUT_CATEGORIES, HELDOUT_BACKBONES, **kwargs)
    assert not [ex for ex in got if ex.backbone == "alpha"]
    assert not [ex for ex in got if ex.backbone == "flat"]  # "flat" never improved anywhere


def test_best_targets_teach_a_backbone_whose_search_never_improved_to_keep_its_root() -> None:
    """rewriter.targets: best. "flat" never beat its root: it has no target under improved, and under best
    its root is the target, reached from the noisy, partial and verbose variants (an input equal to the
    target is never an example)."""
    kwargs = {"min_reward_quantile": 0.0, "augment": AugmentConfig(), "seed": 0}
    args = (trajectories(), CARDS, base_library(), TASKS, HELDOUT_CATEGORIES, HELDOUT_BACKBONES)
    assert not [ex for ex in build_examples(*args, require_gain=True, **kwargs) if ex.backbone == "flat"]
    flat = [ex for ex in build_examples(*args, require_gain=False, **kwargs) if ex.backbone == "flat"]
    assert {ex.category for ex in flat} == {"boil", "freeze"}
    for ex in flat:
        assert ex.target_skills_json == view_json(category_view(base_library(), ex.category), ex.category)
        assert ex.input_skills_json != ex.target_skills_json
    assert {"noisy", "partial", "verbose"} <= {ex.source for ex in flat}


# --- command line -------------------------------------------------------------------------------------------
# A backbone no search in this project ran: Qwen3-4B, one of the paper's backbones (fields from its config.json).
UNSEEN_CARD = {
    "family": "Qwen3",
    "variant": "Qwen3-4B",
    "parameter_count": 4_022_468_096,
    "architecture": "qwen3",
    "num_layers": 36,
    "hidden_size": 2560,
    "num_attention_heads": 32,
    "num_kv_heads": 8,
    "context_window": 40960,
    "base_or_instruct": "instruct",
    "weaknesses": ["repeats a failed action", "forgets the goal in long episodes"],
}


def test_cli_aligns_the_packaged_skills_for_an_unseen_backbone(smollm2_dir: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    cfg = TrainConfig(
        max_steps=1, epochs=1, max_length=320, effective_batch=1, learning_rate=1e-3, target_modules=QV
    )
    train_rewriter(smollm2_dir, [shrink(examples()[0])], tmp_path / "adapter", cfg, log=lambda _: None)
    card = tmp_path / "qwen3-4b.yaml"
    card.write_text(yaml.safe_dump(UNSEEN_CARD))
    skills = repo / "resources" / "skills" / "scienceworld.json"
    out = tmp_path / "aligned.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo / "src"), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "masa.cli", "align", "--card", str(card), "--skills", str(skills)]
    command += ["--base-model", str(smollm2_dir), "--adapter", str(tmp_path / "adapter"), "--out", str(out)]
    command += ["--categories", "find-animal", "--max-new-tokens", "160", "--retries", "0", "--threads", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert f"aligned 1 categories -> {out}" in done.stdout

    aligned, base = SkillLibrary.load(out), SkillLibrary.load(skills)
    record = json.loads(out.with_suffix(".record.json").read_text())
    assert record["untrained"] is False and record["adapter"] == str(tmp_path / "adapter")
    category = record["categories"]["find-animal"]
    assert category["attempts"] == 1 and category["fell_back"] == (not category["valid"])
    assert record["fell_back_categories"] == (["find-animal"] if category["fell_back"] else [])
    if category["fell_back"]:
        assert aligned == base
    else:
        assert aligned.task_specific_skills["find-animal"] and aligned.general_skills
    # categories it was not asked to rewrite are untouched
    assert aligned.task_specific_skills["find-plant"] == base.task_specific_skills["find-plant"]
    cost = record["cost"]
    assert cost["llm_calls"] == 1 and cost["prompt_tokens"] > 100 and 0 < cost["completion_tokens"] <= 160
    assert cost["seconds"] >= cost["generation_seconds"] > 0 and cost["libraries"] == 1


def test_cli_names_the_bad_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from masa.cli import main

    repo = Path(__file__).resolve().parents[1]
    card = tmp_path / "card.yaml"
    card.write_text("- not a mapping\n")
    skills = repo / "resources" / "skills" / "scienceworld.json"
    common = ["--base-model", str(tmp_path), "--out", str(tmp_path / "o.json")]
    cases = [
        (["--card", str(tmp_path / "none.yaml"), "--skills", str(skills)], "--card"),
        (["--card", str(card), "--skills", str(skills)], "expected a mapping of card fields"),
    ]
    card_ok = tmp_path / "ok.yaml"
    card_ok.write_text(yaml.safe_dump(UNSEEN_CARD))
    bad_skills = tmp_path / "bad.json"
    bad_skills.write_text('{"general_skills": "oops"}')
    cases += [
        (
            ["--card", str(card_ok), "--skills", str(bad_skills)],
            f"--skills {bad_skills}: not a skill library",
        ),
        (["--card", str(card_ok), "--skills", str(skills)], "no config.json"),
    ]
    for arguments, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(["align", *arguments, *common])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


@dataclass
class CategoryRewriter(LLM):
    """Writes an evolved view of whichever category it is asked about, except garbage for ``broken``."""

    broken: str = ""

    def generate(
        self,
        conversations: list[list[Message]],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        prefill: str = "",
    ) -> list[Generation]:
        out = []
        for conversation in conversations:
            category = conversation[-1].content.split("## Task category: ")[1].split("\n")[0]
            view = SkillLibrary(general_skills=[skill("g", "rewritten")], task_specific_skills={})
            view = view.with_task_skills(category, [skill(f"{category}-new", f"rewritten for {category}")])
            text = "not json" if category == self.broken else view_json(view, category)
            out.append(Generation(text, 100, 20))
        self.usage.add_generations(out)
        return out

    def score(self, conversation: list[Message], candidates: list[str], prefill: str = "") -> list[float]:
        raise NotImplementedError


def test_apply_rewriter_writes_heldout_categories_and_records_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from masa.stages import rewriter as stage

    monkeypatch.setattr(
        stage, "load_aligner", lambda *_: (CategoryRewriter(name="fake", broken="freeze"), False)
    )
    base_library().save(tmp_path / "base.json")
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(CARDS["alpha"]))
    library = stage.apply_rewriter(
        "base-model", str(tmp_path / "adapter"), str(tmp_path / "card.yaml"), str(tmp_path / "base.json"),
        "sciworld", list(CATEGORIES), {"max_new_tokens": 64, "retries": 1}, 0,
        str(tmp_path / "library.json"), str(tmp_path / "record.json"), heldout_categories=HELDOUT_CATEGORIES,
    )  # fmt: skip
    assert SkillLibrary.load(tmp_path / "library.json") == library
    assert [s.skill_id for s in library.task_specific_skills["heldcat"]] == ["heldcat-new"]  # written
    assert library.task_specific_skills["freeze"] == base_library().task_specific_skills["freeze"]  # kept
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["heldout_categories"] == ["heldcat"] and record["untrained"] is False
    assert record["fell_back_categories"] == ["freeze"] and record["categories"]["freeze"]["attempts"] == 2
    cost = record["cost"]
    assert (cost["llm_calls"], cost["prompt_tokens"], cost["completion_tokens"]) == (4, 400, 80)
    assert cost["libraries"] == 1 and cost["seconds"] >= cost["generation_seconds"] >= 0
    assert record["usage"] == {"calls": 4, "prompt_tokens": 400, "completion_tokens": 80}
    assert record["seconds"] == cost["seconds"]


def test_holding_out_every_backbone_is_refused_by_name(tmp_path: Path) -> None:
    from masa.stages.rewriter import DataSource, build_rewriter_data

    with pytest.raises(ValueError, match=r"rewriter\.heldout_backbones"):
        build_rewriter_data(
            [],
            {},
            {"sciworld": DataSource("base.json", ["boil"])},
            [],
            0.5,
            0,
            str(tmp_path / "t.parquet"),
            targets="improved",
        )


def test_a_cross_environment_rewriter_learns_from_other_environments_only(tmp_path: Path) -> None:
    """Issue 17: the rewriter for an environment trained on every other one's trajectories, never its own."""
    from masa.io import write_yaml
    from masa.rewriter.data import dataset_metadata
    from masa.stages.rewriter import DataSource, build_rewriter_data

    frame = trajectories()
    both = pd.concat([frame, frame.assign(env="alfworld")], ignore_index=True)  # two environments' runs
    both.to_parquet(tmp_path / "all.parquet")
    cards = {}
    for backbone in CARDS:
        cards[backbone] = str(tmp_path / f"{backbone}.yaml")
        write_yaml(cards[backbone], CARDS[backbone])
    base_library().save(tmp_path / "base.json")
    source = DataSource(str(tmp_path / "base.json"), list(CATEGORIES))
    out = tmp_path / "cross.parquet"
    count = build_rewriter_data(
        [str(tmp_path / "all.parquet")], cards, {"alfworld": source}, HELDOUT_CATEGORIES, 0.5, 0, str(out),
        heldout_backbones=HELDOUT_BACKBONES, heldout_environments=["sciworld"], targets="improved",
    )  # fmt: skip
    data = read_dataset(out)
    assert count == len(data) > 0 and {ex.env for ex in data} == {"alfworld"}
    assert dataset_metadata(out) == {
        "scope": "cross_environment", "environments": ["alfworld"], "heldout_environments": ["sciworld"]
    }  # fmt: skip
    with pytest.raises(ValueError, match="held-out environment 'sciworld' is among"):
        build_rewriter_data(
            [str(tmp_path / "all.parquet")], cards, {"sciworld": source}, [], 0.5, 0, str(out),
            heldout_environments=["sciworld"], targets="improved",
        )  # fmt: skip
    with pytest.raises(ValueError, match="held-out environment 'alfworld' entered"):
        check_no_heldout(data, [], [], ["alfworld"])


def test_a_rewriter_trained_on_alfworld_style_runs_writes_scienceworld_skills(
    smollm2_dir: Path, tmp_path: Path
) -> None:
    """Issue 17, end to end through the stage functions: data from ALFWorld-style trajectories only (the
    target environment held out), one LoRA step on the packaged SmolLM2, then ScienceWorld skills from it."""
    from masa.config import with_schema_defaults
    from masa.io import write_yaml
    from masa.rewriter.data import dataset_metadata
    from masa.stages.rewriter import DataSource, apply_rewriter, build_rewriter_data, fit_rewriter

    trajectories().assign(env="alfworld-generated").to_parquet(tmp_path / "alfworld.parquet")
    cards = {b: str(tmp_path / f"{b}.yaml") for b in CARDS}
    for backbone, path in cards.items():
        write_yaml(path, CARDS[backbone])
    base_library().save(tmp_path / "alfworld-base.json")
    data = tmp_path / "train.parquet"
    count = build_rewriter_data(
        [str(tmp_path / "alfworld.parquet")], cards,
        {"alfworld-generated": DataSource(str(tmp_path / "alfworld-base.json"), list(CATEGORIES))},
        HELDOUT_CATEGORIES, 0.5, 0, str(data), heldout_environments=["scienceworld"], targets="improved",
    )  # fmt: skip
    assert count > 0 and dataset_metadata(data)["heldout_environments"] == ["scienceworld"]
    params = with_schema_defaults({}, "rewriter")
    params.update(max_steps=1, epochs=1, max_length=1024, effective_batch=1, target_modules=list(QV))
    adapter = tmp_path / "adapter"
    fit_rewriter(str(data), str(smollm2_dir), params, 0, str(adapter), str(tmp_path / "loss.png"))
    assert (adapter / "adapter_config.json").is_file()

    write_yaml(tmp_path / "card.yaml", CARDS["alpha"])
    repo = Path(__file__).resolve().parents[1]
    apply_rewriter(
        str(smollm2_dir), str(adapter), str(tmp_path / "card.yaml"),
        str(repo / "resources" / "skills" / "scienceworld.json"), "scienceworld", ["find-living-thing"],
        {"max_new_tokens": 48, "retries": 0}, 0, str(tmp_path / "sw.json"), str(tmp_path / "sw.record.json"),
        threads=2,
    )  # fmt: skip
    record = json.loads((tmp_path / "sw.record.json").read_text())
    assert record["untrained"] is False and list(record["categories"]) == ["find-living-thing"]
    written = SkillLibrary.load(tmp_path / "sw.json")
    assert "find-living-thing" in written.task_specific_skills and written.general_skills
