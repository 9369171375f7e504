# Trajectory export: results/{backbone}/{env}/trajectories.parquet, one row per evaluated candidate of
# Stage 1 and of every Stage 2 tree (schema: masa.stages.export.TRAJECTORY_COLUMNS, README).


def search_records(wildcards):
    return [rules.climb_general_skills.output.candidates.format(**wildcards)] + [
        rules.search_task_skills.output.tree.format(category=c, **wildcards)
        for c in searched_categories(wildcards.env)
    ]


rule export_trajectories:
    input:
        search_records,
    output:
        "results/{backbone}/{env}/trajectories.parquet",
    log:
        "logs/{backbone}/{env}/export_trajectories.log",
    benchmark:
        "benchmarks/{backbone}/{env}/export_trajectories.tsv"
    localrule: True
    params:
        backbone=lambda wildcards: wildcards.backbone,
        env=lambda wildcards: wildcards.env,
    script:
        "../scripts/export_trajectories.py"
