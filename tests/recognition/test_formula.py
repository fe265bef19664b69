"""Formula trees: printing with minimal parentheses, parsing back without eval, evaluation."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from captum_netinv.recognition.formula import And, Atom, Formula, Not, Or

NAMES = ["a", "b", "c", "d"]
a, b, c, d = (Atom(index, name) for index, name in enumerate(NAMES))


@pytest.mark.parametrize(
    ("formula", "text"),
    [
        ((a | b) & ~c, "(a | b) & ~c"),
        (a & b | c, "a & b | c"),
        (a | b & c, "a | b & c"),
        (a & (b & c), "a & (b & c)"),
        ((a & b) & c, "a & b & c"),
        (~(a & b), "~(a & b)"),
        (~~a, "~~a"),
        ((a | b) & (c | ~d), "(a | b) & (c | ~d)"),
    ],
)
def test_str_uses_parentheses_only_where_needed(formula: Formula, text: str) -> None:
    assert str(formula) == text
    assert Formula.parse(text, NAMES) == formula


def _random_formula(rng: random.Random, depth: int) -> Formula:
    if depth == 0 or rng.random() < 0.25:
        return Atom(index := rng.randrange(len(NAMES)), NAMES[index])
    kind = rng.choice(["not", "and", "or"])
    if kind == "not":
        return Not(_random_formula(rng, depth - 1))
    node = And if kind == "and" else Or
    return node(_random_formula(rng, depth - 1), _random_formula(rng, depth - 1))


def test_parse_round_trips_random_formulas_and_evaluation_matches_numpy() -> None:
    rng = random.Random(0)
    labels = np.random.default_rng(0).random((64, len(NAMES))) < 0.5

    def reference(formula: Formula) -> np.ndarray:
        if isinstance(formula, Atom):
            return labels[:, formula.index]
        if isinstance(formula, Not):
            return np.logical_not(reference(formula.operand))
        assert isinstance(formula, (And, Or))
        combine = np.logical_and if isinstance(formula, And) else np.logical_or
        return combine(reference(formula.left), reference(formula.right))

    for _ in range(300):
        formula = _random_formula(rng, 4)
        assert Formula.parse(str(formula), NAMES) == formula
        np.testing.assert_array_equal(formula.evaluate(labels), reference(formula))
        as_tensor = formula.evaluate(torch.as_tensor(labels))
        assert as_tensor.dtype == torch.bool
        np.testing.assert_array_equal(as_tensor.numpy(), reference(formula))


def test_parse_accepts_free_spacing_and_extra_parentheses() -> None:
    assert Formula.parse("  ((a)|b)&~ ( c )", NAMES) == (a | b) & ~c


def test_names_with_spaces_and_operator_characters_round_trip() -> None:
    names = ["golden retriever", "a|b", 'say "hi"', "x"]
    atoms = [Atom(index, name) for index, name in enumerate(names)]
    formula = (atoms[0] | ~atoms[1]) & atoms[2] | atoms[3]
    text = str(formula)
    assert text == '(golden retriever | ~"a|b") & "say \\"hi\\"" | x'
    assert Formula.parse(text, names) == formula


def test_length_and_concepts() -> None:
    formula = (a | b) & ~a
    assert formula.length == len(formula) == 3
    assert formula.concepts == {"a", "b"}


def test_formulas_are_immutable_and_hashable() -> None:
    formula = a & ~b
    with pytest.raises(dataclasses.FrozenInstanceError):
        formula.left = c  # type: ignore[misc]
    assert len({formula, Atom(0, "a") & ~Atom(1, "b")}) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a & zebra", "unknown concept 'zebra'"),
        ("a &", "expected a concept name"),
        ("(a | b", "expected ')'"),
        ("a b", "unknown concept 'a b'"),
        ("a ) b", "expected an operator"),
        ("", "expected a concept name"),
        ("a & | b", "expected a concept name"),
    ],
)
def test_parse_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="`text`") as error:
        Formula.parse(text, NAMES)
    assert message in str(error.value)


def test_parse_does_not_evaluate_python() -> None:
    with pytest.raises(ValueError, match="unknown concept"):
        Formula.parse("__import__('os')", NAMES)


def test_parse_rejects_duplicate_names_and_non_text() -> None:
    with pytest.raises(ValueError, match="`concept_names` must be unique"):
        Formula.parse("a", ["a", "a"])
    with pytest.raises(TypeError, match="`text`"):
        Formula.parse(3, NAMES)  # type: ignore[arg-type]


def test_evaluate_checks_the_label_matrix() -> None:
    with pytest.raises(ValueError, match="`labels`"):
        d.evaluate(np.zeros((5, 2), dtype=bool))
    with pytest.raises(ValueError, match="`labels`"):
        a.evaluate(np.zeros(5, dtype=bool))
