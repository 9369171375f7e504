# Generated ALFWorld-style games (environments with source: generated), built once from what the alfworld
# wheel ships and cached: resources/games/{env}/manifest.json lists every kept game (split, category, file,
# sha256, walkthrough length, planner seconds) and every dropped one with the reason. Every rule that plays
# an environment takes the manifest as input through env_games, so the games exist before any rollout.
# Only the keys that shape the games are params: changing an instance count or max_steps rebuilds nothing.
GAME_KEYS = ("tasks", "games", "max_receptacles", "distractors", "planner_timeout")


rule build_alfworld_games:
    output:
        manifest="resources/games/{env}/manifest.json",
    log:
        "logs/games/{env}.log",
    benchmark:
        "logs/benchmarks/games/{env}.tsv"
    priority: LONGEST_PATH_PRIORITY
    conda:
        "../../envs/masa.yaml"
    threads: 1
    params:
        code=stage_code("build_alfworld_games.py"),
        env=lambda wildcards: {
            k: v
            for k, v in config["environments"][wildcards.env].items()
            if k in GAME_KEYS
        },
        seed=config["seed"],
    script:
        "../scripts/build_alfworld_games.py"
