"""Crash safety of files: writes are atomic, and a damaged cache entry, checkpoint or Parquet file is detected
on read and recomputed (or, for another rule's output, refused with how to rebuild it), never used."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pyarrow as pa
import pytest

from masa.io import (
    CorruptFileError,
    read_checked_json,
    read_parquet,
    write_checked_json,
    write_json,
    write_parquet,
)
from masa.rewriter.data import RewriterExample, read_dataset, write_dataset
from masa.rollout.agent import Agent, AgentConfig
from masa.rollout.evaluator import Evaluator, RolloutCache
from masa.search.hillclimb import HillClimbConfig, climb_general_skills
from masa.skills.library import Skill, SkillLibrary
from masa.stages.export import export_trajectories, read_trajectories
from tests.fakes import CorridorEnv, ScriptedLLM, fake_settings
from tests.test_search import INITIAL, CountingTeacher, general, scripted


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def alter_number(path: Path) -> None:
    """Change one digit of a JSON file's content, keeping it valid JSON (a silent bit of damage)."""
    text = path.read_text()
    data = json.loads(text)
    position = next(i for i, ch in enumerate(text) if ch.isdigit() and text[i - 1] in " :[")
    damaged = text[:position] + str((int(text[position]) + 1) % 10) + text[position + 1 :]
    assert json.loads(damaged) != data
    path.write_text(damaged)


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})

    def crash(src, dst):
        raise KeyboardInterrupt  # stands for a kill between writing the temporary file and the rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left behind


def test_checked_json_detects_truncation_and_alteration(tmp_path):
    path = tmp_path / "record.json"
    record = {"a": [1, 2.5, "x"], "b": {"c": None}}
    write_checked_json(path, record)
    assert read_checked_json(path) == record
    alter_number(path)
    with pytest.raises(CorruptFileError, match="does not match its sha256"):
        read_checked_json(path)
    write_checked_json(path, record)
    truncate(path)
    with pytest.raises(CorruptFileError, match="truncated or damaged JSON"):
        read_checked_json(path)
    write_json(path, record)  # written before checksums existed: accepted as it is
    assert read_checked_json(path) == record


def evaluator(llm, cache_dir):
    return Evaluator(
        Agent(llm, AgentConfig(policy="score")),
        CorridorEnv(),
        fake_settings(AgentConfig(policy="score")),
        cache=RolloutCache(cache_dir),
        progress=False,
    )


def test_damaged_cache_entries_are_played_again_and_rewritten(tmp_path, caplog):
    tasks = CorridorEnv().instances("walk", "train")
    library = SkillLibrary(general_skills=[Skill("g", "Go", "Always go forward.")])
    llm = ScriptedLLM("fake", liked="forward")
    first = evaluator(llm, tmp_path).run(library, tasks)
    calls_per_episode = llm.usage.calls // len(tasks)
    entries = sorted(tmp_path.glob("*/*.json"))
    assert len(entries) == len(tasks)
    truncate(entries[0])
    alter_number(entries[1])
    before = llm.usage.calls
    with caplog.at_level(logging.WARNING, logger="masa.rollout.evaluator"):
        again = evaluator(llm, tmp_path).run(library, tasks)
    assert llm.usage.calls - before == 2 * calls_per_episode  # the two damaged episodes, nothing else
    assert [e.cached for e in again.episodes].count(False) == 2
    assert caplog.text.count("ignoring unreadable cache entry") == 2
    assert [e.reward for e in again.episodes] == [e.reward for e in first.episodes]
    for entry in entries:
        read_checked_json(entry)  # rewritten whole
    evaluator(llm, tmp_path).run(library, tasks)
    assert llm.usage.calls - before == 2 * calls_per_episode  # now all served from the cache


@pytest.mark.parametrize("damage", [truncate, alter_number])
def test_damaged_checkpoint_is_not_used_and_the_search_starts_over(tmp_path, damage, caplog):
    rewards = {"v0": 0.1, "v1": 0.3, "v2": 0.2, "v3": 0.6, "v4": 0.1}
    config = HillClimbConfig(iterations=4, patience=3)
    full = climb_general_skills(INITIAL, scripted(rewards, general), CountingTeacher(), {}, config)
    checkpoint = tmp_path / "ckpt.json"
    short = HillClimbConfig(iterations=2, patience=3)
    climb_general_skills(
        INITIAL, scripted(rewards, general), CountingTeacher(), {}, short, checkpoint=checkpoint
    )
    damage(checkpoint)
    evaluate = scripted(rewards, general)
    with caplog.at_level(logging.WARNING, logger="masa.search.candidates"):
        resumed = climb_general_skills(
            INITIAL, evaluate, CountingTeacher(), {}, config, checkpoint=checkpoint
        )
    assert "ignoring damaged checkpoint" in caplog.text
    assert evaluate.seen == ["v0", "v1", "v2", "v3", "v4"]  # started over from the initial skill set
    assert [c.to_dict() for c in resumed.candidates] == [c.to_dict() for c in full.candidates]


def test_trajectory_parquet_damage_is_detected_on_read(tmp_path):
    from masa.search.candidates import save_candidates

    result = climb_general_skills(
        INITIAL,
        scripted({"v0": 0.1, "v1": 0.3}, general),
        CountingTeacher(),
        {},
        HillClimbConfig(iterations=1),
    )
    records = tmp_path / "candidates.json"
    save_candidates(records, result.candidates, {})
    out = tmp_path / "backbone=b" / "env=e" / "part-0.parquet"
    frame = export_trajectories("b", "e", [str(records)], str(out))
    assert read_trajectories(out).equals(frame)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 20])  # a lost tail: the footer is gone
    with pytest.raises(CorruptFileError, match=r"part-0.parquet: truncated or damaged Parquet.*re-run"):
        read_trajectories(out)
    alter_number(records)  # the candidate records it is exported from are checked too
    with pytest.raises(CorruptFileError, match=r"candidates\.json"):
        export_trajectories("b", "e", [str(records)], str(out))


def test_parquet_page_damage_that_still_decodes_is_caught_by_the_page_checksums(tmp_path):
    """A flipped bit inside a column chunk that pyarrow alone reads back as different data without complaint
    (the dangerous kind) is refused."""
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    table = pa.table({"reward": [0.1, 0.2, 0.3, 0.4], "teacher": ["llm", "edit:add", "llm", "initial"]})
    write_parquet(path, table)
    data = path.read_bytes()
    metadata = pq.ParquetFile(path).metadata.row_group(0)
    silent = []
    for column in range(metadata.num_columns):
        chunk = metadata.column(column)
        start = chunk.dictionary_page_offset or chunk.data_page_offset
        for i in range(start, start + chunk.total_compressed_size):
            damaged = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
            try:
                if pq.read_table(pa.BufferReader(damaged)) != table:
                    silent.append(damaged)
            except (pa.ArrowException, OSError):
                continue
    assert silent  # such damage exists ...
    for damaged in silent:  # ... and every instance of it is detected
        path.write_bytes(damaged)
        with pytest.raises(CorruptFileError):
            read_parquet(path)


def test_rewriter_dataset_parquet_damage_is_detected_on_read(tmp_path):
    path = tmp_path / "train.parquet"
    fields = RewriterExample.__dataclass_fields__
    examples = [RewriterExample(**{name: f"{name} {i}" for name in fields}) for i in range(3)]
    write_dataset(examples, path)
    assert read_dataset(path) == examples
    truncate(path, 0.7)
    with pytest.raises(CorruptFileError):
        read_dataset(path)


def test_write_parquet_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    write_parquet(path, pa.table({"x": [1, 2]}))
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_parquet(path, pa.table({"x": [3]}))
    assert read_parquet(path).column("x").to_pylist() == [1, 2]


def test_undecodable_input_names_the_file_the_position_and_the_encoding(tmp_path):
    """Issue 13 group 6: a Latin-1 file gives the file, byte offset, line and UTF-8, not a bare error."""
    from masa.io import FileFormatError, read_json, read_yaml

    path = tmp_path / "library.json"
    path.write_bytes('{\n  "title": "caf\u00e9"\n}\n'.encode("latin-1"))
    for reader in (read_json, read_yaml):
        with pytest.raises(
            FileFormatError, match=r"library.json: not UTF-8 text: byte 0xe9 at offset 17 \(line 2\)"
        ):
            reader(path)
    with pytest.raises(CorruptFileError, match="not UTF-8"):
        read_checked_json(path)


def test_a_damaged_candidate_record_says_how_to_recover(tmp_path):
    from masa.search.candidates import load_candidates, save_candidates

    path = tmp_path / "candidates.json"
    save_candidates(path, [], {"best": "g0"})
    truncate(path)
    with pytest.raises(CorruptFileError, match=r"candidates.json: truncated .*delete it and re-run"):
        load_candidates(path)


def test_a_truncated_training_checkpoint_is_ignored_and_training_starts_over(tmp_path):
    """Issue 13 group 6: like the search checkpoints, not a raw torch error that blocks the job."""
    import torch

    from masa.rewriter.train import load_checkpoint

    path = tmp_path / "train_checkpoint.pt"
    torch.save({"fingerprint": "f", "weights": {"w": torch.zeros(256)}}, str(path))
    assert load_checkpoint(path, "f", print)["fingerprint"] == "f"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    messages = []
    assert load_checkpoint(path, "f", messages.append) is None
    assert "is damaged" in messages[0] and "training from step 0" in messages[0]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_are_written_with_the_users_umask(tmp_path, umask):
    """Issue 13 group 7: not 0600 whatever the umask (mkstemp's mode)."""
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "out.json", {"a": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_an_undecodable_library_card_or_skill_file_names_the_file_and_the_byte(tmp_path):
    from masa.io import FileFormatError
    from masa.skills.agentskills import read_folder
    from masa.skills.library import SkillLibrary
    from masa.teacher.card import load_card

    bad = b'{"general_skills": [{"title": "caf\xe9"}]}'
    for name, load in (
        ("lib.json", SkillLibrary.load),
        ("card.yaml", load_card),
        ("skills/explore/SKILL.md", lambda p: read_folder(p.parent.parent)),
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bad)
        with pytest.raises(
            FileFormatError, match=r"not UTF-8 text: byte 0xe9 at offset \d+ .*save the file as UTF-8"
        ):
            load(path)
