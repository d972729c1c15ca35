"""``python -m imgcls`` is the same program as ``imgcls`` (torchrun launches this form)."""

from imgcls.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
