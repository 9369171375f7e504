# Trajectory export: one Parquet dataset, results/trajectories/, hive-partitioned by backbone and env
# (results/trajectories/backbone={backbone}/env={env}/part-0.parquet, one file per job so each is cached);
# one row per evaluated candidate of Stage 1 and of every Stage 2 tree (schema:
# masa.stages.export.TRAJECTORY_COLUMNS, README). pd.read_parquet("results/trajectories") reads it all.


rule export_trajectories:
    input:
        search_records,
    output:
        "results/trajectories/backbone={backbone}/env={env}/part-0.parquet",
    log:
        "logs/{backbone}/{env}/export_trajectories.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/export_trajectories.tsv"
    priority: LONGEST_PATH_PRIORITY
    localrule: True
    conda:
        "../../envs/masa.yaml"
    params:
        code=stage_code("export_trajectories.py"),
        backbone=lambda wildcards: wildcards.backbone,
        env=lambda wildcards: wildcards.env,
    script:
        "../scripts/export_trajectories.py"


# Agent Skills export: results/{backbone}/{env}/agent_skills/<group>/SKILL.md for the final MASA library
# (general, task-<category>, mistakes); SkillLibrary.load reads such a folder back losslessly.
rule export_agent_skills:
    input:
        library=rules.merge_library.output.library,
    output:
        directory("results/{backbone}/{env}/agent_skills"),
    log:
        "logs/{backbone}/{env}/export_agent_skills.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/export_agent_skills.tsv"
    localrule: True
    conda:
        "../../envs/masa.yaml"
    params:
        code=stage_code("export_agent_skills.py"),
    script:
        "../scripts/export_agent_skills.py"
