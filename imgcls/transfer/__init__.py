"""Transfer learning: fine-tuning, L2-SP, domain-adversarial training and distillation.

Importing it registers the ``l2sp`` regularizer and the training methods (``standard``,
``dann``, ``distill``).
"""

from imgcls.transfer import dann, distill, l2sp, methods  # noqa: F401  (registration)
