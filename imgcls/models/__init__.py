"""Model families, one module per family; each registers its variants in MODELS.

Importing this package imports no torch (``imgcls list`` reads :mod:`imgcls.models.catalog`);
:mod:`imgcls.models.zoo` imports the families, which registers them.
"""
