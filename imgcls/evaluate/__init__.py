"""Reading results: metrics, plots, charts, leaderboards and the HTML report.

Inference from a run and ensembles live in :mod:`imgcls.app.inference`; trackers in
:mod:`imgcls.loggers`. Modules here import torch lazily where they can, so that ``imgcls report``
stays fast.
"""
