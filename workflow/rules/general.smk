# Stage 1, general-skill hill climbing: results/{backbone}/{env}/general/
#   library.json     the best library (general skills searched, task skills initial)
#   candidates.json  every candidate with its evaluation (feeds the trajectory export)
#   teacher.jsonl    every teacher prompt and reply
# A checkpoint.json beside them lets a killed job resume from its last finished iteration.


rule climb_general_skills:
    input:
        unpack(env_games),
        unpack(backbone_model),
        unpack(teacher_model),
        base=base_library,
        card=rules.build_model_profile.output.card,
    output:
        library="results/{backbone}/{env}/general/library.json",
        candidates="results/{backbone}/{env}/general/candidates.json",
        transcript="results/{backbone}/{env}/general/teacher.jsonl",
    log:
        "logs/{backbone}/{env}/climb_general_skills.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/climb_general_skills.tsv"
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
        code=stage_code("climb_general_skills.py"),
        teacher=config["teacher"],
        search=config["hillclimb"],
        heldout=HELDOUT,
        checkpoint="results/{backbone}/{env}/general/checkpoint.json",
    script:
        "../scripts/climb_general_skills.py"
