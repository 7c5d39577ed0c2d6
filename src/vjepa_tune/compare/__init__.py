"""Comparing strategies, data sizes and hyperparameters: `compare.grid` (the grid and its folder), `compare.recipe`
(training every point and writing the report) and `compare.command` (the `vjepa-tune compare` flags)."""
