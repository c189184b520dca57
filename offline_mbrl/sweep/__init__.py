"""Optuna sweeps: studies of train runs, their search spaces, storage and results."""
