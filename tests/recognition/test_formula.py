"""Formula trees: printing with minimal parentheses, parsing back without eval, evaluation; no
depth or length limit, and any text that is no formula raises a short ValueError."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import random
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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
        ("a & | b", "expected a concept name, '~' or '(', found '|' at position 4"),
        ("   ", "expected a concept name, '~' or '(', found the end of the text"),
        ("~", "expected a concept name, '~' or '(', found the end of the text"),
        ("()", "expected a concept name, '~' or '(', found ')' at position 1"),
        (")", "expected a concept name, '~' or '(', found ')' at position 0"),
        ("a ~b", "expected an operator '&' or '|', found '~' at position 2"),
        ("a (b)", "expected an operator '&' or '|', found '(' at position 2"),
        ('"a" "b"', "expected an operator '&' or '|', found 'b' at position 4"),
        ('("a" "b")', "expected ')', found 'b' at position 5"),
        ("((a) | b))", "expected an operator '&' or '|', found ')' at position 9"),
        ('a & "b', "cannot read a formula at position 4: expected a name in double quotes"),
        ('a | "b\\"', "cannot read a formula at position 4"),
        ("a |  ", "expected a concept name, '~' or '(', found the end of the text"),
        ('"a\\\nb"', "cannot read a formula at position 0"),
        ("a & ZEBRA", "unknown concept 'ZEBRA'; known concepts: a, b, c, d"),
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


@pytest.mark.parametrize(
    ("concept_names", "received"),
    [
        (None, "NoneType None"),
        ([0, 1], "2 item(s) that are not str: [0, 1]"),
        (["a", 2], "1 item(s) that are not str: [2]"),
        ("ab", "str 'ab'"),
        (5, "int 5"),
    ],
)
def test_parse_names_concept_names_unless_it_is_a_sequence_of_str(
    concept_names: object, received: str
) -> None:
    with pytest.raises(TypeError) as error:
        Formula.parse("a", concept_names)  # type: ignore[arg-type]
    expected = "`concept_names` must be a sequence of str (the names of the label columns"
    assert str(error.value).startswith(expected) and str(error.value).endswith(received)
    # any sequence of str works: a tuple, a numpy array of names
    assert Formula.parse("a & ~b", ("a", "b")) == Formula.parse("a & ~b", np.array(["a", "b"]))


def test_evaluate_checks_the_label_matrix() -> None:
    with pytest.raises(ValueError, match="`labels`"):
        d.evaluate(np.zeros((5, 2), dtype=bool))
    with pytest.raises(ValueError, match="`labels`"):
        a.evaluate(np.zeros(5, dtype=bool))


def test_constructors_reject_operands_that_are_no_formula() -> None:
    with pytest.raises(TypeError, match="operands of Not must be Formula, got int"):
        Not(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="operands of And must be Formula, got str"):
        a & "b"  # type: ignore[operator]


def test_repr_names_every_node() -> None:
    assert repr(a & ~b) == (
        "And(left=Atom(index=0, name='a'), right=Not(operand=Atom(index=1, name='b')))"
    )


# ---- no recursion limit: depth and length ---------------------------------------------------

DEPTH = 100_000
LITERALS = 20_000


def test_parse_has_no_depth_limit_for_parentheses() -> None:
    assert Formula.parse("(" * DEPTH + "b" + ")" * DEPTH, NAMES) == b
    with pytest.raises(ValueError, match="expected '\\)', found the end of the text"):
        Formula.parse("(" * DEPTH + "b" + ")" * (DEPTH - 1), NAMES)


def test_negations_of_any_depth_parse_print_compare_and_evaluate() -> None:
    formula = Formula.parse("~" * DEPTH + "c", NAMES)
    assert formula.length == 1 and formula.concepts == {"c"}
    depth, node = 0, formula
    while isinstance(node, Not):
        depth, node = depth + 1, node.operand
    assert (depth, node) == (DEPTH, c)
    text = str(formula)
    assert text == "~" * DEPTH + "c"
    again = Formula.parse(text, NAMES)
    assert again == formula and hash(again) == hash(formula) and again != Not(formula)
    labels = np.array([[0, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
    # an even number of negations is the concept itself
    np.testing.assert_array_equal(formula.evaluate(labels), [True, False])
    assert repr(formula).count("Not(operand=") == DEPTH


def _chains() -> tuple[Formula, Formula, list[int], list[int]]:
    """A left-nested and a right-nested chain of LITERALS literals, with their concept indices and
    operators (1 for |)."""
    rng = random.Random(1)
    concepts = [rng.randrange(len(NAMES)) for _ in range(LITERALS)]
    operators = [rng.randrange(2) for _ in range(LITERALS - 1)]
    atoms = [Atom(index, NAMES[index]) for index in concepts]
    left_nested: Formula = atoms[0]
    for atom, operator in zip(atoms[1:], operators, strict=True):
        left_nested = Or(left_nested, atom) if operator else And(left_nested, atom)
    right_nested: Formula = atoms[-1]
    for atom in reversed(atoms[:-1]):
        right_nested = And(atom, right_nested)
    return left_nested, right_nested, concepts, operators


def test_long_chains_print_parse_hash_and_evaluate() -> None:
    left_nested, right_nested, concepts, operators = _chains()
    labels = np.random.default_rng(0).random((32, len(NAMES))) < 0.5
    expected = labels[:, concepts[0]]
    for concept, operator in zip(concepts[1:], operators, strict=True):
        expected = (expected | labels[:, concept]) if operator else (expected & labels[:, concept])
    for formula in (left_nested, right_nested):
        assert formula.length == len(formula) == LITERALS
        text = str(formula)
        if formula is right_nested:
            assert text.count("(") == LITERALS - 2
        again = Formula.parse(text, NAMES)
        assert again == formula and hash(again) == hash(formula)
        assert len({formula, again}) == 1
    np.testing.assert_array_equal(left_nested.evaluate(labels), expected)
    np.testing.assert_array_equal(
        right_nested.evaluate(torch.as_tensor(labels)).numpy(),
        labels[:, concepts].all(axis=1),
    )
    assert left_nested != right_nested
    assert left_nested.concepts == {NAMES[index] for index in concepts}


def test_long_chains_pickle_and_copy() -> None:
    left_nested, right_nested, _, _ = _chains()
    for formula in (left_nested, right_nested):
        restored = pickle.loads(pickle.dumps(formula))
        assert restored == formula and type(restored) is type(formula)
        assert copy.deepcopy(formula) is formula


# ---- bad text: only ValueError, with short messages -------------------------------------------

MEGABYTE = 1_000_000


def _garbage(size: int) -> str:
    rng = random.Random(2)
    return "".join(rng.choices('ab()&|~" \\x\n', k=size))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_garbage(MEGABYTE), "`text` '"),
        ("(" * MEGABYTE, "found the end of the text"),
        ("a" * MEGABYTE, "unknown concept 'aaaa"),
        ('"' + "a" * MEGABYTE, "cannot read a formula at position 0"),
        ("a" + ")" * MEGABYTE, "found ')' at position 1"),
    ],
    ids=["garbage", "open-parentheses", "long-name", "open-quote", "closing"],
)
def test_errors_on_a_megabyte_of_text_echo_a_short_excerpt(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        Formula.parse(text, NAMES)
    assert message in str(error.value)
    assert f"... ({len(text)} characters)" in str(error.value)
    assert len(str(error.value)) < 400


def test_unknown_concept_lists_a_few_known_names_shortened() -> None:
    names = [f"concept_{index}_" + "x" * 100 for index in range(50)]
    with pytest.raises(ValueError, match=r"unknown concept 'zebra'") as error:
        Formula.parse("zebra", names)
    assert "(50 in all)" in str(error.value) and len(str(error.value)) < 800


# ---- properties (Hypothesis) --------------------------------------------------------------

#: Names that need quoting, escapes or stripping in formula text.
TRICKY_NAMES = [
    "golden retriever",
    "x|y",
    'say "hi"',
    " padded ",
    "",
    "back\\slash",
    "~n",
    "(",
    "\\",
]
_PROPERTY = settings(max_examples=2000, deadline=None, derandomize=True, database=None)
_CONCEPT_NAMES = st.lists(
    st.one_of(st.sampled_from(NAMES + TRICKY_NAMES), st.text(max_size=6)),
    min_size=1,
    max_size=6,
    unique=True,
)
#: A postfix program, a step a byte: ``byte % 4`` pushes an atom (named ``byte // 4``) or applies
#: ``~``, ``&`` or ``|`` to the top of the stack. Bytes are what Hypothesis draws fastest.
_PROGRAMS = st.binary(min_size=1, max_size=40)
#: Every assignment of the four concepts in NAMES: a truth table.
TRUTH_TABLE = np.array([[(row >> bit) & 1 for bit in range(len(NAMES))] for row in range(16)]) == 1


def _run(program: bytes, names: list[str]) -> Formula:
    """The formula a postfix program builds; operators short of operands push atoms instead."""
    stack: list[Formula] = []
    for byte in program:
        step, number = "a~&|"[byte % 4], byte // 4
        if step == "~" and stack:
            stack.append(Not(stack.pop()))
        elif step in "&|" and len(stack) >= 2:
            right = stack.pop()
            stack.append((And if step == "&" else Or)(stack.pop(), right))
        else:
            stack.append(Atom(number % len(names), names[number % len(names)]))
    formula = stack[0]
    for term in stack[1:]:
        formula = formula | term
    return formula


@_PROPERTY
@given(_PROGRAMS, _CONCEPT_NAMES)
def test_property_parse_inverts_str(program: bytes, names: list[str]) -> None:
    formula = _run(program, names)
    parsed = Formula.parse(str(formula), names)
    assert parsed == formula and hash(parsed) == hash(formula)
    assert str(parsed) == str(formula) and parsed.length == formula.length


@_PROPERTY
@given(_PROGRAMS)
def test_property_str_reads_as_python_logic_and_evaluate_agrees(
    program: bytes,
) -> None:
    # ~, &, | bind like Python's not, and, or: the printed text, read by Python, is an
    # independent truth for both the printer's parentheses and evaluate()
    formula = _run(program, NAMES)
    words = {"~": " not ", "&": " and ", "|": " or "}
    python = re.sub(r"[~&|]", lambda match: words[match[0]], str(formula)).strip()
    compiled = compile(python, "<formula>", "eval")
    expected = [
        eval(compiled, {}, dict(zip(NAMES, row, strict=True))) for row in TRUTH_TABLE.tolist()
    ]
    np.testing.assert_array_equal(formula.evaluate(TRUTH_TABLE), expected)


@_PROPERTY
@given(_PROGRAMS)
def test_property_str_has_no_removable_parentheses(program: bytes) -> None:
    formula = _run(program, NAMES)
    text = str(formula)
    opened: list[int] = []
    for position, character in enumerate(text):
        if character == "(":
            opened.append(position)
        elif character == ")":
            start = opened.pop()
            without = text[:start] + text[start + 1 : position] + text[position + 1 :]
            try:
                assert Formula.parse(without, NAMES) != formula, f"{text}: ({start}, {position})"
            except ValueError:
                pass


_FORMULA_CHARACTERS = 'abcdz ()&|~"\\\n'


def _edit(program: bytes, position: int, character: str) -> str:
    """The text of a random formula with one character replaced, inserted or deleted: text that
    is often, but not always, a formula, and fails anywhere in it."""
    text = str(_run(program, NAMES))
    position %= 3 * len(text)
    kept, cut = position % len(text), position // len(text)
    return text[:kept] + character * (cut < 2) + text[kept + (cut != 1) :]


_ALMOST_FORMULAS = st.builds(
    _edit, _PROGRAMS, st.integers(0, 2**16), st.sampled_from(_FORMULA_CHARACTERS)
)


@_PROPERTY
@given(st.one_of(st.text(), st.text(_FORMULA_CHARACTERS, max_size=40), _ALMOST_FORMULAS))
def test_property_text_is_a_formula_or_a_short_value_error(text: str) -> None:
    try:
        formula = Formula.parse(text, NAMES)
    except ValueError as error:
        assert str(error).startswith("`text` ") and len(str(error)) < 400
        return
    # whatever parses, prints to the canonical text of the same formula
    assert Formula.parse(str(formula), NAMES) == formula
