"""The generic registry: lookup, did-you-mean, keyword and type checks."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from imgcls.base.errors import UserError
from imgcls.registry import Registry


def make_registry() -> Registry:
    registry = Registry("widget", runtime=frozenset({"num_classes"}))

    @registry.register("square")
    def square(
        num_classes: int, side: float = 1.0, sizes: Sequence[int] = (1, 2), flag: bool = False
    ):
        return ("square", num_classes, side, tuple(sizes), flag)

    @registry.register("circle")
    class Circle:
        """A round widget."""

        def __init__(self, radius: int | None = None) -> None:
            self.radius = radius

    return registry


def test_build_passes_options_and_runtime_values():
    registry = make_registry()
    assert registry.build("square", {"side": 2}, num_classes=3) == ("square", 3, 2, (1, 2), False)
    assert registry.build("circle", {"radius": 4}, num_classes=3).radius == 4


def test_names_and_entries():
    registry = make_registry()
    assert registry.names() == ["circle", "square"]
    assert registry.get("circle").name == "circle"
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


def test_unknown_keyword_suggests_closest():
    with pytest.raises(
        UserError,
        match=r"unknown key 'widget.sid'.*did you mean 'side'.*valid keys: flag, side, sizes",
    ):
        make_registry().build("square", {"sid": 1}, num_classes=2)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"side": "big"}, "a number"),
        ({"flag": 1}, "true or false"),
        ({"sizes": 3}, "a list"),
        ({"sizes": ["a"]}, "a list"),
    ],
)
def test_wrong_types_are_rejected(options, expected):
    with pytest.raises(UserError, match=expected):
        make_registry().build("square", options, num_classes=2)


def test_optional_and_int_for_float_are_accepted():
    registry = make_registry()
    assert registry.build("circle", {"radius": None}).radius is None
    assert registry.build("square", {"side": 3}, num_classes=2)[2] == 3


def test_runtime_argument_cannot_be_set_by_user():
    with pytest.raises(UserError, match="'widget.num_classes' is set by imgcls itself"):
        make_registry().build("square", {"num_classes": 5}, num_classes=2)


def test_duplicate_registration_is_a_bug():
    registry = make_registry()
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("square")(lambda: None)
