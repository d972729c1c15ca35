"""Transfer learning: fine-tuning, L2-SP, domain-adversarial training and distillation.

Importing :mod:`.l2sp` registers the ``l2sp`` regularizer; :mod:`.methods`, :mod:`.dann` and
:mod:`.distill` register the training methods (``standard``, ``dann``, ``distill``).
"""
