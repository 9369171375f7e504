"""The evaluated methods' names, as the report shows them.

``evaluation.methods`` in config/schema.yaml lists the same keys; ``EXTERNAL`` is the method of a library
from ``evaluation.external_libraries``, labelled by its source instead of a fixed name.
"""

from __future__ import annotations

METHOD_LABELS = {
    "no_skill": "No Skill",
    "base_skill": "Base Skill",
    "adapter": "Adapter",
    "masa": "MASA",
    "rewriter": "Rewriter",
    "masa_no_stage1": "MASA w/o Stage 1",
    "masa_no_stage2": "MASA w/o Stage 2",
    "rewriter_no_card": "Rewriter w/o card",
}
NO_SKILL = "no_skill"  # plays no library at all
CONTROL = "base_skill"  # paired differences are against the shared initial library
EXTERNAL = "external"


def method_label(method: str, library_source: str | None = None) -> str:
    """A method's name in every table; an external library is labelled by its source."""
    if method == EXTERNAL:
        return f"External: {library_source}"
    return METHOD_LABELS.get(method, method)
