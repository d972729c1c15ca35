"""Application layer: validation, building, the train job, resume, sweeps, loading runs.

It alone imports every component package (:mod:`imgcls.app.components`).
"""
