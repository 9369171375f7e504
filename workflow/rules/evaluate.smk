# Held-out evaluation, one job per backbone x environment x method:
# results/{backbone}/{env}/eval/{method}.json (summary with 95% bootstrap intervals, per-category
# summaries, cost, and every episode). Instances come from the environment's test split, never searched.


rule evaluate_method:
    input:
        unpack(env_games),
        unpack(backbone_model),
        unpack(method_library),
        base=base_library,
    output:
        "results/{backbone}/{env}/eval/{method}.json",
    log:
        "logs/{backbone}/{env}/evaluate/{method}.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/evaluate/{method}.tsv"
    conda:
        "../../envs/masa.yaml"
    threads: 1
    resources:
        gpu=backbone_gpus,
        episodes_in_flight=EPISODES_IN_FLIGHT,
        cache_dir=CACHE_DIR,
        heap_mb=heap_mb,
    params:
        backbone=backbone_param,
        env=env_for("evaluation"),
        run=RUN,
        code=stage_code("evaluate_method.py"),
        evaluation=EVALUATION_SETTINGS,
        method=lambda wildcards: wildcards.method,
    script:
        "../scripts/evaluate_method.py"


# Swap matrix: the MASA library of backbone {source} played by backbone {backbone}, on the same held-out
# instances and seeds as {backbone}'s own Base Skill run, so each cell is a paired difference:
# results/{backbone}/{env}/swap/{source}.json (same record as evaluate_method, plus library_source).
use rule evaluate_method as evaluate_swapped_library with:
    input:
        unpack(backbone_model),
        base=base_library,
        library="results/{source}/{env}/library.json",
    output:
        "results/{backbone}/{env}/swap/{source}.json",
    log:
        "logs/{backbone}/{env}/evaluate/swap_{source}.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/evaluate/swap_{source}.tsv"
    params:
        method="masa",
        source=lambda wildcards: wildcards.source,


# External libraries (evaluation.external_libraries), each played by every backbone on the same held-out
# instances and seeds as its Base Skill run: results/{backbone}/{env}/external/{label}.json (method
# "external", library_source = the label).
use rule evaluate_method as evaluate_external_library with:
    input:
        unpack(env_games),
        unpack(backbone_model),
        base=base_library,
        library=external_library,
    output:
        "results/{backbone}/{env}/external/{label}.json",
    log:
        "logs/{backbone}/{env}/evaluate/external_{label}.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/evaluate/external_{label}.tsv"
    params:
        method="external",
        source=lambda wildcards: wildcards.label,


# Expert agreement (evaluation.agreement): every evaluated method's library scored against the expert's
# decisions on the held-out instances (masa.rollout.fitness), for environments with an expert path:
# results/{backbone}/{env}/agreement.json.
rule score_agreement:
    input:
        unpack(backbone_model),
        unpack(agreement_libraries),
        base=base_library,
    output:
        "results/{backbone}/{env}/agreement.json",
    log:
        "logs/{backbone}/{env}/agreement.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/agreement.tsv"
    conda:
        "../../envs/masa.yaml"
    threads: 1
    resources:
        gpu=backbone_gpus,
        episodes_in_flight=EPISODES_IN_FLIGHT,
        cache_dir=CACHE_DIR,
        heap_mb=heap_mb,
    params:
        backbone=backbone_param,
        env=env_for("evaluation"),
        run=RUN,
        code=stage_code("score_agreement.py"),
        methods=METHODS,
        instances=config["evaluation"]["agreement_instances"],
    script:
        "../scripts/score_agreement.py"


# Per-skill contribution (evaluation.skill_contribution): the final MASA library with each skill left out in
# turn, paired against the full library: results/{backbone}/{env}/skill_contribution.json.
rule skill_contribution:
    input:
        unpack(backbone_model),
        base=base_library,
        library=rules.merge_library.output.library,
    output:
        "results/{backbone}/{env}/skill_contribution.json",
    log:
        "logs/{backbone}/{env}/evaluate/skill_contribution.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/evaluate/skill_contribution.tsv"
    conda:
        "../../envs/masa.yaml"
    threads: 1
    resources:
        gpu=backbone_gpus,
        episodes_in_flight=EPISODES_IN_FLIGHT,
        cache_dir=CACHE_DIR,
        heap_mb=heap_mb,
    params:
        backbone=backbone_param,
        env=env_for("evaluation"),
        run=RUN,
        code=stage_code("skill_contribution.py"),
        evaluation=EVALUATION_SETTINGS,
    script:
        "../scripts/skill_contribution.py"
