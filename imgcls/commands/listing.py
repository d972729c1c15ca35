"""``imgcls list [group] [pattern] [--input CxHxW [--classes N]]``: config groups and their
options, read from conf/.

Reads the YAML files only (their first comment line is the description), so it needs no
torch import and answers at once; ``--input`` builds the models to count their parameters.
The arguments are read by argparse (:class:`~imgcls.commands.options.OneLineParser`).
"""

from __future__ import annotations

import fnmatch
import io
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from imgcls.base.errors import UserError, unknown_choice
from imgcls.config.files import GROUPS, group_options, option_description

if TYPE_CHECKING:
    from rich.table import Table

from imgcls.commands.options import OneLineParser
from imgcls.models.overview import (
    SOURCES,
    FactsRequest,
    fact_names,
    facts_request,
    facts_rows,
    model_rows,
    torchvision_names,
    torchvision_rows,
)

ALIASES = {f"{g}s": g for g in GROUPS} | {"augmentations": "augment", "regularizers": "regularizer"}


def resolve_group(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in GROUPS:
        raise unknown_choice("config group", name, GROUPS)
    return name


def option_rows(groups: Sequence[str], pattern: str = "*") -> list[tuple[str, str, str]]:
    return [
        (group, option, option_description(group, option))
        for group in groups
        for option in group_options(group)
        if fnmatch.fnmatch(option, pattern)
    ]


def rows(groups: Sequence[str], pattern: str = "*") -> list[tuple[str, str, str]]:
    found = []
    for group in groups:
        if group == "model":  # families and their variants
            found += [(group, option, text) for option, text in model_rows(pattern)]
        else:
            found += option_rows([group], pattern)
    return found


def parser() -> OneLineParser:
    """The arguments of ``imgcls list``."""
    parse = OneLineParser(
        "list",
        "imgcls list [group] [pattern] [--source imgcls|torchvision|timm] [--input CxHxW "
        "[--classes N]], e.g. imgcls list models 'res*'",
        "Every config group's options with a description; a group and a glob pattern narrow "
        "it. --input CxHxW (models only) also builds each model for that input and shows its "
        "parameters, FLOPs and output size; --classes N (default 10) sets its classes. "
        "--source torchvision or timm (models only) lists that library's classifiers instead.",
    )
    parse.add_argument("group", nargs="?", help="a config group (plural too: models)")
    parse.add_argument("pattern", nargs="?", default="*", help="a glob over option names")
    parse.add_argument("--input", metavar="CxHxW", help="build the models for this input")
    parse.add_argument("--classes", metavar="N", help="classes of the built models")
    parse.add_argument(
        "--source", metavar="NAME", help="models from: imgcls (default), torchvision, timm"
    )
    return parse


def run_list(args: Sequence[str]) -> int:
    """``imgcls list``: print the options table, or the models' facts with ``--input``."""
    options = parser().parse_intermixed_args(list(args))  # options may precede the pattern
    if options.help:
        print(parser().format_help().rstrip())
        return 0
    groups = [resolve_group(options.group)] if options.group else list(GROUPS)
    pattern = options.pattern
    if options.classes is not None and options.input is None:
        raise UserError(
            "--classes goes with --input, e.g. imgcls list models --input 3x32x32 --classes 10"
        )
    source = options.source or "imgcls"
    if source not in SOURCES:
        raise unknown_choice("--source", source, SOURCES)
    if source != "imgcls" and groups != ["model"]:
        raise UserError(f"--source applies to models only: imgcls list models --source {source}")
    if source == "timm":
        return list_timm(pattern, options.input, options.classes)
    if options.input is not None:
        if groups != ["model"]:
            raise UserError("--input applies to models only: imgcls list models --input 3x32x32")
        names = torchvision_names(pattern) if source == "torchvision" else fact_names(pattern)
        return print_facts(names, pattern, facts_request(options.input, options.classes))
    if source == "torchvision":
        return print_torchvision(pattern)
    found = rows(groups, pattern)
    if not found:
        raise UserError(f"no {'/'.join(groups)} option matches '{pattern}'")
    from rich.table import Table

    table = Table("group", "option", "description", box=None, pad_edge=False)
    previous = None
    for group, option, text in found:
        table.add_row(group if group != previous else "", option, text)
        previous = group
    show(table)
    print("\nChoose with group=option, e.g. imgcls train model=resnet; keys with group.key=value.")
    return 0


def print_torchvision(pattern: str) -> int:
    """``imgcls list models --source torchvision``: its classifiers and how to choose each."""
    found = torchvision_rows(pattern)
    if not found:
        raise UserError(f"no torchvision model matches '{pattern}'")
    from rich.table import Table

    table = Table("model", "choose with", box=None, pad_edge=False)
    for row in found:
        table.add_row(*row)
    show(table)
    print("\nParameters and FLOPs for an input: add --input CxHxW, e.g. --input 3x32x32.")
    return 0


def list_timm(pattern: str, shape: str | None, classes: str | None) -> int:
    """``imgcls list models --source timm [pattern] [--input CxHxW]``: timm's architectures."""
    from rich.table import Table

    from imgcls.models import timm_listing  # imports torch and timm

    if shape is None:
        table = Table("timm model", "published weights (model.pretrained=true)", box=None)
        for row in timm_listing.timm_rows(pattern):
            table.add_row(*row)
        show(table)
        print("\nChoose with model=timm model.variant=<name>; --input CxHxW adds params and FLOPs.")
        return 0
    request = facts_request(shape, classes)
    c, h, w = request.shape
    table = Table("timm model", "params", "FLOPs", box=None, pad_edge=False)
    for row in timm_listing.timm_facts_rows(pattern, request):
        table.add_row(*row)
    show(table)
    print(
        f"\nFor one {c}x{h}x{w} input and {request.num_classes} classes, as model=timm builds it."
    )
    return 0


def print_facts(names: Sequence[str], pattern: str, request: FactsRequest) -> int:
    """``imgcls list models --input CxHxW``: parameters and forward FLOPs of each model."""
    if not names:
        raise UserError(f"no model matches '{pattern}'")
    from rich.table import Table

    import imgcls.app.components  # noqa: F401  (registers the models; imports torch)

    c, h, w = request.shape
    table = Table("model", "stem", "params", "FLOPs", box=None, pad_edge=False)
    for row in facts_rows(names, request):
        table.add_row(*row)
    show(table)
    print(
        f"\nFor one {c}x{h}x{w} input and {request.num_classes} classes, stem=auto; FLOPs of "
        f"one forward pass from torch.utils.flop_counter (a multiply-add counts 2)."
    )
    return 0


def show(table: Table) -> None:
    """Print a rich table through ``sys.stdout``, so that a reader gone away (``| head``)
    raises BrokenPipeError for the CLI to end quietly; rich would exit 1 on its own."""
    from rich.console import Console

    console = Console(width=120, file=io.StringIO())
    console.print(table)
    sys.stdout.write(console.file.getvalue())
