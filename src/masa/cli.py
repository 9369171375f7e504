"""The ``masa`` command: use a trained rewriter without Snakemake.

``masa align`` rewrites a skill library for one model card in one pass per category, with no environment
and no search: the way to align skills for a backbone the search never saw.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from masa.config import schema_entry
from masa.io import FileFormatError, write_json
from masa.process import prepare_process
from masa.skills.library import SkillLibrary
from masa.stages.context import load_base_library
from masa.teacher.card import load_card

MAX_SKILL_CHARS = schema_entry("skills", "max_skill_chars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="masa", description="Model-Aware Skill Alignment tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    align = commands.add_parser(
        "align",
        help="rewrite a skill library for a model card with the trained rewriter",
        description="Rewrite a skill library for the model a card describes, one generation per task "
        "category. The output is always a valid library: a category with no valid rewrite keeps its input "
        "skills, and the record says so.",
    )
    align.add_argument("--card", required=True, type=Path, help="model card YAML (a flat mapping)")
    align.add_argument("--skills", required=True, type=Path, help="input skill library JSON")
    align.add_argument("--base-model", required=True, type=Path, help="the rewriter's base model folder")
    align.add_argument(
        "--adapter",
        type=Path,
        help="trained rewriter: a PEFT adapter or full fine-tune folder (omit to use the untrained base model)",
    )
    align.add_argument("--out", required=True, type=Path, help="where to write the aligned library JSON")
    align.add_argument(
        "--record", type=Path, help="where to write the record (default: OUT with suffix .record.json)"
    )
    align.add_argument(
        "--categories",
        nargs="+",
        metavar="CATEGORY",
        help="task categories to rewrite (default: every category of the input library); a category the "
        "library lacks gets task skills written from scratch",
    )
    align.add_argument(
        "--task",
        help="task description given to the rewriter for every category "
        "(default: \"<env> task type '<category>'\", as in training)",
    )
    align.add_argument(
        "--env",
        help="environment name used in the default task description (default: the --skills file stem)",
    )
    align.add_argument(
        "--max-skill-chars",
        type=int,
        default=MAX_SKILL_CHARS["default"],
        help="longer skill text fields are truncated to this many characters, as in the pipeline "
        "(default: skills.max_skill_chars of config/schema.yaml)",
    )
    align.add_argument("--max-new-tokens", type=int, default=512, help="tokens per generation (default 512)")
    align.add_argument("--retries", type=int, default=2, help="sampled retries after a failed attempt")
    align.add_argument("--seed", type=int, default=0)
    align.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return parser


def _read_card(parser: argparse.ArgumentParser, path: Path) -> dict[str, Any]:
    """The card through the pipeline's validator (``masa.teacher.card.load_card``), every problem in one line."""
    if not path.is_file():
        parser.error(f"--card {path}: no such file")
    try:
        return load_card(path)
    except FileFormatError as exc:
        parser.error(f"--card {exc}")


def _read_library(parser: argparse.ArgumentParser, path: Path, max_chars: int) -> SkillLibrary:
    """The library through the pipeline's loader and cap (``masa.stages.context.load_base_library``)."""
    if not path.exists():  # a file, or a folder where the library format allows one
        parser.error(f"--skills {path}: no such file")
    try:
        return load_base_library(str(path), {"max_skill_chars": max_chars})
    except ValueError as exc:
        parser.error(f"--skills {path}: not a skill library ({exc})")


def _check_model_dirs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not (args.base_model / "config.json").is_file():
        parser.error(f"--base-model {args.base_model}: not a transformers model folder (no config.json)")
    if args.adapter is not None and not any(
        (args.adapter / name).is_file() for name in ("adapter_config.json", "config.json", "UNTRAINED")
    ):
        parser.error(
            f"--adapter {args.adapter}: neither a PEFT adapter (adapter_config.json) nor a fine-tuned model "
            "(config.json); pass the train_rewriter output folder, or omit --adapter"
        )


def align(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from masa.stages.rewriter import (  # torch: after argument checks
        align_library,
        load_aligner,
        task_description,
    )

    started = time.monotonic()
    card = _read_card(parser, args.card)
    if args.max_skill_chars < MAX_SKILL_CHARS["minimum"]:
        parser.error(f"--max-skill-chars must be >= {MAX_SKILL_CHARS['minimum']}")
    library = _read_library(parser, args.skills, args.max_skill_chars)
    categories = args.categories or list(library.task_specific_skills)
    if not categories:
        parser.error(f"--skills {args.skills} has no task categories: name them with --categories")
    if args.max_new_tokens < 16 or args.retries < 0:
        parser.error("--max-new-tokens must be >= 16 and --retries >= 0")
    _check_model_dirs(parser, args)
    env = args.env or args.skills.stem
    descriptions = {c: args.task or task_description(env, c) for c in categories}
    adapter = str(args.adapter) if args.adapter is not None else None
    llm, untrained = load_aligner(str(args.base_model), adapter, args.threads)
    if untrained:
        logging.getLogger("masa").warning("no trained rewriter given: using the untrained base model")
    aligned, record = align_library(
        llm, card, library, descriptions, args.max_new_tokens, args.retries, args.seed
    )
    record["cost"]["generation_seconds"] = record["cost"]["seconds"]
    record["cost"]["seconds"] = round(time.monotonic() - started, 3)
    aligned.save(args.out)
    record_path = args.record or args.out.with_suffix(".record.json")
    write_json(
        record_path,
        {
            "untrained": untrained,
            "adapter": adapter,
            "card": str(args.card),
            "input_skills": str(args.skills),
            **record,
        },
    )
    fell_back = record["fell_back_categories"]
    print(
        f"aligned {len(categories)} categories -> {args.out} (record {record_path})"
        + (f"; kept the input skills for {', '.join(fell_back)}" if fell_back else "")
        + ("; UNTRAINED rewriter" if untrained else "")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prepare_process()
    return align(args, parser)


if __name__ == "__main__":
    sys.exit(main())
