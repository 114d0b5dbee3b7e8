"""Katib Experiments: spec validation, the local engine (Optuna samplers), status documents."""
