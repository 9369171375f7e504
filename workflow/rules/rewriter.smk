# The rewriter, shared by all backbones of an environment (it is conditioned on the model card):
#   results/rewriter/{env}/train.parquet     (card, input skills, task) -> evolved skills examples
#   results/rewriter/{env}/adapter/          the LoRA adapter (peft.PeftModel.from_pretrained loads it) or
#                                            the full fine-tune; training.json (cost), loss_curve.json
#   results/rewriter/{env}/loss.png          its training loss
#   results/{backbone}/{env}/rewriter/       the skills it writes for each backbone in one pass, no search
# A train_checkpoint.pt beside them (every rewriter.checkpoint_every steps) lets a killed job resume.
# Trained on TRAINING_BACKBONES (rewriter.heldout_backbones excluded) and the non-held-out categories.
from masa.stages.rewriter import INFERENCE_KEYS, TRAINING_KEYS

# rewriter.base_model: a packaged model (its prepared folder, an input), a local folder (an input, so that
# replacing it re-trains) or an organisation/name the job's model cache resolves (a param only).
REWRITER_NAME = config["rewriter"]["base_model"]
REWRITER_BASE = (
    model_folder({"packaged": REWRITER_NAME})
    if REWRITER_NAME in PACKAGED_MODELS
    else REWRITER_NAME
)
REWRITER_TRAINING = {
    k: config["rewriter"][k] for k in TRAINING_KEYS if k in config["rewriter"]
}
REWRITER_INFERENCE = {k: config["rewriter"][k] for k in INFERENCE_KEYS}
REWRITER_INPUT = (
    {"base_model": REWRITER_BASE}
    if REWRITER_NAME in PACKAGED_MODELS or Path(REWRITER_NAME).is_dir()
    else {}
)


rule build_rewriter_data:
    input:
        trajectories=expand(
            "results/trajectories/backbone={backbone}/env={{env}}/part-0.parquet",
            backbone=TRAINING_BACKBONES,
        ),
        cards=expand(
            "results/{backbone}/profile/card.yaml", backbone=TRAINING_BACKBONES
        ),
        base=base_library,
        teacher=lambda wildcards: list(teacher_rewrites(wildcards.env).values()),
    output:
        "results/rewriter/{env}/train.parquet",
    log:
        "logs/rewriter/{env}/build_rewriter_data.log",
    benchmark:
        "logs/benchmarks/rewriter/{env}/build_rewriter_data.tsv"
    priority: LONGEST_PATH_PRIORITY
    conda:
        "../../envs/masa.yaml"
    params:
        code=stage_code("build_rewriter_data.py"),
        sources=lambda wildcards: rewriter_sources([wildcards.env]),
        heldout_environments=[],
        backbones=TRAINING_BACKBONES,
        heldout=HELDOUT,
        heldout_backbones=HELDOUT_BACKBONES,
        min_reward_quantile=config["rewriter"]["min_reward_quantile"],
        targets=config["rewriter"]["targets"],
        seed=config["seed"],
    script:
        "../scripts/build_rewriter_data.py"


rule train_rewriter:
    input:
        unpack(lambda wildcards: REWRITER_INPUT),
        data=rules.build_rewriter_data.output[0],
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
        "logs/benchmarks/rewriter/{env}/train_rewriter.tsv"
    priority: LONGEST_PATH_PRIORITY
    conda:
        "../../envs/masa.yaml"
    # torch takes the node's cores whatever this says; 2 here left the training waiting behind one-thread jobs
    # until both of a laptop's cores were free at once. A cluster sets its CPUs in profiles/slurm (set-threads).
    threads: 1
    resources:
        gpu=config["rewriter"]["gpus"],
        mem_mb=lambda wildcards, attempt: config["rewriter"]["mem_mb"] * attempt,
        runtime=config["rewriter"]["runtime"],
    params:
        code=stage_code("train_rewriter.py"),
        base_model=REWRITER_BASE,
        training=REWRITER_TRAINING,
        seed=config["seed"],
        checkpoint="results/rewriter/{env}/train_checkpoint.pt",
    message:
        "Train the {wildcards.env} rewriter: {params.base_model}, {params.training[method]} fine-tuning, "
        "{resources.gpu} GPU(s), {resources.mem_mb} MB, held-out categories: "
        + (", ".join(HELDOUT) or "none")
    script:
        "../scripts/train_rewriter.py"


rule apply_rewriter:
    input:
        unpack(lambda wildcards: REWRITER_INPUT),
        adapter=rules.train_rewriter.output.adapter,
        card=rules.build_model_profile.output.card,
        base=base_library,
    output:
        library="results/{backbone}/{env}/rewriter/library.json",
        record="results/{backbone}/{env}/rewriter/record.json",
    log:
        "logs/{backbone}/{env}/apply_rewriter.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/apply_rewriter.tsv"
    priority: LONGEST_PATH_PRIORITY
    conda:
        "../../envs/masa.yaml"
    threads: 1
    resources:
        gpu=config["rewriter"]["gpus"],
    params:
        code=stage_code("apply_rewriter.py"),
        base_model=REWRITER_BASE,
        env=lambda wildcards: wildcards.env,
        categories=lambda wildcards: categories(wildcards.env),
        heldout=HELDOUT,
        inference=REWRITER_INFERENCE,
        seed=config["seed"],
    script:
        "../scripts/apply_rewriter.py"
