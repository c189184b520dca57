"""Experiments over many runs: compare (cells), paper tables (reproduce), MDP-family evaluation."""
