"""Commands: one module per ``imgcls`` sub-command; the CLI imports them on demand."""
