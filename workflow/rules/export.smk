# Trajectory export: results/{backbone}/{env}/trajectories.parquet, one row per evaluated candidate of
# Stage 1 and of every Stage 2 tree (schema: masa.stages.export.TRAJECTORY_COLUMNS, README).


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
    conda:
        "../../envs/masa.yaml"
    params:
        backbone=lambda wildcards: wildcards.backbone,
        env=lambda wildcards: wildcards.env,
    script:
        "../scripts/export_trajectories.py"
