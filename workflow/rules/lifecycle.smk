# The skill lifecycle (lifecycle.enabled; masa.search.lifecycle states its rules), one job per backbone x
# environment after the searches: the merged MASA library left out skill by skill on the search instances of
# the searched categories, negligible skills retired, missing ones added by the teacher:
#   results/{backbone}/{env}/lifecycle/  library.json (method masa_lifecycle), decisions.json (every decision
#                                        with its evidence), record.json (cost), teacher.jsonl
# and results/report/lifecycle.{csv,md}: each skill's contribution and decision, backbones side by side.
LIFECYCLE_RULES = {
    k: config["lifecycle"][k]
    for k in ("retire_margin", "min_exposure", "expand_min_failures", "max_new_skills")
}


rule run_lifecycle:
    input:
        unpack(env_games),
        unpack(backbone_model),
        unpack(teacher_model),
        base=base_library,
        library=rules.merge_library.output.library,
        card=rules.build_model_profile.output.card,
    output:
        library="results/{backbone}/{env}/lifecycle/library.json",
        decisions="results/{backbone}/{env}/lifecycle/decisions.json",
        record="results/{backbone}/{env}/lifecycle/record.json",
        transcript="results/{backbone}/{env}/lifecycle/teacher.jsonl",
    log:
        "logs/{backbone}/{env}/run_lifecycle.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/run_lifecycle.tsv"
    conda:
        "../../envs/masa.yaml"
    threads: 1
    resources:
        gpu=search_gpus,
        episodes_in_flight=EPISODES_IN_FLIGHT,
        cache_dir=CACHE_DIR,
        heap_mb=heap_mb,
    params:
        backbone=backbone_param,
        env=env_for("search"),
        run=RUN,
        code=stage_code("run_lifecycle.py"),
        teacher=config["teacher"],
        lifecycle=LIFECYCLE_RULES,
        heldout=lambda wildcards: [c for c in categories(wildcards.env) if c in HELDOUT],
        resamples=config["evaluation"]["bootstrap_resamples"],
    script:
        "../scripts/run_lifecycle.py"


rule report_lifecycle:
    input:
        decisions=expand(
            rules.run_lifecycle.output.decisions, backbone=BACKBONES, env=ENVS
        ),
        records=expand(rules.run_lifecycle.output.record, backbone=BACKBONES, env=ENVS),
    output:
        table=report(
            "results/report/lifecycle.csv",
            caption="../report/lifecycle.rst",
            category="Skill lifecycle",
            labels={
                "figure": "contribution and decision per skill and backbone (CSV)"
            },
        ),
        markdown="results/report/lifecycle.md",
    log:
        "logs/report_lifecycle.log",
    benchmark:
        "logs/benchmarks/report_lifecycle.tsv"
    localrule: True
    conda:
        "../../envs/masa.yaml"
    params:
        code=stage_code("report_lifecycle.py"),
        backbones=BACKBONES,
    script:
        "../scripts/report_lifecycle.py"
