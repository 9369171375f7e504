# The granularity study (granularity.enabled; the MASA paper's section 2): the base library reworded by the
# teacher into granularity.levels levels of detail, each played by every backbone on the held-out instances:
#   results/granularity/{env}/level{level}.json     the library at that level (ids, titles, categories kept)
#   results/granularity/{env}/record.json           words per level, where each group's text came from
#   results/{backbone}/{env}/granularity/level{level}.json   its evaluation (paired with Base Skill's)
#   results/report/granularity.{md,csv,png}         backbone x level table and figure, best level marked

LEVELS = list(range(1, config["granularity"]["levels"] + 1))


rule reword_levels:
    input:
        unpack(teacher_model),
        base=base_library,
    output:
        levels=[f"results/granularity/{{env}}/level{k}.json" for k in LEVELS],
        record="results/granularity/{env}/record.json",
        transcript="results/granularity/{env}/teacher.jsonl",
    log:
        "logs/granularity/{env}/reword_levels.log",
    benchmark:
        "logs/benchmarks/granularity/{env}/reword_levels.tsv"
    conda:
        "../../envs/masa.yaml"
    threads: 1
    params:
        code=stage_code("reword_levels.py"),
        teacher=config["teacher"],
        run=RUN,
        categories=lambda wildcards: categories(wildcards.env),
        levels=len(LEVELS),
        seed=config["seed"],
    script:
        "../scripts/reword_levels.py"


use rule evaluate_method as evaluate_granularity_level with:
    input:
        unpack(env_games),
        unpack(backbone_model),
        base=base_library,
        library="results/granularity/{env}/level{level}.json",
    output:
        "results/{backbone}/{env}/granularity/level{level}.json",
    log:
        "logs/{backbone}/{env}/evaluate/granularity_level{level}.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/evaluate/granularity_level{level}.tsv"
    params:
        method="granularity",
        source=lambda wildcards: f"level {wildcards.level}",


rule report_granularity:
    input:
        levels=expand(
            rules.evaluate_granularity_level.output[0],
            backbone=BACKBONES,
            env=ENVS,
            level=LEVELS,
        ),
        controls=[eval_path(b, e, "base_skill") for b in BACKBONES for e in ENVS],
        records=expand(rules.reword_levels.output.record, env=ENVS),
    output:
        table=report(
            "results/report/granularity.csv",
            caption="../report/granularity.rst",
            category="Granularity study",
            labels={"figure": "granularity table (CSV)"},
        ),
        markdown="results/report/granularity.md",
        plot=report(
            "results/report/granularity.png",
            caption="../report/granularity.rst",
            category="Granularity study",
            labels={"figure": "reward change per level of detail"},
        ),
    log:
        "logs/report_granularity.log",
    benchmark:
        "logs/benchmarks/report_granularity.tsv"
    localrule: True
    conda:
        "../../envs/masa.yaml"
    params:
        code=stage_code("report_granularity.py"),
        envs=ENVS,
        resamples=config["evaluation"]["bootstrap_resamples"],
    script:
        "../scripts/report_granularity.py"
