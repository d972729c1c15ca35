"""Datasets (registered in DATASETS), the in-memory device loader and batched augmentation.

Each dataset module registers itself when imported; :mod:`imgcls.app.components` imports them.
"""
