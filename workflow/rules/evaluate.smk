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
        "benchmarks/{backbone}/{env}/evaluate/{method}.tsv"
    conda:
        "../../envs/masa.yaml"
    threads: 1
    resources:
        gpu=backbone_gpus,
    params:
        backbone=backbone_param,
        env=env_param,
        run=RUN,
        evaluation=config["evaluation"],
        method=lambda wildcards: wildcards.method,
    script:
        "../scripts/evaluate_method.py"
