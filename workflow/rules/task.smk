# Stage 2, task-skill UCB tree search, one job per category: results/{backbone}/{env}/task/{category}/
#   library.json (best node), tree.json (every node with visits and values), teacher.jsonl.
# Then the merged library results/{backbone}/{env}/library.json: Stage 1's general skills plus each
# searched category's best task skills (held-out categories keep their initial task skills).


rule search_task_skills:
    input:
        unpack(env_games),
        unpack(backbone_model),
        unpack(teacher_model),
        base=base_library,
        general=rules.climb_general_skills.output.library,
        card=rules.build_model_profile.output.card,
    output:
        library="results/{backbone}/{env}/task/{category}/library.json",
        tree="results/{backbone}/{env}/task/{category}/tree.json",
        transcript="results/{backbone}/{env}/task/{category}/teacher.jsonl",
    log:
        "logs/{backbone}/{env}/search_task_skills/{category}.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/search_task_skills/{category}.tsv"
    priority: LONGEST_PATH_PRIORITY
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
        code=stage_code("search_task_skills.py"),
        teacher=config["teacher"],
        search=config["ucb"],
        category=lambda wildcards: wildcards.category,
        checkpoint="results/{backbone}/{env}/task/{category}/checkpoint.json",
    script:
        "../scripts/search_task_skills.py"


rule merge_library:
    input:
        unpack(category_libraries),
        general=rules.climb_general_skills.output.library,
    output:
        library="results/{backbone}/{env}/library.json",
    log:
        "logs/{backbone}/{env}/merge_library.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/merge_library.tsv"
    priority: LONGEST_PATH_PRIORITY
    localrule: True
    conda:
        "../../envs/masa.yaml"
    params:
        code=stage_code("merge_library.py"),
        categories=lambda wildcards: searched_categories(wildcards.env),
    script:
        "../scripts/merge_library.py"
