"""Table 3 timing: model rows (PAV-DiT, its baselines) at a preset size, and how they are timed."""
