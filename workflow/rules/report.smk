# Report: results/report/summary.md (a table per backbone x environment with every method), summary.csv
# and reward.png (mean held-out reward per backbone and method with 95% intervals).


rule report:
    input:
        expand(
            "results/{backbone}/{env}/eval/{method}.json",
            backbone=BACKBONES,
            env=ENVS,
            method=METHODS,
        ),
    output:
        summary="results/report/summary.md",
        table="results/report/summary.csv",
        plot=report(
            "results/report/reward.png",
            caption="../report/reward.rst",
            category="Held-out evaluation",
        ),
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    localrule: True
    conda:
        "../../envs/masa.yaml"
    params:
        notes={
            "noop_penalty": config["reward"]["noop_penalty"],
            "seeds": config["evaluation"]["seeds"],
        },
    script:
        "../scripts/report.py"
