"""Top-k skill retrieval as the MASA release does it (``skills.retrieval: topk``), offline with BM25.

The release injects the top 6 general skills, top 5 task skills and top 5 mistakes by embedding similarity
to the task; without an embedding model we rank by BM25 (Okapi, k1 = 1.5, b = 0.75) against the task's
category name, the text known before an episode starts. BM25 is written out here (thirty lines) rather than
taken from ``bm25s``, which would add scipy to the environment for three short rankings per prompt.
Ties keep the library's order, so the retrieved view is deterministic and the rollout cache, which keys on
the rendered text, stays valid across runs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import TypeVar

from masa.config import schema_entry
from masa.skills.library import Mistake, Skill, SkillLibrary

K1, B = 1.5, 0.75
Item = TypeVar("Item", Skill, Mistake)
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class TopK:
    """How many items of each section the retrieved view keeps (``skills.topk``)."""

    general: int
    task: int
    mistakes: int

    @classmethod
    def default(cls) -> TopK:
        """The schema's ``skills.topk`` defaults (one source for them)."""
        fields = schema_entry("skills", "topk")["properties"]
        return cls(**{name: spec["default"] for name, spec in fields.items()})


def tokens(text: str) -> list[str]:
    """Lowercase words; ``pick_and_place`` and "pick and place" give the same tokens."""
    return _WORD.findall(text.lower())


def bm25_scores(query: str, documents: list[str]) -> list[float]:
    """Okapi BM25 score of each document for the query, over the given documents as the corpus."""
    docs = [Counter(tokens(d)) for d in documents]
    if not docs:
        return []
    average = sum(sum(d.values()) for d in docs) / len(docs) or 1.0
    scores = []
    for doc in docs:
        length, score = sum(doc.values()), 0.0
        for term in set(tokens(query)):
            n = sum(term in d for d in docs)
            idf = math.log(1 + (len(docs) - n + 0.5) / (n + 0.5))
            f = doc[term]
            score += idf * f * (K1 + 1) / (f + K1 * (1 - B + B * length / average)) if f else 0.0
        scores.append(score)
    return scores


def top(query: str, items: list[Item], k: int) -> list[Item]:
    """The ``k`` items most similar to the query, in score order (ties in library order)."""
    texts = [" ".join(str(v) for v in item.to_dict().values() if isinstance(v, str)) for item in items]
    scores = bm25_scores(query, texts)
    ranked = sorted(range(len(items)), key=lambda i: (-scores[i], i))
    return [items[i] for i in ranked[:k]]


def retrieve(library: SkillLibrary, category: str, k: TopK) -> SkillLibrary:
    """The view of the library one category's prompt gets: top-k of each section by BM25 to the category."""
    query = category.replace("-", " ").replace("_", " ")
    view = library.without_skills()
    view.general_skills = top(query, library.general_skills, k.general)
    view.task_specific_skills = {category: top(query, library.task_skills(), k.task)}
    view.common_mistakes = top(query, library.common_mistakes, k.mistakes)
    return view
