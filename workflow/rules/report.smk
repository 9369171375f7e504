# Report: results/report/
#   summary.md, summary.csv        every method per backbone x environment: reward, paired change vs Base
#                                  Skill and success with 95% intervals, cost (evaluation + preparation)
#   categories.csv, categories.png held-out success and progress per task category
#   swap.md, swap.csv, swap.png    swap matrix: each backbone's MASA library played by every backbone
#   skill_contribution.csv         leave-one-skill-out changes (evaluation.skill_contribution; else empty)
#   reward.png                     mean reward per backbone and method with 95% intervals
#   {backbone}/{env}/hillclimb.png, tree_{category}.png   Stage 1 curve and each Stage 2 tree
# `snakemake --report report.html` gathers the figures (report() below) with captions in workflow/report/.


EVALUATIONS = {
    eval_path(b, e, m): preparation_records(b, e, m)
    for e in ENVS
    for b in BACKBONES
    for m in METHODS
}
EVALUATIONS |= {
    rules.evaluate_external_library.output[0].format(backbone=b, env=e, label=label): []
    for label, paths in EXTERNAL_LIBRARIES.items()
    for e in paths
    for b in BACKBONES
}
SWAPS = (
    [
        rules.evaluate_swapped_library.output[0].format(
            backbone=user, env=e, source=source
        )
        for e in ENVS
        for user in BACKBONES
        for source in BACKBONES
        if user != source
    ]
    if {"masa", "base_skill"} <= set(METHODS) and config["evaluation"]["swap_matrix"]
    else []
)

AGREEMENTS = (
    [
        rules.score_agreement.output[0].format(backbone=b, env=e)
        for e in ENVS
        if has_expert_path(e, categories(e))
        for b in BACKBONES
    ]
    if config["evaluation"]["agreement"]
    else []
)

CONTRIBUTIONS = (
    expand(rules.skill_contribution.output[0], backbone=BACKBONES, env=ENVS)
    if config["evaluation"]["skill_contribution"]
    else []
)


rule report:
    input:
        evaluations=list(EVALUATIONS),
        costs=sorted({p for records in EVALUATIONS.values() for p in records}),
        swaps=SWAPS,
        contributions=CONTRIBUTIONS,
        agreements=AGREEMENTS,
    output:
        summary="results/report/summary.md",
        table=report(
            "results/report/summary.csv",
            caption="../report/summary.rst",
            category="Held-out evaluation",
            labels={"figure": "method table (CSV)"},
        ),
        plot=report(
            "results/report/reward.png",
            caption="../report/reward.rst",
            category="Held-out evaluation",
            labels={"figure": "reward per method"},
        ),
        categories=report(
            "results/report/categories.csv",
            caption="../report/categories.rst",
            category="Held-out evaluation",
            labels={"figure": "success by category (CSV)"},
        ),
        categories_plot=report(
            "results/report/categories.png",
            caption="../report/categories.rst",
            category="Held-out evaluation",
            labels={"figure": "success by category"},
        ),
        swap=report(
            "results/report/swap.csv",
            caption="../report/swap.rst",
            category="Swap matrix",
            labels={"figure": "swap matrix (CSV)"},
        ),
        swap_md="results/report/swap.md",
        agreement=report(
            "results/report/agreement.csv",
            caption="../report/agreement.rst",
            category="Held-out evaluation",
            labels={"figure": "expert agreement vs reward (CSV)"},
        ),
        contribution=report(
            "results/report/skill_contribution.csv",
            caption="../report/skill_contribution.rst",
            category="Held-out evaluation",
            labels={"figure": "per-skill contribution (CSV)"},
        ),
        swap_plot=report(
            "results/report/swap.png",
            caption="../report/swap.rst",
            category="Swap matrix",
            labels={"figure": "swap matrix heatmap"},
        ),
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv"
    localrule: True
    conda:
        "../../envs/masa.yaml"
    params:
        code=stage_code("report.py"),
        evaluations=EVALUATIONS,
        resamples=config["evaluation"]["bootstrap_resamples"],
        notes={
            "noop_penalty": config["reward"]["noop_penalty"],
            "seeds": config["evaluation"]["seeds"],
            "category_map": config["skills"]["category_map"],
        },
    script:
        "../scripts/report.py"


rule plot_hillclimb:
    input:
        rules.climb_general_skills.output.candidates,
    output:
        report(
            "results/report/{backbone}/{env}/hillclimb.png",
            caption="../report/hillclimb.rst",
            category="Search",
            subcategory="{backbone} on {env}",
            labels={
                "backbone": "{backbone}",
                "env": "{env}",
                "figure": "Stage 1 hill climbing",
            },
        ),
    log:
        "logs/{backbone}/{env}/plot_hillclimb.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/plot_hillclimb.tsv"
    localrule: True
    conda:
        "../../envs/masa.yaml"
    params:
        code=stage_code("plot_search.py"),
        title="Stage 1 hill climbing: {backbone} on {env}",
    script:
        "../scripts/plot_search.py"


use rule plot_hillclimb as plot_tree with:
    input:
        rules.search_task_skills.output.tree,
    output:
        report(
            "results/report/{backbone}/{env}/tree_{category}.png",
            caption="../report/tree.rst",
            category="Search",
            subcategory="{backbone} on {env}",
            labels={
                "backbone": "{backbone}",
                "env": "{env}",
                "figure": "Stage 2 UCB tree: {category}",
            },
        ),
    log:
        "logs/{backbone}/{env}/plot_tree/{category}.log",
    benchmark:
        "logs/benchmarks/{backbone}/{env}/plot_tree/{category}.tsv"
    localrule: True
    params:
        title="Stage 2 UCB tree: {backbone} on {env}, {category}",


rule figures:
    input:
        expand(rules.plot_hillclimb.output[0], backbone=BACKBONES, env=ENVS),
        [
            rules.plot_tree.output[0].format(backbone=b, env=e, category=c)
            for b in BACKBONES
            for e in ENVS
            for c in searched_categories(e)
        ],
        expand(rules.export_agent_skills.output[0], backbone=BACKBONES, env=ENVS),
