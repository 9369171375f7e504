"""What the searching stages write besides their libraries: the teacher's transcript and usage, the stage
record, and the fingerprint a checkpoint is checked against; shared by Stage 1, Stage 2, the profile and the
Adapter."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from masa.envs.base import TaskInstance
from masa.io import atomic_write_text
from masa.rollout.cost import Cost
from masa.search.candidates import Candidate, save_candidates, search_fingerprint
from masa.skills.library import SkillLibrary
from masa.stages.context import Context
from masa.teacher.replies import log_rejections, teacher_record
from masa.teacher.teachers import Teacher, transcript_records


def write_transcript(path: str | Path, teacher: Teacher) -> None:
    """Every teacher prompt and reply, one JSON object per line, next to the stage output."""
    lines = [json.dumps(r, ensure_ascii=False) for r in transcript_records(teacher.transcript)]
    atomic_write_text(Path(path), "\n".join(lines) + ("\n" if lines else ""))


def stage_record(
    candidates: list[Candidate], teacher: Teacher, started: float, **state: Any
) -> dict[str, Any]:
    """The stage's own record beside its candidates: the loop's final state, what its rollouts cost (cache
    hits counted apart, as free), the teacher's model usage and reply counts, and the wall-clock seconds."""
    return {
        **state,
        "cost": Cost.of([c.summary for c in candidates]).as_dict(),
        "teacher_usage": {**teacher_usage(teacher), "fallbacks": getattr(teacher, "fallbacks", 0)},
        "teacher": teacher_record(teacher),
        "wall_seconds": time.perf_counter() - started,
    }


def teacher_usage(teacher: Teacher) -> dict[str, float]:
    """The teacher model's calls, tokens and seconds (zero for the edit teacher), kept in the stage record
    for cost (``masa.rollout.cost.search_cost``)."""
    llm = getattr(teacher, "llm", None)
    if llm is None:
        return {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}
    return {**llm.usage.as_dict(), "seconds": teacher.seconds}


def finish_search(
    label: str,
    candidates: list[Candidate],
    teacher: Teacher,
    started: float,
    state: dict[str, Any],
    best: SkillLibrary,
    records_path: str,
    transcript_path: str,
    library_path: str,
    checkpoint_path: str,
) -> None:
    """A finished search's outputs: every candidate with the stage record, the teacher's transcript, the best
    library; the checkpoint goes last, so a crash before it only means a resume that finds the work done."""
    save_candidates(records_path, candidates, stage_record(candidates, teacher, started, **state))
    log_rejections(label, teacher.transcript)
    write_transcript(transcript_path, teacher)
    best.save(library_path)
    Path(checkpoint_path).unlink(missing_ok=True)


def search_inputs(ctx: Context, suite: list[TaskInstance], teacher_spec: dict[str, Any]) -> str:
    """What a search's checkpoint must have been made with besides the loop's own inputs: the episode
    settings, the suite, the skill retrieval and the teacher."""
    return search_fingerprint(
        ctx.evaluator.settings.fingerprint, [t.key for t in suite], ctx.evaluator.retrieval, teacher_spec
    )


def searched_categories(ctx_categories: list[str], heldout: list[str]) -> list[str]:
    return [c for c in ctx_categories if c not in set(heldout)]
