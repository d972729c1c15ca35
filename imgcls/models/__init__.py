"""Model families, one module per family; each registers its variants in MODELS.

Importing this package imports no torch (``imgcls list`` reads :mod:`imgcls.config.catalog`);
:mod:`imgcls.app.components` imports the families, which registers them.
"""
