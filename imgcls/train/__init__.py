"""The training engine and its parts; optimizers, schedules and regularizers (registered)."""
