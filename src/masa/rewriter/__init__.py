"""The learned skill rewriter: training data from search trajectories, fine-tuning, and inference."""
