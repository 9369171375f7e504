# The library induced from trajectories (induction.enabled; Trace2Skill), evaluated as the method `induced`:
#   results/{backbone}/{env}/induction/episodes.json   the backbone's episodes on the searched categories'
#                                                      search instances, played with the starting library
#                                                      (deepen) or none (scratch), with their cost counters
#   results/induced/{env}/lessons/{slice}.json         analyst {slice}'s episodes, lessons (with evidence),
#                                                      teacher transcript and usage
#   results/induced/{env}/library.json                 the consolidated library (skills.base.<env>: induced
#                                                      makes it the base of every stage)
#   results/induced/{env}/consolidation.json           every merge and conflict decision, with its evidence
#   results/induced/{env}/record.json, teacher.jsonl   the induction's cost (episodes + teacher), every call


rule play_induction_episodes:
    input:
        unpack(env_games),
        unpack(backbone_model),
        unpack(induction_start),
    output:
        "results/{backbone}/{env}/induction/episodes.json",
    log:
        "logs/{backbone}/{env}/play_induction_episodes.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/play_induction_episodes.tsv"
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
        env=env_for("search"),
        run=RUN,
        code=stage_code("play_induction_episodes.py"),
        heldout=HELDOUT,
    script:
        "../scripts/play_induction_episodes.py"


rule analyse_episodes:
    input:
        unpack(teacher_model),
        episodes=induction_episodes,
    output:
        "results/induced/{env}/lessons/{slice}.json",
    log:
        "logs/induced/{env}/analyse_episodes/{slice}.log",
    benchmark:
        "logs/benchmarks/induced/{env}/analyse_episodes/{slice}.tsv"
    conda:
        "../../envs/masa.yaml"
    threads: 1
    params:
        code=stage_code("analyse_episodes.py"),
        teacher=config["teacher"],
        categories=lambda wildcards: searched_categories(wildcards.env),
        index=lambda wildcards: int(wildcards.slice),
        analysts=INDUCTION["analysts"],
        max_lessons=INDUCTION["max_lessons"],
        seed=config["seed"],
    script:
        "../scripts/analyse_episodes.py"


rule consolidate_lessons:
    input:
        unpack(induction_start),
        unpack(teacher_model),
        lessons=expand(
            "results/induced/{{env}}/lessons/{slice}.json",
            slice=range(INDUCTION["analysts"]),
        ),
        episodes=induction_episodes,
    output:
        library=INDUCED_LIBRARY,
        consolidation="results/induced/{env}/consolidation.json",
        record="results/induced/{env}/record.json",
        transcript="results/induced/{env}/teacher.jsonl",
    log:
        "logs/induced/{env}/consolidate_lessons.log",
    benchmark:
        "logs/benchmarks/induced/{env}/consolidate_lessons.tsv"
    conda:
        "../../envs/masa.yaml"
    threads: 1
    params:
        code=stage_code("consolidate_lessons.py"),
        teacher=config["teacher"],
        seed=config["seed"],
        # what loading the starting library depends on (its category names and text caps)
        run={
            k: RUN[k]
            for k in ("category_map", "include_skill_files", "max_skill_chars")
        },
    script:
        "../scripts/consolidate_lessons.py"
