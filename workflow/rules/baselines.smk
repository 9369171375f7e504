# Baselines and ablations that need a library of their own (the others evaluate a stage's output as it is:
# masa_no_stage2 is Stage 1's library, general/library.json):
#   results/{backbone}/{env}/adapter/               library.json, record.json (teacher usage, seconds),
#                                                   teacher.jsonl: one card-conditioned teacher rewrite
#   results/{backbone}/{env}/ablation/no_stage1/    task/{category}/ and library.json: Stage 2 searched on
#                                                   the base general skills (the task-search rule, reused)
#   results/{backbone}/{env}/rewriter_no_card/      library.json, record.json: the rewriter, empty card


rule adapt_library:
    input:
        unpack(teacher_model),
        base=base_library,
        card=rules.build_model_profile.output.card,
    output:
        library="results/{backbone}/{env}/adapter/library.json",
        record="results/{backbone}/{env}/adapter/record.json",
        transcript="results/{backbone}/{env}/adapter/teacher.jsonl",
    log:
        "logs/{backbone}/{env}/adapt_library.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/adapt_library.tsv"
    priority: LONGEST_PATH_PRIORITY  # its rewrites are rewriter training examples
    conda:
        "../../envs/masa.yaml"
    threads: 1
    params:
        code=stage_code("adapt_library.py"),
        teacher=config["teacher"],
        categories=lambda wildcards: categories(wildcards.env),
        seed=config["seed"],
    script:
        "../scripts/adapt_library.py"


use rule search_task_skills as search_task_skills_no_stage1 with:
    input:
        unpack(backbone_model),
        unpack(teacher_model),
        base=base_library,
        general=base_library,
        card=rules.build_model_profile.output.card,
    output:
        library="results/{backbone}/{env}/ablation/no_stage1/task/{category}/library.json",
        tree="results/{backbone}/{env}/ablation/no_stage1/task/{category}/tree.json",
        transcript="results/{backbone}/{env}/ablation/no_stage1/task/{category}/teacher.jsonl",
    log:
        "logs/{backbone}/{env}/ablation/no_stage1/search_task_skills/{category}.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/ablation/no_stage1/search_task_skills/{category}.tsv"
    params:
        checkpoint="results/{backbone}/{env}/ablation/no_stage1/task/{category}/checkpoint.json",


use rule merge_library as merge_library_no_stage1 with:
    input:
        unpack(
            lambda wildcards: category_libraries(
                wildcards, rules.search_task_skills_no_stage1.output.library
            )
        ),
        general=base_library,
    output:
        library="results/{backbone}/{env}/ablation/no_stage1/library.json",
    log:
        "logs/{backbone}/{env}/ablation/no_stage1/merge_library.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/ablation/no_stage1/merge_library.tsv"


use rule apply_rewriter as apply_rewriter_no_card with:
    input:
        unpack(lambda wildcards: REWRITER_INPUT),
        adapter=rules.train_rewriter.output.adapter,
        base=base_library,
    output:
        library="results/{backbone}/{env}/rewriter_no_card/library.json",
        record="results/{backbone}/{env}/rewriter_no_card/record.json",
    log:
        "logs/{backbone}/{env}/apply_rewriter_no_card.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/apply_rewriter_no_card.tsv"


# The untrained rewriter (the paper's "4B-Rewrite"): the rewriter's base model, no adapter, the same prompt.
use rule apply_rewriter as apply_untrained_rewriter with:
    input:
        unpack(lambda wildcards: REWRITER_INPUT),
        card=rules.build_model_profile.output.card,
        base=base_library,
    output:
        library="results/{backbone}/{env}/rewriter_untrained/library.json",
        record="results/{backbone}/{env}/rewriter_untrained/record.json",
    log:
        "logs/{backbone}/{env}/apply_untrained_rewriter.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/apply_untrained_rewriter.tsv"


# The cross-environment rewriter of {env}: trained on every other environment's trajectories and never on
# {env}'s (checked in code), it writes {env}'s skills: results/rewriter_cross_env/{env}/ like
# results/rewriter/{env}/, and results/{backbone}/{env}/rewriter_cross_env/library.json.
use rule build_rewriter_data as build_cross_env_rewriter_data with:
    input:
        trajectories=lambda wildcards: [
            f"results/trajectories/backbone={b}/env={e}/part-0.parquet"
            for e in other_envs(wildcards.env)
            for b in TRAINING_BACKBONES
        ],
        cards=expand(
            "results/{backbone}/profile/card.yaml", backbone=TRAINING_BACKBONES
        ),
        base=lambda wildcards: [base_path(e) for e in other_envs(wildcards.env)],
        teacher=lambda wildcards: [
            path
            for e in other_envs(wildcards.env)
            for path in teacher_rewrites(e).values()
        ],
    output:
        "results/rewriter_cross_env/{env}/train.parquet",
    log:
        "logs/rewriter_cross_env/{env}/build_rewriter_data.log",
    benchmark:
        "logs/benchmarks/rewriter_cross_env/{env}/build_rewriter_data.tsv"
    params:
        sources=lambda wildcards: rewriter_sources(other_envs(wildcards.env)),
        heldout_environments=lambda wildcards: [wildcards.env],


use rule train_rewriter as train_cross_env_rewriter with:
    input:
        unpack(lambda wildcards: REWRITER_INPUT),
        data=rules.build_cross_env_rewriter_data.output[0],
    output:
        adapter=directory("results/rewriter_cross_env/{env}/adapter"),
        loss="results/rewriter_cross_env/{env}/loss.png",
    log:
        "logs/rewriter_cross_env/{env}/train_rewriter.log",
    benchmark:
        "logs/benchmarks/rewriter_cross_env/{env}/train_rewriter.tsv"
    params:
        checkpoint="results/rewriter_cross_env/{env}/train_checkpoint.pt",
    message:
        "Train the cross-environment rewriter of {wildcards.env} on the other environments: "
        "{params.base_model}, {params.training[method]} fine-tuning, {resources.gpu} GPU(s)"


use rule apply_rewriter as apply_cross_env_rewriter with:
    input:
        unpack(lambda wildcards: REWRITER_INPUT),
        adapter=rules.train_cross_env_rewriter.output.adapter,
        card=rules.build_model_profile.output.card,
        base=base_library,
    output:
        library="results/{backbone}/{env}/rewriter_cross_env/library.json",
        record="results/{backbone}/{env}/rewriter_cross_env/record.json",
    log:
        "logs/{backbone}/{env}/apply_cross_env_rewriter.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/apply_cross_env_rewriter.tsv"
