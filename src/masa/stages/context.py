"""Building the live objects a stage needs (model, environment, task sets, evaluator) from config slices.

Stages receive plain dictionaries (Snakemake ``params``) and call these; nothing here reads the config file.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masa.config import known_tasks, schema_default, with_schema_defaults
from masa.envs.base import Environment, TaskInstance
from masa.llm.base import LLM
from masa.methods import EXTERNAL, GRANULARITY, METHODS
from masa.rollout.agent import Agent, AgentConfig
from masa.rollout.evaluator import Evaluator, RolloutCache
from masa.rollout.settings import EpisodeSettings
from masa.skills.agentskills import load_library
from masa.skills.library import LibraryFormatError, Skill, SkillLibrary, cap_text, check_library
from masa.skills.retrieval import TopK
from masa.teacher.teachers import EditTeacher, LLMTeacher, Teacher

# Each use of instances, the split it draws from and the config key of its count per category.
SPLITS = {"search": "train", "profile": "dev", "evaluation": "test"}
COUNTS = {"search": "search_instances", "profile": "profile_instances", "evaluation": "eval_instances"}

log = logging.getLogger(__name__)


def load_llm(spec: dict[str, Any], model_dir: str | None, name: str, threads: int | None = None) -> LLM:
    """A backend from a model spec (``backend``: transformers | openai | vllm | llamacpp)."""
    backend = spec.get("backend", "transformers")
    if backend == "transformers":
        from masa.llm.transformers_backend import TransformersLLM

        path = model_dir or spec.get("path")
        if not path:
            raise ValueError(f"model '{name}': the transformers backend needs 'packaged' or 'path'")
        return TransformersLLM(
            name=name,
            path=str(path),
            dtype=spec.get("dtype", "bfloat16"),
            threads=threads,
            chat_template_kwargs=spec.get("chat_template_kwargs", {}),
        )
    if backend == "openai":
        from masa.llm.openai_backend import OpenAILLM

        return OpenAILLM(
            name=name,
            base_url=spec["base_url"],
            model=spec["model"],
            api_key_env=spec.get("api_key_env", ""),
            max_concurrency=spec.get("max_concurrency", 4),
            timeout=spec.get("timeout", 120.0),
            max_retries=spec.get("max_retries", 4),
            chat_template_kwargs=spec.get("chat_template_kwargs", {}),
        )
    if backend == "vllm":
        from masa.llm.vllm_backend import VLLMLLM

        return VLLMLLM(
            name=name,
            model=str(model_dir or spec.get("path") or spec["model"]),
            tensor_parallel_size=spec.get("tensor_parallel_size", 1),
            dtype=spec.get("dtype", "bfloat16"),
            chat_template_kwargs=spec.get("chat_template_kwargs", {}),
        )
    if backend == "llamacpp":
        from masa.llm.llamacpp_backend import LlamaCppLLM

        return LlamaCppLLM(
            name=name, path=str(model_dir or spec["path"]), threads=threads, context=spec.get("context", 4096)
        )
    raise ValueError(f"model '{name}': unknown backend {backend!r} (transformers, openai, vllm, llamacpp)")


def make_environment(name: str, params: dict[str, Any], heap_mb: int | None = None) -> Environment:
    """The environment ``name`` from its config section; absent keys take config/schema.yaml's defaults,
    as in the workflow. ``heap_mb`` (a ``Machine`` setting) overrides the section's."""
    if name == "scienceworld":
        from masa.envs.scienceworld import ScienceWorld

        params = with_schema_defaults(params, "environments", name)
        return ScienceWorld(
            tasks=list(params["tasks"]),
            max_steps=params["max_steps"],
            simplifications=params["simplifications"],
            max_candidates=params["max_candidates"],
            heap_mb=heap_mb or params["heap_mb"],
            focus_guard=params["focus_guard"],
        )
    if name.startswith("alfworld"):
        from masa.envs.alfworld import ALFWorld

        source = alfworld_source(name, params)  # first: an unnamed source has no schema section
        params = with_schema_defaults(params, "environments", name)
        return ALFWorld(
            name=name,
            source=source,
            data_dir=params.get("data_dir") or f"resources/games/{name}",
            tasks=params.get("tasks"),
            max_steps=params["max_steps"],
            eval_split=params["eval_split"],
        )
    raise ValueError(f"unknown environment {name!r}")


def alfworld_source(name: str, params: dict[str, Any]) -> str:
    """The games' source, which the environment's name must state (``alfworld-generated``,
    ``alfworld-official``), so results of the two sources never share a results path or a table row."""
    source = params.get("source")
    if name != f"alfworld-{source}":
        raise ValueError(
            f"environment {name!r} has source {source!r}: name ALFWorld environments alfworld-generated "
            "(source: generated) or alfworld-official (source: official)"
        )
    return source


@dataclass(frozen=True)
class TaskSets:
    """The instances one stage plays, by use: only the stage's own use is drawn (``task_sets``), so a stage
    depends on its own instance count alone; the others are empty."""

    search: dict[str, list[TaskInstance]]
    profile: list[TaskInstance]
    evaluation: dict[str, list[TaskInstance]]

    def played(self) -> dict[str, set[str]]:
        """Instance keys by use."""
        return {
            "search": {t.key for ts in self.search.values() for t in ts},
            "profile": {t.key for t in self.profile},
            "evaluation": {t.key for ts in self.evaluation.values() for t in ts},
        }

    def check_disjoint(self, env: Environment) -> None:
        """Raise when an instance this stage plays is in another use's split at all, so no search, profile
        and evaluation instance can ever coincide, whatever counts the other stages draw."""
        for use, keys in self.played().items():
            for other, split in SPLITS.items():
                if other == use or not keys:
                    continue
                overlap = keys & {t.key for c in env.categories() for t in env.instances(c, split)}
                if overlap:
                    raise ValueError(f"{use}/{other} task sets overlap: {sorted(overlap)[:5]}")


def pick(instances: list[TaskInstance], count: int, seed: int) -> list[TaskInstance]:
    """A seeded sample in stable order; the same seed always picks the same instances."""
    chosen = random.Random(seed).sample(instances, min(count, len(instances)))
    return sorted(chosen, key=lambda t: (len(t.instance), t.instance))


def task_sets(env: Environment, params: dict[str, Any], seed: int, use: str) -> TaskSets:
    """``use``'s instances (``params[COUNTS[use]]`` per category from its split), checked disjoint from
    every other use's split."""
    if use not in SPLITS:
        raise ValueError(f"unknown use {use!r} (expected one of {sorted(SPLITS)})")

    def drawn(wanted: str) -> dict[str, list[TaskInstance]]:
        if wanted != use:
            return {c: [] for c in env.categories()}
        return {c: pick(env.instances(c, SPLITS[use]), params[COUNTS[use]], seed) for c in env.categories()}

    sets = TaskSets(
        search=drawn("search"),
        profile=[t for ts in drawn("profile").values() for t in ts],
        evaluation=drawn("evaluation"),
    )
    sets.check_disjoint(env)
    return sets


def episode_settings(
    spec: dict[str, Any],
    model_dir: str | None,
    env: dict[str, Any],
    noop_penalty: float,
    temperature: float | None = None,
) -> EpisodeSettings:
    """The settings a backbone's episodes on ``env`` are played and keyed with (``temperature`` overrides the
    agent's, as an evaluation's does)."""
    agent_spec = dict(spec.get("agent", {}))
    if temperature is not None:
        agent_spec["temperature"] = temperature
    return EpisodeSettings.of(spec["model"], model_dir, AgentConfig(**agent_spec), env, noop_penalty)


def make_evaluator(
    backbone: str,
    spec: dict[str, Any],
    model_dir: str | None,
    env: Environment,
    settings: EpisodeSettings,
    retrieval: str,
    cache_dir: str | None,
    threads: int | None = None,
    width: int = 1,
    topk: dict[str, int] | None = None,
) -> Evaluator:
    """The model and agent built from ``settings``, so that what plays is what keys the cache."""
    llm = load_llm(spec["model"], model_dir, backbone, threads)
    cache = RolloutCache(Path(cache_dir) / backbone if cache_dir else None)
    top = TopK(**topk) if topk else None
    return Evaluator(Agent(llm, settings.agent), env, settings, retrieval, top, cache, width=width)


@dataclass
class Context:
    """Everything a searching or evaluating stage of one backbone on one environment works with."""

    evaluator: Evaluator
    env: Environment
    tasks: TaskSets
    base: SkillLibrary
    seed: int

    def heldout_tasks(self) -> list[TaskInstance]:
        """Every category's evaluation instances, after checking that no search or profile instance is
        among them (whatever built the sets)."""
        self.tasks.check_disjoint(self.env)
        return [t for c in self.env.categories() for t in self.tasks.evaluation[c]]

    def close(self) -> None:
        self.evaluator.close()
        self.env.close()
        self.evaluator.agent.llm.close()


@dataclass(frozen=True)
class Machine:
    """How fast and where a stage runs, never what it computes: the workflow passes these as Snakemake
    ``resources``, not ``params``, so tuning them re-runs no job (docs/workflow.md). Defaults are the
    schema's."""

    episodes_in_flight: int = schema_default("engine", "episodes_in_flight")
    cache_dir: str | None = schema_default("cache_dir")
    heap_mb: int | None = None  # None: the environment section's (ScienceWorld's JVM heap)

    @classmethod
    def of(cls, resources: Any) -> Machine:
        """From a rule's ``resources`` (or any object with those attributes); "" means no cache / the
        section's heap, as a resource cannot be None."""
        return cls(
            episodes_in_flight=int(resources.episodes_in_flight),
            cache_dir=resources.cache_dir or None,
            heap_mb=int(resources.heap_mb) or None,
        )


def open_context(
    backbone: dict[str, Any],
    env: dict[str, Any],
    run: dict[str, Any],
    model_dir: str | None,
    base_library: str | None,
    use: str,
    threads: int | None = None,
    temperature: float | None = None,
    machine: Machine | None = None,
) -> Context:
    """``backbone`` = {name, spec}; ``env`` = {name, **environment config}; ``run`` = {seed, noop_penalty,
    retrieval, ...} — the config slices a rule passes as params; ``use`` the instances the stage plays
    (search, profile or evaluation); ``base_library`` None: no library (an induction from scratch)."""
    machine = machine or Machine()
    env = with_schema_defaults(env, "environments", env["name"])  # keeps its "name"
    settings = episode_settings(backbone["spec"], model_dir, env, run["noop_penalty"], temperature)
    environment = make_environment(env["name"], env, machine.heap_mb)
    evaluator = make_evaluator(
        backbone["name"],
        backbone["spec"],
        model_dir,
        environment,
        settings,
        run["retrieval"],
        machine.cache_dir,
        threads,
        machine.episodes_in_flight,
        run.get("topk"),
    )
    sets = task_sets(environment, env, run["seed"], use)
    library = (
        load_env_library(base_library, env["name"], run, environment) if base_library else SkillLibrary()
    )
    return Context(evaluator, environment, sets, library, run["seed"])


def played_library(ctx: Context, method: str, path: str | None, run: dict[str, Any]) -> SkillLibrary | None:
    """What ``method`` plays: nothing for No Skill; an external library loaded, mapped, checked and capped
    like the base (``load_env_library``); a library the pipeline wrote (a granularity level among them);
    else the base library."""
    if method == EXTERNAL:
        return load_env_library(path, ctx.env.name, run, ctx.env)
    if method == GRANULARITY:
        return SkillLibrary.load(path)
    if METHODS[method].plays_nothing:
        return None
    return SkillLibrary.load(path) if path else ctx.base


def env_run(run: dict[str, Any], env_name: str) -> dict[str, Any]:
    """The run settings as ``load_base_library`` reads them for ``env_name``: its own ``category_map`` only."""
    return {**run, "category_map": run.get("category_map", {}).get(env_name, {})}


def load_env_library(path: str, env_name: str, run: dict[str, Any], environment: Environment) -> SkillLibrary:
    """A library brought to environment ``env_name`` (the base, or an external one the evaluation plays),
    loaded by ``load_base_library`` with that environment's ``category_map`` and categories."""
    known = known_tasks(env_name)
    return load_base_library(
        path, env_run(run, env_name), known or environment.categories(), known is not None
    )


def load_base_library(
    path: str, run: dict[str, Any], categories: list[str] | None = None, complete: bool = False
) -> SkillLibrary:
    """The shared initial library, its categories renamed by ``run["category_map"]`` (logged), checked
    (``check_library``: errors raised, warnings logged) and its skill text capped at ``max_skill_chars`` (each cut logged); the one loader of the pipeline and ``masa align``."""
    library = load_library(path, run.get("include_skill_files", False))
    mapping = {k: v for k, v in run.get("category_map", {}).items() if k in library.task_specific_skills}
    if mapping:
        library = library.with_categories_mapped(mapping)
        log.info(
            "skill library %s: categories mapped %s",
            path,
            ", ".join(f"{k} -> {v}" for k, v in mapping.items()),
        )
    check = check_library(library, path, categories, complete)
    if check.errors:
        raise LibraryFormatError("; ".join(check.errors))
    for warning in check.warnings:
        log.warning("skill library: %s", warning)
    if run.get("max_skill_chars"):
        library, notes = cap_text(library, run["max_skill_chars"], path)
        for note in notes:
            log.warning("skill text truncated: %s", note)
    return library


def skill_pool(library: SkillLibrary) -> list[Skill]:
    """Skills the edit teacher may add: every skill of the library plus its optional ``skill_pool`` extra."""
    pool = library.skills()
    extra = library.extra.get("skill_pool", [])
    pool += [Skill.from_dict(item, f"skill_pool[{i}]") for i, item in enumerate(extra)]
    return pool


def make_teacher(
    spec: dict[str, Any], model_dir: str | None, base: SkillLibrary, threads: int | None = None
) -> Teacher:
    fallback = EditTeacher(skill_pool(base))
    if spec["kind"] == "edit":
        return fallback
    llm = load_llm(spec["model"], model_dir, "teacher", threads)
    spec = with_schema_defaults(spec, "teacher")
    return LLMTeacher(llm, fallback, retries=spec["retries"], max_new_tokens=spec["max_new_tokens"])
