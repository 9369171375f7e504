"""Headroom: how far skill text alone moves each backbone of a config, before any search.

MASA can only show an effect where some reachable skill text plays better than the base. This plays a fixed
list of libraries with one backbone of the config (``--backbone``) on instances that no stage of that config draws (the
dev split minus the profile's picks, so neither the search, the profile nor the held-out evaluation),
paired by instance, and prints each library's reward and its paired change vs the base with 95% intervals
and the change these pairs could detect. Libraries: none, the base, two rewordings of it (``verbose``: each
principle restated with its when-to-apply; ``concise``: titles only) and every candidate that the default
run's searches and Adapter wrote (``--candidates``, ``--library``). It is a measurement, not a stage: its
numbers are quoted in docs/headroom.md.

    python benchmarks/headroom.py --config config/config.yaml --per-category 20 \
        --candidates results/*/scienceworld/general/candidates.json results/*/scienceworld/task/*/tree.json \
        --library adapter=results/smollm2-135m/scienceworld/adapter/library.json \
        --backbone smollm2-135m --out headroom-smollm2.json
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path
from statistics import fmean

import yaml

from masa.config import SCHEMA, run_settings, validate_config
from masa.io import write_json
from masa.skills.library import Skill, SkillLibrary
from masa.stages.context import SPLITS, Machine, open_context, pick
from masa.stats import bootstrap_interval, paired_difference


def reworded(library: SkillLibrary, how: str) -> SkillLibrary:
    """The base's principles at another level of detail, ids and categories unchanged."""

    def skill(s: Skill) -> Skill:
        if how == "concise":
            return replace(s, principle=s.title, when_to_apply="")
        condition = s.when_to_apply.rstrip(".") or "Always"
        return replace(s, principle=f"{s.principle} {condition}: {s.title.lower()}. {s.principle}")

    return replace(
        library,
        general_skills=[skill(s) for s in library.general_skills],
        task_specific_skills={c: [skill(s) for s in ss] for c, ss in library.task_specific_skills.items()},
    )


def candidate_libraries(paths: list[str]) -> dict[str, SkillLibrary]:
    """Every non-root candidate of the given search records, labelled ``<backbone>:<node>``."""
    found = {}
    for path in paths:
        parts = Path(path).parts
        backbone = parts[parts.index("results") + 1]
        for node in json.loads(Path(path).read_text())["candidates"]:
            if node["parent_id"]:
                found[f"{backbone}:{node['node_id']}"] = SkillLibrary.from_dict(node["library"], path)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--env", default="scienceworld")
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--per-category", type=int, default=20)
    parser.add_argument("--candidates", nargs="*", default=[])
    parser.add_argument("--library", nargs="*", default=[], help="LABEL=PATH")
    parser.add_argument("--models", default="resources/models", help="prepared packaged models")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    config = validate_config(yaml.safe_load(Path(args.config).read_text()), SCHEMA)
    env = {"name": args.env, **config["environments"][args.env]}
    run = run_settings(config)
    backbone = {"name": args.backbone, "spec": config["backbones"][args.backbone]}
    base = config["skills"]["base"][args.env]
    packaged = backbone["spec"]["model"].get("packaged")
    model_dir = f"{args.models}/{packaged}" if packaged else None
    ctx = open_context(backbone, env, run, model_dir, base, "profile", 1, machine=Machine(cache_dir=None))
    profiled = {t.key for t in ctx.tasks.profile}
    tasks = []
    for category in ctx.env.categories():
        unused = [t for t in ctx.env.instances(category, SPLITS["profile"]) if t.key not in profiled]
        tasks += pick(unused, args.per_category, config["seed"] + 1000)

    libraries: dict[str, SkillLibrary | None] = {
        "none": None,
        "base": ctx.base,
        "verbose": reworded(ctx.base, "verbose"),
        "concise": reworded(ctx.base, "concise"),
    }
    libraries.update(candidate_libraries(args.candidates))
    for item in args.library:
        label, path = item.split("=", 1)
        libraries[label] = SkillLibrary.load(path)

    rewards: dict[str, dict[tuple[str, int], float]] = {}
    try:
        for label, library in libraries.items():
            result = ctx.evaluator.run(library, tasks, (0,), label=f"{args.backbone} {label}")
            rewards[label] = {(t.key, 0): e.reward for t, e in zip(tasks, result.episodes, strict=True)}
    finally:
        ctx.close()

    rows = []
    print(f"| {args.backbone} | reward [95% CI] | change vs base [95% CI, paired] | detectable |")
    print("|---|---|---|---|")
    for label, by_pair in rewards.items():
        values = list(by_pair.values())
        low, high = bootstrap_interval(values, 1000, 0)
        diff = paired_difference(by_pair, rewards["base"])
        rows.append({"library": label, "reward": fmean(values), "low": low, "high": high, **diff.as_dict()})
        print(
            f"| {label} | {fmean(values):.3f} [{low:.3f}, {high:.3f}] | "
            f"{diff.mean:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}] | ±{diff.detectable:.3f} |"
        )
    write_json(
        args.out,
        {
            "backbone": args.backbone,
            "env": args.env,
            "tasks": [t.key for t in tasks],
            "rows": rows,
            "rewards": {k: {f"{t}|{s}": r for (t, s), r in v.items()} for k, v in rewards.items()},
        },
    )


if __name__ == "__main__":
    main()
