"""Logical formulas of concepts (``a``, ``~a``, ``a & b``, ``a | b``) that INVERT labels neurons by.

Formulas are immutable trees; ``str()`` writes them with the fewest parentheses that keep the tree
(``~`` binds tighter than ``&``, which binds tighter than ``|``) and :meth:`Formula.parse` reads
that text back without ``eval``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from torch import Tensor

LabelMatrix = TypeVar("LabelMatrix", Tensor, np.ndarray)

#: Characters with a meaning in formula text; names holding one are written in double quotes.
_OPERATOR_CHARACTERS = frozenset('()&|~"\\')
_TOKEN = re.compile(
    r'\s*(?:(?P<operator>[()&|~])|"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<name>[^()&|~"]+))'
)

# binding strength of each node kind; a child is parenthesized when it binds weaker than needed
_OR, _AND, _NOT, _ATOM = 1, 2, 3, 4


class Formula(ABC):
    r"""
    A logical formula of concepts: :class:`Atom` (a concept), :class:`Not`, :class:`And` and
    :class:`Or`. Formulas are immutable and hashable; combine them with ``&``, ``|`` and ``~``.

    Examples::

        >>> names = ["round", "thick", "digit_1"]
        >>> formula = Formula.parse("(round | thick) & ~digit_1", names)
        >>> formula.length
        3
        >>> str(Atom(0, "round") & ~Atom(2, "digit_1"))
        'round & ~digit_1'
    """

    precedence: int = _ATOM

    @property
    @abstractmethod
    def length(self) -> int:
        r"""Number of concept occurrences (literals) in the formula."""

    @property
    @abstractmethod
    def concepts(self) -> frozenset[str]:
        r"""Names of the concepts the formula uses."""

    def evaluate(self, labels: LabelMatrix) -> LabelMatrix:
        r"""
        The samples where the formula holds.

        Args:
            labels (Tensor or ndarray): ``(N, C)`` concept labels (bool or 0/1), columns in the
                        order of the concept names the formula was built with.

        Returns:
            *Tensor* or *ndarray* (as ``labels``) of ``N`` booleans.
        """
        if labels.ndim != 2:
            raise ValueError(f"`labels` must be (samples, concepts), got shape {labels.shape}")
        return self._evaluate(labels)

    @abstractmethod
    def _evaluate(self, labels: LabelMatrix) -> LabelMatrix:
        """``evaluate`` without the shape check, applied to every node."""

    def _text(self, parent: int, right: bool) -> str:
        text = str(self)
        # a right operand of the same strength keeps its parentheses so that parse() rebuilds the
        # same (left-nested) tree
        needs = self.precedence < parent or (right and self.precedence == parent < _NOT)
        return f"({text})" if needs else text

    def __len__(self) -> int:
        return self.length

    def __and__(self, other: Formula) -> And:
        return And(self, other)

    def __or__(self, other: Formula) -> Or:
        return Or(self, other)

    def __invert__(self) -> Not:
        return Not(self)

    @staticmethod
    def parse(text: str, concept_names: Sequence[str]) -> Formula:
        r"""
        Reads a formula written like ``str(formula)``: concept names joined by ``&`` (and), ``|``
        (or), ``~`` (not) and parentheses; ``~`` binds tighter than ``&``, ``&`` tighter than
        ``|``, equal operators group from the left. Names holding one of ``( ) & | ~ "`` are
        written in double quotes (with ``\"`` and ``\\`` escapes). No ``eval`` is involved.

        Args:
            text (str): The formula.
            concept_names (sequence of str): Names of the label columns, in order.

        Returns:
            *Formula* whose atoms index ``concept_names``.

        Examples::

            >>> str(Formula.parse("a|b&~(c)", ["a", "b", "c"]))
            'a | b & ~c'
        """
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a str, got {type(text).__name__}")
        index = _name_index(concept_names)
        return _Parser(text, index).parse()


def _name_index(concept_names: Sequence[str]) -> dict[str, int]:
    names = list(concept_names)
    index = {name: position for position, name in enumerate(names)}
    if len(index) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"`concept_names` must be unique, got duplicates {duplicates}")
    return index


def _name_text(name: str) -> str:
    if name and name == name.strip() and not _OPERATOR_CHARACTERS.intersection(name):
        return name
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass(frozen=True)
class Atom(Formula):
    r"""
    A concept: the samples where label column ``index`` is set.

    Args:
        index (int): Column of the concept in the label matrix.
        name (str): The concept's name.
    """

    index: int
    name: str

    @property
    def length(self) -> int:
        return 1

    @property
    def concepts(self) -> frozenset[str]:
        return frozenset((self.name,))

    def _evaluate(self, labels: LabelMatrix) -> LabelMatrix:
        if not 0 <= self.index < labels.shape[1]:
            raise ValueError(
                f"concept {self.name!r} is column {self.index} but `labels` has "
                f"{labels.shape[1]} columns"
            )
        return labels[:, self.index] != 0

    def __str__(self) -> str:
        return _name_text(self.name)


@dataclass(frozen=True)
class Not(Formula):
    r"""Negation: the samples where ``operand`` does not hold."""

    operand: Formula
    precedence = _NOT

    @property
    def length(self) -> int:
        return self.operand.length

    @property
    def concepts(self) -> frozenset[str]:
        return self.operand.concepts

    def _evaluate(self, labels: LabelMatrix) -> LabelMatrix:
        return ~self.operand._evaluate(labels)

    def __str__(self) -> str:
        return "~" + self.operand._text(_NOT, right=False)


@dataclass(frozen=True)
class _Binary(Formula):
    left: Formula
    right: Formula
    symbol = ""

    @property
    def length(self) -> int:
        return self.left.length + self.right.length

    @property
    def concepts(self) -> frozenset[str]:
        return self.left.concepts | self.right.concepts

    def __str__(self) -> str:
        left = self.left._text(self.precedence, right=False)
        right = self.right._text(self.precedence, right=True)
        return f"{left} {self.symbol} {right}"


@dataclass(frozen=True)
class And(_Binary):
    r"""Conjunction: the samples where both ``left`` and ``right`` hold."""

    precedence = _AND
    symbol = "&"

    def _evaluate(self, labels: LabelMatrix) -> LabelMatrix:
        return self.left._evaluate(labels) & self.right._evaluate(labels)


@dataclass(frozen=True)
class Or(_Binary):
    r"""Disjunction: the samples where ``left`` or ``right`` holds."""

    precedence = _OR
    symbol = "|"

    def _evaluate(self, labels: LabelMatrix) -> LabelMatrix:
        return self.left._evaluate(labels) | self.right._evaluate(labels)


class _Parser:
    """Recursive descent over ``or := and ('|' and)*``, ``and := not ('&' not)*``,
    ``not := '~' not | '(' or ')' | name``."""

    def __init__(self, text: str, index: dict[str, int]) -> None:
        self.text = text
        self.index = index
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = _TOKEN.match(text, position)
            if match is None:
                raise ValueError(f"`text` {text!r}: cannot read a formula at position {position}")
            if match.group("operator") is not None:
                self.tokens.append(("operator", match.group("operator")))
            elif match.group("quoted") is not None:
                self.tokens.append(("name", re.sub(r"\\(.)", r"\1", match.group("quoted"))))
            else:
                self.tokens.append(("name", match.group("name").strip()))
            position = match.end()
        self.position = 0

    def _peek(self) -> str | None:
        if self.position < len(self.tokens) and self.tokens[self.position][0] == "operator":
            return self.tokens[self.position][1]
        return None

    def _fail(self, expected: str) -> ValueError:
        found = (
            repr(self.tokens[self.position][1])
            if self.position < len(self.tokens)
            else "the end of the text"
        )
        return ValueError(f"`text` {self.text!r}: expected {expected}, found {found}")

    def parse(self) -> Formula:
        formula = self._or()
        if self.position != len(self.tokens):
            raise self._fail("an operator '&' or '|'")
        return formula

    def _or(self) -> Formula:
        formula = self._and()
        while self._peek() == "|":
            self.position += 1
            formula = Or(formula, self._and())
        return formula

    def _and(self) -> Formula:
        formula = self._not()
        while self._peek() == "&":
            self.position += 1
            formula = And(formula, self._not())
        return formula

    def _not(self) -> Formula:
        if self.position >= len(self.tokens):
            raise self._fail("a concept name, '~' or '('")
        kind, value = self.tokens[self.position]
        self.position += 1
        if kind == "name":
            if value not in self.index:
                raise ValueError(
                    f"`text` {self.text!r} names the unknown concept {value!r}; known concepts: "
                    f"{_preview(list(self.index))}"
                )
            return Atom(self.index[value], value)
        if value == "~":
            return Not(self._not())
        if value == "(":
            formula = self._or()
            if self._peek() != ")":
                raise self._fail("')'")
            self.position += 1
            return formula
        self.position -= 1
        raise self._fail("a concept name, '~' or '('")


def _preview(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
