# The rewriter, shared by all backbones of an environment (it is conditioned on the model card):
#   results/rewriter/{env}/train.parquet     (card, input skills, task) -> evolved skills examples
#   results/rewriter/{env}/adapter/          the LoRA adapter (peft.PeftModel.from_pretrained loads it)
#   results/rewriter/{env}/loss.png          its training loss
#   results/{backbone}/{env}/rewriter/       the skills it writes for each backbone in one pass, no search
REWRITER_BASE = f"resources/models/{config['rewriter']['base_model']}"


rule build_rewriter_data:
    input:
        trajectories=expand(
            "results/{backbone}/{{env}}/trajectories.parquet", backbone=BACKBONES
        ),
        cards=expand("results/{backbone}/profile/card.yaml", backbone=BACKBONES),
        base=base_library,
    output:
        "results/rewriter/{env}/train.parquet",
    log:
        "logs/rewriter/{env}/build_rewriter_data.log",
    benchmark:
        "benchmarks/rewriter/{env}/build_rewriter_data.tsv"
    conda:
        "../../envs/masa.yaml"
    params:
        env=lambda wildcards: wildcards.env,
        categories=lambda wildcards: categories(wildcards.env),
        backbones=BACKBONES,
        heldout=HELDOUT,
        min_reward_quantile=config["rewriter"]["min_reward_quantile"],
        seed=config["seed"],
    script:
        "../scripts/build_rewriter_data.py"


rule train_rewriter:
    input:
        data=rules.build_rewriter_data.output[0],
        base_model=REWRITER_BASE,
    output:
        adapter=directory("results/rewriter/{env}/adapter"),
        loss=report(
            "results/rewriter/{env}/loss.png",
            caption="../report/rewriter_loss.rst",
            category="Rewriter",
        ),
    log:
        "logs/rewriter/{env}/train_rewriter.log",
    benchmark:
        "benchmarks/rewriter/{env}/train_rewriter.tsv"
    conda:
        "../../envs/masa.yaml"
    threads: 2
    resources:
        gpu=1 if config["rewriter"]["method"] == "full" else 0,
    params:
        training=config["rewriter"],
        seed=config["seed"],
    script:
        "../scripts/train_rewriter.py"


rule apply_rewriter:
    input:
        adapter=rules.train_rewriter.output.adapter,
        base_model=REWRITER_BASE,
        card=rules.build_model_profile.output.card,
        base=base_library,
    output:
        library="results/{backbone}/{env}/rewriter/library.json",
        record="results/{backbone}/{env}/rewriter/record.json",
    log:
        "logs/{backbone}/{env}/apply_rewriter.log",
    benchmark:
        "benchmarks/{backbone}/{env}/apply_rewriter.tsv"
    conda:
        "../../envs/masa.yaml"
    threads: 1
    params:
        env=lambda wildcards: wildcards.env,
        categories=lambda wildcards: categories(wildcards.env),
        inference=config["rewriter"],
        seed=config["seed"],
    script:
        "../scripts/apply_rewriter.py"
