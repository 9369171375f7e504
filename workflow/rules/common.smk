# Config validation, wildcard constraints and the input/param helpers every stage shares.
import re
from pathlib import Path

from masa.codeversion import code_version
from masa.config import SCHEMA, run_settings, validate_config
from masa.rollout.fitness import has_expert_path
from masa.gpus import model_gpus, search_job_gpus
from masa.llm.packaged import PACKAGED_MODELS
from masa.methods import METHODS as METHOD_REGISTRY
from masa.stages.context import COUNTS

validate_config(config, SCHEMA)

BACKBONES = list(config["backbones"])
ENVS = list(config["environments"])
# validate_config fills in the first environment when profile_environment is absent
PROFILE_ENV = config["profile_environment"]
HELDOUT = config["rewriter"]["heldout_categories"]
INDUCTION = config["induction"]
# validate_config has added each enabled study's method (masa.config.STUDY_METHODS)
METHODS = config["evaluation"]["methods"]
# What an evaluation job's result depends on: adding a method or an external library re-runs no other job.
EVALUATION_SETTINGS = {
    k: config["evaluation"][k]
    for k in ("seeds", "temperature", "max_failed_share", "bootstrap_resamples")
}
RUN = run_settings(config)
# How fast and where episodes are played, never what they give (masa.stages.context.Machine): rules take these as
# resources, which Snakemake does not compare when it decides what to re-run, so tuning them re-runs nothing.
EPISODES_IN_FLIGHT = config["engine"]["episodes_in_flight"]
CACHE_DIR = config["cache_dir"] or ""  # a resource cannot be None; "" is no cache
# The search -> rewriter chain (the models and games it needs, the profile, Stage 2, Stage 3, the export,
# the Adapter's rewrites, the rewriter's data, training and inference) is the DAG's longest path: its rules
# carry this priority, so it starts first and the evaluations and studies fill the other cores meanwhile.
LONGEST_PATH_PRIORITY = 10


def heap_mb(wildcards_or_env):
    """The environment's simulator heap (ScienceWorld's JVM), 0 where it has none."""
    env = getattr(wildcards_or_env, "env", wildcards_or_env)
    return config["environments"][env].get("heap_mb", 0)


wildcard_constraints:
    backbone="|".join(map(re.escape, BACKBONES)),
    env="|".join(map(re.escape, ENVS)),
    source="|".join(map(re.escape, BACKBONES)),
    method="|".join(METHODS),
    category=r"[A-Za-z0-9_.-]+",
    model=r"[A-Za-z0-9_.-]+",
    label=r"[A-Za-z0-9_.-]+",
    level=r"\d+",
    slice=r"\d+",


def categories(env):
    return list(config["environments"][env]["tasks"])


def searched_categories(env):
    return [c for c in categories(env) if c not in HELDOUT]


def model_folder(spec):
    """The prepared local folder of a packaged model (its GGUF file for the llamacpp backend, safetensors
    otherwise), or None for a path or a served model."""
    if "packaged" not in spec:
        return None
    kind = "gguf" if spec.get("backend") == "llamacpp" else "models"
    return f"resources/{kind}/{spec['packaged']}"


def backbone_model(wildcards):
    folder = model_folder(config["backbones"][wildcards.backbone]["model"])
    return {"model": folder} if folder else {}


def teacher_model(wildcards):
    if config["teacher"]["kind"] != "llm":
        return {}
    folder = model_folder(config["teacher"]["model"])
    return {"teacher_model": folder} if folder else {}


def backbone_param(wildcards):
    return {"name": wildcards.backbone, "spec": config["backbones"][wildcards.backbone]}


def stage_code(script):
    """The version of the code ``workflow/scripts/<script>`` runs (masa.codeversion), a param of its rule:
    editing a module the stage imports re-runs that stage."""
    return code_version(Path(workflow.basedir) / "workflow" / "scripts" / script)


def env_for(use, env=None):
    """The environment section as a stage that plays ``use``'s instances (search, profile, evaluation)
    needs it: without the other uses' instance counts and the heap (a resource), so that changing those
    re-runs none of this stage's jobs."""
    dropped = {"heap_mb", *(key for u, key in COUNTS.items() if u != use)}

    def param(wildcards):
        name = env or wildcards.env
        section = config["environments"][name]
        return {"name": name, **{k: v for k, v in section.items() if k not in dropped}}

    return param


# The library induced from trajectories (workflow/rules/induction.smk); `skills.base.<env>: induced` makes it
# the base of every stage.
INDUCED_LIBRARY = "results/induced/{env}/library.json"


def base_path(env):
    """The base library file of ``env``: skills.base.<env>, or the induced library when that says induced."""
    path = config["skills"]["base"][env]
    return INDUCED_LIBRARY.format(env=env) if path == "induced" else path


def base_library(wildcards):
    return base_path(wildcards.env)


def category_libraries(
    wildcards, pattern="results/{backbone}/{env}/task/{category}/library.json"
):
    return {
        c: pattern.format(category=c, **wildcards)
        for c in searched_categories(wildcards.env)
    }


def search_records(wildcards):
    return [rules.climb_general_skills.output.candidates.format(**wildcards)] + [
        rules.search_task_skills.output.tree.format(category=c, **wildcards)
        for c in searched_categories(wildcards.env)
    ]


# The library each method plays (masa.methods.METHODS; None: the base library, or none for No Skill).
METHOD_LIBRARIES = {key: method.library for key, method in METHOD_REGISTRY.items()}


# Libraries brought from elsewhere, label -> {env: path}: evaluated beside the methods (evaluate.smk).
EXTERNAL_LIBRARIES = config["evaluation"]["external_libraries"]


def external_library(wildcards):
    return EXTERNAL_LIBRARIES[wildcards.label][wildcards.env]


def agreement_libraries(wildcards):
    """Each evaluated method's library file, by method (score_agreement reads them by name)."""
    return {
        m: METHOD_LIBRARIES[m].format(**wildcards)
        for m in METHODS
        if METHOD_LIBRARIES[m]
    }


def method_library(wildcards):
    path = METHOD_LIBRARIES[wildcards.method]
    return {"library": path.format(**wildcards)} if path else {}


def env_games(wildcards_or_env):
    """{"games": manifest} for an environment of generated games, else nothing (ScienceWorld, official)."""
    env = getattr(wildcards_or_env, "env", wildcards_or_env)
    if config["environments"][env].get("source") != "generated":
        return {}
    return {"games": f"resources/games/{env}/manifest.json"}


# The rewriter's training backbones: the held-out ones never enter its training data.
HELDOUT_BACKBONES = config["rewriter"]["heldout_backbones"]
if set(HELDOUT_BACKBONES) - set(BACKBONES):
    raise ValueError(
        f"rewriter.heldout_backbones names {sorted(set(HELDOUT_BACKBONES) - set(BACKBONES))}, "
        f"which are not in backbones ({', '.join(BACKBONES)}): fix the names"
    )
TRAINING_BACKBONES = [b for b in BACKBONES if b not in HELDOUT_BACKBONES]


def teacher_rewrites(env):
    """Each training backbone's one-shot teacher rewrite (the adapt_library rule's output) when the workflow
    has that rule; without it the trajectories' first teacher rewrites stand in."""
    if not workflow.is_rule("adapt_library"):
        return {}
    return {b: f"results/{b}/{env}/adapter/library.json" for b in TRAINING_BACKBONES}


def rewriter_sources(envs):
    """The environments a rewriter learns from, as masa.stages.rewriter.DataSource fields."""
    return {
        e: {
            "base_library": base_path(e),
            "categories": categories(e),
            "teacher_rewrites": teacher_rewrites(e),
        }
        for e in envs
    }


def other_envs(env):
    """Every environment but ``env``: what its cross-environment rewriter learns from."""
    return [e for e in ENVS if e != env]


# GPUs per job (the `gpu` resource: SLURM's --gpus); 0 everywhere in the CPU default.
def backbone_gpus(wildcards):
    return model_gpus(config["backbones"][wildcards.backbone]["model"])


def search_gpus(wildcards):
    return search_job_gpus(config["backbones"][wildcards.backbone], config["teacher"])


def eval_path(backbone, env, method):
    return rules.evaluate_method.output[0].format(
        backbone=backbone, env=env, method=method
    )


def preparation_records(backbone, env, method):
    """The records that priced a method's library (its registry entry's priced_by; masa.rollout.cost reads
    whatever each of them holds)."""
    w = {"backbone": backbone, "env": env}
    records = []
    for priced in METHOD_REGISTRY[method].priced_by:
        pattern = getattr(rules, priced.rule).output[priced.output]
        if priced.per_category:
            records += [
                pattern.format(category=c, **w) for c in searched_categories(env)
            ]
        else:
            records.append(pattern.format(**w))
    return records


# The induced library's inputs (workflow/rules/induction.smk).
INDUCTION_BACKBONES = INDUCTION["backbones"] or BACKBONES


def induction_start(wildcards):
    """The library the episodes are played with and deepen mode keeps: induction.library.<env>, else the
    environment's skills.base (a file: the config check refuses induced there); none from scratch.
    """
    if INDUCTION["mode"] == "scratch":
        return {}
    env = wildcards.env
    return {"start": INDUCTION["library"].get(env) or config["skills"]["base"][env]}


def induction_episodes(wildcards):
    return expand(
        rules.play_induction_episodes.output[0],
        backbone=INDUCTION_BACKBONES,
        env=wildcards.env,
    )
