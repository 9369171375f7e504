"""The evaluated methods, registered once: the workflow, the evaluation and the report all read ``METHODS``.

Adding a method (or an ablation) is one ``Method`` entry: its key becomes a valid value of
``evaluation.methods`` (the schema's enum is filled from here, ``masa.config``), the workflow evaluates the
library at ``library`` and prices it by the ``priced_by`` records (``workflow/rules/common.smk``), and the
report shows it under ``label`` in registry order. A library that no rule writes yet needs that rule too.
``EXTERNAL`` is the method of a library from ``evaluation.external_libraries``, labelled by its source;
``GRANULARITY`` that of a level of the granularity study, labelled by its level.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Priced:
    """A record that priced a method's library: an output of a rule, once per searched category if
    ``per_category`` (the Stage 2 trees)."""

    rule: str
    output: str
    per_category: bool = False


@dataclass(frozen=True)
class Method:
    key: str
    label: str  # its name in every table
    # The library it plays, as a path under results/ with {backbone} and {env}; None plays the base library,
    # or no library at all when ``plays_nothing``.
    library: str | None = None
    plays_nothing: bool = False
    priced_by: tuple[Priced, ...] = ()


REGISTRY = (
    Method("no_skill", "No Skill", plays_nothing=True),
    Method("base_skill", "Base Skill"),
    Method(
        "adapter",
        "Adapter",
        "results/{backbone}/{env}/adapter/library.json",
        priced_by=(Priced("adapt_library", "record"),),
    ),
    Method(
        "masa",
        "MASA",
        "results/{backbone}/{env}/library.json",
        priced_by=(Priced("climb_general_skills", "candidates"), Priced("search_task_skills", "tree", True)),
    ),
    # The skill lifecycle after the searches (lifecycle.enabled adds it to evaluation.methods): MASA's library
    # with its negligible skills retired and missing ones added, priced by the searches and the lifecycle.
    Method(
        "masa_lifecycle",
        "MASA + lifecycle",
        "results/{backbone}/{env}/lifecycle/library.json",
        priced_by=(
            Priced("climb_general_skills", "candidates"),
            Priced("search_task_skills", "tree", True),
            Priced("run_lifecycle", "record"),
        ),
    ),
    # The paper's "4B-Rewrite": the rewriter's base model without the learned policy, prompted the same way.
    Method(
        "rewriter_untrained",
        "Untrained rewriter",
        "results/{backbone}/{env}/rewriter_untrained/library.json",
        priced_by=(Priced("apply_untrained_rewriter", "record"),),
    ),
    Method(
        "rewriter",
        "Rewriter",
        "results/{backbone}/{env}/rewriter/library.json",
        priced_by=(Priced("train_rewriter", "adapter"), Priced("apply_rewriter", "record")),
    ),
    # The paper's transfer claim: the rewriter of an environment trained on the other environments only.
    Method(
        "rewriter_cross_env",
        "Rewriter (cross-environment)",
        "results/{backbone}/{env}/rewriter_cross_env/library.json",
        priced_by=(
            Priced("train_cross_env_rewriter", "adapter"),
            Priced("apply_cross_env_rewriter", "record"),
        ),
    ),
    # Trace2Skill: one library per environment induced from every induction backbone's search episodes
    # (workflow/rules/induction.smk), priced by the whole induction: its episodes and every analyst's teacher.
    Method(
        "induced",
        "Induced library",
        "results/induced/{env}/library.json",
        priced_by=(Priced("consolidate_lessons", "record"),),
    ),
    Method(
        "masa_no_stage1",
        "MASA w/o Stage 1",
        "results/{backbone}/{env}/ablation/no_stage1/library.json",
        priced_by=(Priced("search_task_skills_no_stage1", "tree", True),),
    ),
    Method(
        "masa_no_stage2",
        "MASA w/o Stage 2",
        "results/{backbone}/{env}/general/library.json",
        priced_by=(Priced("climb_general_skills", "candidates"),),
    ),
    Method(
        "rewriter_no_card",
        "Rewriter w/o card",
        "results/{backbone}/{env}/rewriter_no_card/library.json",
        priced_by=(Priced("train_rewriter", "adapter"), Priced("apply_rewriter_no_card", "record")),
    ),
)
METHODS = {m.key: m for m in REGISTRY}
CONTROL = "base_skill"  # paired differences are against the shared initial library
EXTERNAL = "external"
GRANULARITY = (
    "granularity"  # a level of the granularity study (masa.stages.granularity), labelled by its level
)


def method_label(method: str, library_source: str | None = None) -> str:
    """A method's name in every table; an external library is labelled by its source."""
    if method == EXTERNAL:
        return f"External: {library_source}"
    if method == GRANULARITY:
        return f"Granularity: {library_source}"
    return METHODS[method].label if method in METHODS else method
