"""What was wrong with a model's JSON reply, counted per kind for the stage records.

The teacher and the rewriter retry a rejected reply a bounded number of times and then fall back (the edit
operators, or the input skills unchanged). The kind of each rejection is read from the reply itself, so the
counts do not depend on how either component words its errors:

- ``empty``: nothing but whitespace, brackets and the prefilled start;
- ``truncated``: a JSON document that opens and never closes (the token budget ran out mid-reply);
- ``not_json``: no JSON at all, or JSON that breaks before its end;
- ``wrong_schema``: valid JSON that is not the expected skills (a missing or mistyped field);
- ``unchanged`` / ``runaway``: valid skills the teacher refuses (a copy of its input, or far longer).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import Any

from masa.teacher.teachers import FALLBACK_ATTEMPT, Teacher, TeacherCall

log = logging.getLogger(__name__)

REPLY_KINDS = ("empty", "truncated", "not_json", "wrong_schema", "unchanged", "runaway")
_PUNCTUATION_OR_PREFILL = re.compile(r'[\s\[\]{}":,]|skill_id')


def classify_reply(reply: str, note: str = "") -> str:
    """The kind of a rejected reply (``note`` is the rejecting component's message, for the two kinds that
    only it can judge)."""
    if not _PUNCTUATION_OR_PREFILL.sub("", reply):
        return "empty"
    starts = [i for i in (reply.find("["), reply.find("{")) if i >= 0]
    if not starts:
        return "not_json"
    body = reply[min(starts) :]
    try:
        json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError:
        return "truncated" if _unclosed(body) else "not_json"
    if "unchanged" in note:
        return "unchanged"
    if "longer" in note:
        return "runaway"
    return "wrong_schema"


def _unclosed(text: str) -> bool:
    """True if ``text`` is a correct start of JSON brackets cut short: a string or bracket still open at the
    end, and no bracket closed by the wrong partner on the way."""
    stack: list[str] = []
    in_string, escaped = False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append("]" if char == "[" else "}")
        elif char in "]}" and (not stack or stack.pop() != char):
            return False
    return in_string or bool(stack)


def transcript_counts(calls: list[TeacherCall]) -> dict[str, Any]:
    """Per teacher step: model calls, valid replies and the rejected ones by kind (fallback records, which
    the teacher writes with attempt 0, are not model calls)."""
    counts: dict[str, Any] = {}
    for call in calls:
        if call.attempt == FALLBACK_ATTEMPT:
            continue
        step = counts.setdefault(call.step, {"calls": 0, "valid": 0, "rejected": Counter()})
        step["calls"] += 1
        if call.valid:
            step["valid"] += 1
        else:
            step["rejected"][classify_reply(call.reply, call.note)] += 1
    return {name: {**step, "rejected": dict(step["rejected"])} for name, step in counts.items()}


def fallbacks(calls: list[TeacherCall]) -> int:
    """Teacher steps whose every attempt was rejected, so the edit fallback answered; read from the
    transcript (the teacher records each fallback there) so that the count survives a resumed search."""
    return sum(1 for call in calls if call.attempt == FALLBACK_ATTEMPT)


def teacher_record(teacher: Teacher) -> dict[str, Any]:
    """The teacher's part of a search stage's record: reply counts and how often it fell back."""
    return {"replies": transcript_counts(teacher.transcript), "fallbacks": fallbacks(teacher.transcript)}


def rewriter_rejections(raw: list[str], valid: bool) -> dict[str, int]:
    """Kinds of the rewriter's rejected replies: all of them when it fell back, else all but the last."""
    rejected = raw[:-1] if valid else raw
    return dict(Counter(classify_reply(reply) for reply in rejected))


def log_rejections(label: str, calls: list[TeacherCall]) -> None:
    """One warning per rejected reply, so the rule's log says what went wrong and how often."""
    for call in calls:
        if not call.valid:
            kind = classify_reply(call.reply, call.note)
            log.warning(
                "%s: %s reply rejected (%s, attempt %d): %s", label, call.step, kind, call.attempt, call.note
            )
