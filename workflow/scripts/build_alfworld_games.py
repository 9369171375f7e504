"""Adapter: Snakemake rule build_alfworld_games -> masa.envs.alfworld_games.build_games."""

from pathlib import Path

from masa.envs.alfworld_games import GameSettings, build_games
from masa.process import prepare_process

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
build_games(Path(sm.output.manifest).parent, GameSettings.from_params(sm.params.env, sm.params.seed))
