"""Torch-free config layer: schemas, the config files, composition and Hydra's error texts."""
