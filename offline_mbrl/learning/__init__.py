"""What algorithms are built from: SAC, rollouts, the one model-based loop (K >= 1 seeds), the penalties,
evaluation and the run (phases, logs, checkpoints). Learning knows models, data and core, never algorithms."""
