"""params_from: unknown keys are named, a text proof-of-work target is parsed, the rest goes to the dataclass."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from chainlab.protocols.params import check_choice, check_integer, check_known, is_number, params_from


@dataclass(frozen=True)
class Toy:
    rounds: int = 1
    target: int = 7


def test_known_keys_build_the_dataclass_and_a_text_target_is_parsed() -> None:
    assert params_from(Toy, {"rounds": 3, "target": "2**8-1"}) == Toy(3, 255)
    assert params_from(Toy, {"target": 9}) == Toy(1, 9)


def test_every_unknown_key_is_named_sorted_with_what_it_is() -> None:
    with pytest.raises(ValueError, match=r"^unknown Toy parameter\(s\): colour, size$"):
        params_from(Toy, {"size": 1, "colour": "red", "rounds": 2}, "Toy parameter")
    with pytest.raises(ValueError, match=r"^unknown contributor key\(s\): x$"):
        check_known(Toy, {"x": 1}, "contributor key")


def test_a_malformed_target_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="target must look like 2\\*\\*244-1, got 'two'"):
        params_from(Toy, {"target": "two"})


@dataclass(frozen=True)
class Loose:
    method: object = "a"
    count: object = 1


def test_check_choice_names_the_field_the_choices_and_the_value() -> None:
    check_choice(Loose(), "method", ("a", "b"))
    with pytest.raises(ValueError, match=r"^method must be one of a, b, got 'c'$"):
        check_choice(Loose(method="c"), "method", ("a", "b"))


@pytest.mark.parametrize("count", [True, 1.0, "1", 0])
def test_check_integer_refuses_bools_non_integers_and_values_below_least(count: object) -> None:
    check_integer(Loose(), "count", 1)
    with pytest.raises(ValueError, match=r"^count must be an integer >= 1, got "):
        check_integer(Loose(count=count), "count", 1)


@pytest.mark.parametrize(("value", "number"), [(1, True), (0.5, True), (True, False), (math.inf, False), ("1", False)])
def test_is_number_means_a_finite_int_or_float(value: object, number: bool) -> None:
    assert is_number(value) is number
