"""imgcls: a config-driven command-line experiment runner for image classification.

Importing this package must stay cheap: no torch here (``imgcls --help`` relies on it).
"""

__version__ = "0.1.0"
