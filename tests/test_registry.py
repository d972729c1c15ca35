"""The generic registry: lookup, did-you-mean, options objects with their rules, runtime values."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional  # noqa: UP035

import pytest

from imgcls.base.errors import OptionError, UserError
from imgcls.config.options.base import Options, at_least, choice, positive
from imgcls.registry import Registry


class Finish(str, Enum):
    matte = "matte"
    gloss = "gloss"


@dataclass
class Border:
    width: int = 1

    def __post_init__(self) -> None:
        at_least("width", self.width, 1)


@dataclass
class SquareOptions(Options):
    side: float = 1.0
    sizes: List[int] = field(default_factory=lambda: [1, 2])  # noqa: UP006
    flag: bool = False
    finish: Finish = Finish.matte
    border: Border = field(default_factory=Border)

    def __post_init__(self) -> None:
        self.finish = choice(Finish, "finish", self.finish)
        positive("side", self.side)


@dataclass
class CircleOptions(Options):
    radius: Optional[int] = None  # noqa: UP045

    def __post_init__(self) -> None:
        if self.radius is not None and self.radius > 10:
            raise OptionError("radius is invalid: at most 10")


def make_registry() -> Registry:
    registry = Registry("widget")

    @registry.register("square", SquareOptions)
    def square(options: SquareOptions, num_classes: int):
        return ("square", num_classes, options.side, tuple(options.sizes), options.flag)

    @registry.register("circle", CircleOptions)
    class Circle:
        """A round widget."""

        def __init__(self, options: CircleOptions) -> None:
            self.radius = options.radius

    return registry


def test_build_passes_options_and_only_the_runtime_values_a_builder_takes():
    registry = make_registry()
    assert registry.build("square", {"side": 2}, num_classes=3) == ("square", 3, 2, (1, 2), False)
    assert registry.build("circle", {"radius": 4}, num_classes=3).radius == 4


def test_build_takes_an_options_object_as_it_is():
    options = SquareOptions(name="square", side=5.0)
    assert make_registry().build("square", options, num_classes=1)[2] == 5.0


def test_names_and_entries():
    registry = make_registry()
    assert registry.names() == ["circle", "square"]
    assert registry.get("circle").options is CircleOptions
    assert [entry.name for entry in registry.entries()] == ["circle", "square"]


def test_unknown_name_suggests_closest():
    with pytest.raises(
        UserError,
        match=r"unknown widget 'squre' — did you mean 'square'\? available: circle, square",
    ):
        make_registry().get("squre")


def test_unknown_name_without_close_match_lists_choices():
    with pytest.raises(UserError, match=r"unknown widget 'zzz'; available: circle, square"):
        make_registry().get("zzz")


def test_unknown_key_suggests_closest_with_its_full_key():
    with pytest.raises(
        UserError,
        match=r"unknown config key 'widget.sid' — did you mean 'widget.side'\?.*valid keys",
    ):
        make_registry().build("square", {"sid": 1}, num_classes=2)


def test_a_rule_names_the_full_key_with_the_prefix_the_caller_gives():
    with pytest.raises(UserError, match=r"^shape.side=-1 is invalid: it must be positive$"):
        make_registry().options("square", {"side": -1.0}, "shape")
    with pytest.raises(UserError, match=r"^widget.radius is invalid: at most 10$"):
        make_registry().options("circle", {"radius": 11})


def test_nested_options_name_their_own_key():
    with pytest.raises(
        UserError, match=r"^widget.border.width=0 is invalid: it must be at least 1"
    ):
        make_registry().options("square", {"border": {"width": 0}})
    made = make_registry().options("square", {"border": {"width": 3}})
    assert made.border == Border(3)


def test_enum_fields_take_a_name_or_value_and_refuse_others():
    assert make_registry().options("square", {"finish": "gloss"}).finish is Finish.gloss
    with pytest.raises(UserError, match=r"unknown widget.finish 'shiny'.*available: gloss, matte"):
        make_registry().options("square", {"finish": "shiny"})


def test_defaults_fill_what_is_not_given_and_name_is_the_entry():
    made = make_registry().options("circle")
    assert made == CircleOptions(name="circle", radius=None)


def test_options_must_be_a_dataclass_and_names_unique():
    registry = make_registry()
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("square", SquareOptions)(lambda options: None)
    with pytest.raises(TypeError, match="must be a dataclass"):
        registry.register("triangle", dict)
