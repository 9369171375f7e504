"""Skill libraries: the format (library), Agent Skills folders (agentskills), and retrieval."""
