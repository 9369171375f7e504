# Model profile: results/{backbone}/profile/card.yaml (architecture read from the weights, provenance from
# config, weaknesses summarised by the teacher from preliminary rollouts on dev-split instances), with the
# rollouts and the teacher's transcript beside it.


rule build_model_profile:
    input:
        unpack(lambda wildcards: env_games(PROFILE_ENV)),
        unpack(backbone_model),
        unpack(teacher_model),
        base=base_path(PROFILE_ENV),
    output:
        card="results/{backbone}/profile/card.yaml",
        rollouts="results/{backbone}/profile/rollouts.json",
        transcript="results/{backbone}/profile/teacher.jsonl",
    log:
        "logs/{backbone}/build_model_profile.log",
    benchmark:
        "logs/benchmarks/{backbone}/build_model_profile.tsv"
    priority: LONGEST_PATH_PRIORITY
    conda:
        "../../envs/masa.yaml"
    threads: 1
    resources:
        gpu=search_gpus,
        episodes_in_flight=EPISODES_IN_FLIGHT,
        cache_dir=CACHE_DIR,
        heap_mb=heap_mb(PROFILE_ENV),
    params:
        backbone=backbone_param,
        env=env_for("profile", PROFILE_ENV),
        run=RUN,
        code=stage_code("build_model_profile.py"),
        teacher=config["teacher"],
    script:
        "../scripts/build_model_profile.py"
