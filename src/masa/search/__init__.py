"""The two searches (hill climbing, UCB), their shared loop, candidates, acceptance rules and budget."""
