"""Base layer: errors, run folders and files, checkpoint I/O, processes, progress, versions.

Imports nothing else of imgcls.
"""
