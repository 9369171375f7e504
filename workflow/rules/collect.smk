# Target rules: stop after a stage, e.g. `snakemake --profile profiles/local trajectories`. Each only
# collects the outputs of its stage for every backbone and environment (plus what they need to be built).


rule profiles:
    input:
        expand(rules.build_model_profile.output.card, backbone=BACKBONES),


rule general_skills:
    input:
        expand(rules.climb_general_skills.output.library, backbone=BACKBONES, env=ENVS),


rule libraries:
    input:
        expand(rules.merge_library.output.library, backbone=BACKBONES, env=ENVS),


rule lifecycle:
    input:
        rules.report_lifecycle.output,


rule trajectories:
    input:
        expand(rules.export_trajectories.output[0], backbone=BACKBONES, env=ENVS),


rule rewriters:
    input:
        expand(rules.train_rewriter.output.adapter, env=ENVS),


rule evaluations:
    input:
        list(EVALUATIONS),
        SWAPS,
        AGREEMENTS,
        CONTRIBUTIONS,


rule induced_libraries:
    input:
        (
            expand(rules.consolidate_lessons.output.library, env=ENVS)
            if INDUCTION["enabled"]
            else []
        ),


# The studies beside the method (issue 16; each off unless enabled): granularity, lifecycle.
rule studies:
    input:
        rules.report_granularity.output if config["granularity"]["enabled"] else [],
        rules.report_lifecycle.output if config["lifecycle"]["enabled"] else [],
