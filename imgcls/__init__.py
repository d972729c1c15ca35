"""imgcls: a config-driven command-line experiment runner for image classification.

Importing this package must stay cheap: no torch here (``imgcls --help`` relies on it).
"""

import time

__version__ = "0.1.0"
# When the program started importing imgcls: summary.json's timings.startup counts from here
# (imports of torch and the rest, composing the config) for the first job of a process.
IMPORTED_AT = time.perf_counter()
