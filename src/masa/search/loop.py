"""One search's state, its versioned checkpoint, and the loop both searches run around their own step.

Stage 1 and Stage 2 differ only in what one iteration does. Resuming from a checkpoint, stopping on the
budget and saving after every iteration are the same for both, and live here once. The checkpoint holds
everything a resumed run needs to end as an uninterrupted one would, the teacher's transcript, usage and
fallback counts included, under a format version: a checkpoint of another version is refused with a message
and the search starts over (the rollout cache serves every episode it had played, so that costs no episode).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields

from masa.io import CorruptFileError
from masa.rollout.cost import Cost
from masa.search.budget import Budget
from masa.search.candidates import Candidate, Checkpoint, load_candidates, save_candidates
from masa.skills.library import LibraryFormatError
from masa.teacher.teachers import Teacher

log = logging.getLogger(__name__)

# 2: the teacher's whole state (usage, seconds, fallbacks, transcript) and this number are saved.
# 1 (unnumbered): the transcript only, so a resumed search under-counted its teacher.
CHECKPOINT_VERSION = 2


@dataclass
class SearchState:
    """Where a search is: its evaluated candidates and the loop's counters."""

    candidates: list[Candidate]
    iteration: int = 0
    best: str = ""  # Stage 1's incumbent; Stage 2 picks its best at the end
    patience: int = 0  # Stage 1's rejections in a row
    stopped_by: str = "iterations"  # or "patience", or "budget: ..." (what ran out)

    @classmethod
    def counter_names(cls) -> list[str]:
        """Every field but the candidates: what the checkpoint saves beside them."""
        return [f.name for f in fields(cls) if f.name != "candidates"]

    def counters(self) -> dict[str, int | str]:
        return {name: getattr(self, name) for name in self.counter_names()}


def save_checkpoint(checkpoint: Checkpoint | None, state: SearchState, teacher: Teacher) -> None:
    """Save a search's progress after an iteration; a search run without a checkpoint keeps none."""
    if checkpoint is not None:
        record = {
            "version": CHECKPOINT_VERSION,
            **state.counters(),
            "teacher": teacher.state(),
            "inputs": checkpoint.fingerprint,
        }
        save_candidates(checkpoint.path, state.candidates, record)


def load_checkpoint(checkpoint: Checkpoint | None, teacher: Teacher) -> SearchState | None:
    """The saved state, with ``teacher`` restored to where it was, or None when there is no usable checkpoint.

    A damaged checkpoint, one of another format version, or one made with other inputs or settings (a
    changed base library, card, suite, model or search setting) is never used: the search starts over, and
    the rollout cache serves every episode it had finished with the same settings.
    """
    if checkpoint is None or not checkpoint.path.is_file():
        return None
    path = checkpoint.path
    try:
        candidates, record = load_candidates(path)
    except (CorruptFileError, LibraryFormatError, KeyError, TypeError) as err:
        log.warning("ignoring damaged checkpoint %s, starting the search over: %s", path, err)
        return None
    version = record.get("version", 1)
    if version != CHECKPOINT_VERSION:
        log.warning(
            "ignoring checkpoint %s: it has format version %s and this masa reads version %d; starting the "
            "search over (the rollout cache serves the episodes it had played)",
            path,
            version,
            CHECKPOINT_VERSION,
        )
        return None
    if record.get("inputs") != checkpoint.fingerprint:
        log.warning(
            "ignoring checkpoint %s: it was made with other inputs or settings, starting the search over",
            path,
        )
        return None
    teacher.restore(record["teacher"])
    return SearchState(candidates, **{name: record[name] for name in SearchState.counter_names()})


def run_search(
    label: str,
    checkpoint: Checkpoint | None,
    teacher: Teacher,
    budget: Budget,
    start: Callable[[], SearchState],
    step: Callable[[SearchState], None],
    more: Callable[[SearchState], bool],
) -> SearchState:
    """Resume ``label``'s search from ``checkpoint`` or ``start`` it; then, while ``more`` says so and the
    budget lasts, run one ``step`` (which appends its candidate and advances ``iteration``) and save."""
    state = load_checkpoint(checkpoint, teacher)
    if state is not None:
        log.info("resuming %s from %s at iteration %d", label, checkpoint.path, state.iteration + 1)
    else:
        state = start()
        save_checkpoint(checkpoint, state, teacher)
    while more(state):
        spent = budget.exhausted(Cost.of([c.summary for c in state.candidates]))
        if spent:
            log.info("%s stops before iteration %d: %s", label, state.iteration + 1, spent)
            state.stopped_by = spent
            save_checkpoint(checkpoint, state, teacher)
            break
        step(state)
        save_checkpoint(checkpoint, state, teacher)
    return state
