"""Adapter: Snakemake rule export_agent_skills -> masa.skills.agentskills.write_folder."""

from masa.process import prepare_process
from masa.skills.agentskills import write_folder
from masa.skills.library import SkillLibrary

sm = snakemake  # noqa: F821 - injected by Snakemake
prepare_process(sm.log[0])
write_folder(SkillLibrary.load(sm.input.library), sm.output[0])
