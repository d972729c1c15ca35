"""``imgcls list [group] [pattern]``: config groups and their options, read from conf/.

Reads the YAML files only (their first comment line is the description), so it needs no
torch import and answers at once.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from imgcls.config import GROUPS, group_options, option_description
from imgcls.errors import UserError, unknown_choice

ALIASES = {f"{g}s": g for g in GROUPS} | {"augmentations": "augment", "regularizers": "regularizer"}


def resolve_group(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in GROUPS:
        raise unknown_choice("config group", name, GROUPS)
    return name


def rows(groups: Sequence[str], pattern: str = "*") -> list[tuple[str, str, str]]:
    return [
        (group, option, option_description(group, option))
        for group in groups
        for option in group_options(group)
        if fnmatch.fnmatch(option, pattern)
    ]


def run_list(args: Sequence[str]) -> int:
    if len(args) > 2 or any(a.startswith("-") for a in args):
        raise UserError("usage: imgcls list [group] [pattern], e.g. imgcls list models 'res*'")
    groups = [resolve_group(args[0])] if args else list(GROUPS)
    pattern = args[1] if len(args) > 1 else "*"
    found = rows(groups, pattern)
    if not found:
        raise UserError(f"no {'/'.join(groups)} option matches '{pattern}'")
    from rich.console import Console
    from rich.table import Table

    table = Table("group", "option", "description", box=None, pad_edge=False)
    previous = None
    for group, option, text in found:
        table.add_row(group if group != previous else "", option, text)
        previous = group
    Console(width=120).print(table)
    print("\nChoose with group=option, e.g. imgcls train model=resnet; keys with group.key=value.")
    return 0
