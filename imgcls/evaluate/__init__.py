"""Reading results: metrics, inference from a run, plots, ensembles, leaderboards, trackers.

Modules here import torch lazily where they can, so ``imgcls --help`` stays torch-free.
"""
