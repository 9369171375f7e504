"""Playing episodes: the agent, the batched engine, the evaluator with its cache, what keys an episode (settings), what it costs, and expert agreement."""
