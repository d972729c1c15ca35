"""The argparse parser of the commands that take options (``report``, ``list``).

Its mistakes become the one-line error of every command (exit 2) instead of argparse's usage
dump and its own exit; abbreviations are refused, so an option is spelled out or refused.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from imgcls.base.errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes raise :class:`UserError` (one line, exit 2) rather
    than printing the usage and exiting by itself."""

    def __init__(self, command: str, usage: str, description: str = "") -> None:
        super().__init__(
            prog=f"imgcls {command}",
            usage=usage,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=False,
            allow_abbrev=False,
        )
        self.command = command
        self.add_argument("-h", "--help", action="store_true", help="show this help")

    def error(self, message: str) -> NoReturn:
        """Raise argparse's message as the one-line error of imgcls."""
        raise UserError(f"imgcls {self.command}: {message} (see imgcls {self.command} --help)")
