"""The teacher: the model card it reads, its prompts and replies (teachers), and the counts of its replies."""
