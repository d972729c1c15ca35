"""Base layer: errors, the run record (every path of a run or sweep folder, the typed
summary, a run's overrides), run writers, checkpoint I/O, processes, progress, versions.

Imports nothing else of imgcls.
"""
