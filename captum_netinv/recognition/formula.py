"""Logical formulas of concepts (``a``, ``~a``, ``a & b``, ``a | b``) that INVERT labels neurons by.

Formulas are immutable trees; ``str()`` writes them with the fewest parentheses that keep the tree
(``~`` binds tighter than ``&``, which binds tighter than ``|``) and :meth:`Formula.parse` reads
that text back without ``eval``. Every walk over a tree (parsing, printing, evaluating, comparing)
uses an explicit stack, so neither depth nor length meets Python's recursion limit.
"""

from __future__ import annotations

import operator
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias, TypeVar

import numpy as np
from torch import Tensor

from captum_netinv._utils import excerpt

__all__ = ["And", "Atom", "Formula", "LabelMatrix", "Not", "Or"]

#: A label matrix a formula is evaluated on: a tensor or an array.
LabelMatrix = TypeVar("LabelMatrix", Tensor, np.ndarray)

#: Characters with a meaning in formula text; names holding one are written in double quotes.
_OPERATOR_CHARACTERS = frozenset('()&|~"\\')
_TOKEN = re.compile(
    r'\s*(?:(?P<operator>[()&|~])|"(?P<quoted>[^"\\]*(?:\\.[^"\\]*)*)"|(?P<name>[^()&|~"\s][^()&|~"]*))'
)
_ESCAPE = re.compile(r"\\(.)")

# binding strength of each node kind; a child is parenthesized when it binds weaker than needed
_OR, _AND, _NOT, _ATOM = 1, 2, 3, 4
# the most characters of the input an error quotes, so that it never repeats a megabyte of it
#: Of a whole text, or a concept name on its own.
_TEXT_EXCERPT = 80
#: Of the token where parsing failed.
_TOKEN_EXCERPT = 40
#: Of the text after a double quote that opens no well-formed quoted name.
_QUOTE_EXCERPT = 20
#: Of each concept name in a list of names.
_NAME_EXCERPT = 40
#: The most concept names an error lists.
_PREVIEW_NAMES = 10

_Piece: TypeAlias = "str | Formula"  # text, or a node still to be written in its place
_Token: TypeAlias = "tuple[str, str, int]"  # kind ("operator" / "name"), value, position
#: An elementwise operation on two masks (tensors or arrays), e.g. ``operator.and_``.
_MaskOperation: TypeAlias = "Callable[[Any, Any], Any]"


class Formula(ABC):
    r"""
    A logical formula of concepts: :class:`Atom` (a concept), :class:`Not`, :class:`And` and
    :class:`Or`. Formulas are immutable and hashable; combine them with ``&``, ``|`` and ``~``.
    Formulas of any depth or length can be built, printed, parsed, compared and evaluated.

    Examples::

        >>> names = ["round", "thick", "digit_1"]
        >>> formula = Formula.parse("(round | thick) & ~digit_1", names)
        >>> formula.length
        3
        >>> str(Atom(0, "round") & ~Atom(2, "digit_1"))
        'round & ~digit_1'
    """

    # slots: a node holds no ``__dict__``, so deep trees build fast (fewer objects for the GC)
    __slots__ = ("_length", "_hash", "__weakref__")
    precedence: ClassVar[int] = _ATOM
    _length: int
    _hash: int

    def _cache(self, length: int, hashed: object) -> None:
        """Stores length and hash: children are complete when a node is built, so O(1) here."""
        object.__setattr__(self, "_length", length)
        object.__setattr__(self, "_hash", hash(hashed))

    @property
    @abstractmethod
    def _children(self) -> tuple[Formula, ...]:
        """The operands, left to right."""

    def _operand(self, operand: object) -> Formula:
        if not isinstance(operand, Formula):
            raise TypeError(
                f"operands of {type(self).__name__} must be Formula, got {type(operand).__name__}"
            )
        return operand

    @property
    def length(self) -> int:
        r"""Number of concept occurrences (literals) in the formula."""
        return self._length

    @property
    def concepts(self) -> frozenset[str]:
        r"""Names of the concepts the formula uses."""
        return frozenset(node.name for node in _postorder(self) if isinstance(node, Atom))

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
        values: list[LabelMatrix] = []
        for node in _postorder(self):
            arity = len(node._children)
            operands = values[len(values) - arity :]
            del values[len(values) - arity :]
            values.append(node._apply(labels, operands))
        return values[0]

    @abstractmethod
    def _apply(self, labels: LabelMatrix, operands: list[LabelMatrix]) -> LabelMatrix:
        """This node's samples, given its children's."""

    @abstractmethod
    def _str_pieces(self) -> list[_Piece]:
        """This node's text, with its children in their places."""

    @abstractmethod
    def _repr_pieces(self) -> list[_Piece]:
        """This node's ``repr``, with its children in their places."""

    def __str__(self) -> str:
        return _render(self, lambda node: node._str_pieces())

    def __repr__(self) -> str:
        return _render(self, lambda node: node._repr_pieces())

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Formula):
            return NotImplemented
        pairs: list[tuple[Formula, Formula]] = [(self, other)]
        while pairs:
            mine, theirs = pairs.pop()
            if mine is theirs:
                continue
            if (
                type(mine) is not type(theirs)
                or mine._hash != theirs._hash
                or mine._key() != theirs._key()
            ):
                return False
            pairs.extend(zip(mine._children, theirs._children, strict=True))
        return True

    def _key(self) -> tuple[object, ...]:
        """What tells apart nodes of the same kind beside their children."""
        return ()

    def __reduce__(self) -> tuple[Callable[..., Formula], tuple[object, ...]]:
        # a flat postfix list pickles without recursion, and rebuilding through the
        # constructors recomputes the cached hash, which differs between interpreter runs
        steps = [(type(node), len(node._children), *node._key()) for node in _postorder(self)]
        return _from_postfix, (tuple(steps),)

    def __deepcopy__(self, memo: dict[int, object]) -> Formula:
        return self  # immutable, as str and tuple

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
        written in double quotes (with ``\"`` and ``\\`` escapes). No ``eval`` is involved, and
        any text that is not a formula of these names raises ``ValueError``.

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


def _postorder(root: Formula) -> Iterator[Formula]:
    """Every node of ``root`` after its children, left to right."""
    stack: list[tuple[Formula, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded or not node._children:
            yield node
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node._children))


def _render(root: Formula, pieces: Callable[[Formula], list[_Piece]]) -> str:
    """Joins the pieces of ``root``, each node's pieces replacing the node."""
    written: list[str] = []
    stack: list[_Piece] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            written.append(item)
        else:
            stack.extend(reversed(pieces(item)))
    return "".join(written)


def _from_postfix(steps: Sequence[tuple[Any, ...]]) -> Formula:
    """Rebuilds a formula from ``__reduce__``'s steps ``(node type, arity, *key)``."""
    built: list[Formula] = []
    for node_type, arity, *key in steps:
        operands = built[len(built) - arity :]
        del built[len(built) - arity :]
        built.append(node_type(*key, *operands))
    return built[0]


def _operand_text(child: Formula, parent: int, right: bool) -> list[_Piece]:
    # a right operand of the same strength keeps its parentheses so that parse() rebuilds the
    # same (left-nested) tree
    needs = child.precedence < parent or (right and child.precedence == parent < _NOT)
    return ["(", child, ")"] if needs else [child]


def _name_index(concept_names: Sequence[str]) -> dict[str, int]:
    """Position of each name; raises naming ``concept_names`` unless it is a sequence of str."""
    if isinstance(concept_names, (str, bytes)) or not isinstance(concept_names, Iterable):
        raise TypeError(
            "`concept_names` must be a sequence of str (the names of the label columns, in "
            f"order), got {type(concept_names).__name__} {excerpt(concept_names)}"
        )
    names = list(concept_names)
    not_text = [name for name in names if not isinstance(name, str)]
    if not_text:
        raise TypeError(
            "`concept_names` must be a sequence of str (the names of the label columns, in "
            f"order), got {len(not_text)} item(s) that are not str: "
            f"{excerpt(not_text[:_PREVIEW_NAMES])}"
        )
    index = {name: position for position, name in enumerate(names)}
    if len(index) != len(names):
        duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
        raise ValueError(f"`concept_names` must be unique, got duplicates {_preview(duplicates)}")
    return index


def _name_text(name: str) -> str:
    if name and name == name.strip() and not _OPERATOR_CHARACTERS.intersection(name):
        return name
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Atom(Formula):
    r"""
    A concept: the samples where label column ``index`` is set.

    Args:
        index (int): Column of the concept in the label matrix.
        name (str): The concept's name.
    """

    index: int
    name: str

    def __post_init__(self) -> None:
        self._cache(1, ("Atom", self.index, self.name))

    @property
    def _children(self) -> tuple[Formula, ...]:
        return ()

    def _key(self) -> tuple[object, ...]:
        return (self.index, self.name)

    def _apply(self, labels: LabelMatrix, operands: list[LabelMatrix]) -> LabelMatrix:
        if not 0 <= self.index < labels.shape[1]:
            raise ValueError(
                f"concept {_excerpt(self.name)} is column {self.index} but `labels` has "
                f"{labels.shape[1]} columns"
            )
        return labels[:, self.index] != 0

    def _str_pieces(self) -> list[_Piece]:
        return [_name_text(self.name)]

    def _repr_pieces(self) -> list[_Piece]:
        return [f"{type(self).__qualname__}(index={self.index!r}, name={self.name!r})"]


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Not(Formula):
    r"""Negation: the samples where ``operand`` does not hold."""

    operand: Formula
    precedence: ClassVar[int] = _NOT

    def __post_init__(self) -> None:
        operand = self._operand(self.operand)
        self._cache(operand._length, ("Not", operand._hash))

    @property
    def _children(self) -> tuple[Formula, ...]:
        return (self.operand,)

    def _apply(self, labels: LabelMatrix, operands: list[LabelMatrix]) -> LabelMatrix:
        return ~operands[0]

    def _str_pieces(self) -> list[_Piece]:
        return ["~", *_operand_text(self.operand, _NOT, right=False)]

    def _repr_pieces(self) -> list[_Piece]:
        return [f"{type(self).__qualname__}(operand=", self.operand, ")"]


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class _Binary(Formula):
    left: Formula
    right: Formula
    symbol: ClassVar[str] = ""
    #: The elementwise operation on the two operands' masks.
    combine: ClassVar[_MaskOperation]

    def __init_subclass__(
        cls, symbol: str = "", precedence: int = 0, combine: _MaskOperation | None = None
    ) -> None:
        # dataclass(slots=True) builds each class again without these arguments: keep them
        if combine is not None:
            cls.symbol, cls.precedence, cls.combine = symbol, precedence, combine

    def __post_init__(self) -> None:
        left, right = self._operand(self.left), self._operand(self.right)
        self._cache(left._length + right._length, (self.symbol, left._hash, right._hash))

    @property
    def _children(self) -> tuple[Formula, ...]:
        return (self.left, self.right)

    def _str_pieces(self) -> list[_Piece]:
        return [
            *_operand_text(self.left, self.precedence, right=False),
            f" {self.symbol} ",
            *_operand_text(self.right, self.precedence, right=True),
        ]

    def _repr_pieces(self) -> list[_Piece]:
        return [f"{type(self).__qualname__}(left=", self.left, ", right=", self.right, ")"]

    def _apply(self, labels: LabelMatrix, operands: list[LabelMatrix]) -> LabelMatrix:
        return type(self).combine(operands[0], operands[1])


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class And(_Binary, symbol="&", precedence=_AND, combine=operator.and_):
    r"""Conjunction: the samples where both ``left`` and ``right`` hold."""


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Or(_Binary, symbol="|", precedence=_OR, combine=operator.or_):
    r"""Disjunction: the samples where ``left`` or ``right`` holds."""


_BINARY: dict[str, type[_Binary]] = {"&": And, "|": Or}


def _tokens(text: str) -> Iterator[_Token]:
    """``(kind, value, position)`` of each operator (``kind`` "operator") and name in ``text``,
    read as they are needed: bad text fails at its first bad token, however long it is."""
    # trailing blanks match no token: the text ends before them (re's \s is str.isspace)
    end = len(text.rstrip())
    position = 0
    for match in _TOKEN.finditer(text, 0, end):
        if match.start() != position:
            break
        kind = "operator" if match.lastgroup == "operator" else "name"
        if match.lastgroup == "quoted":
            yield kind, _ESCAPE.sub(r"\1", match.group("quoted")), match.start("quoted") - 1
        else:
            yield kind, match.group(kind).strip(), match.start(kind)
        position = match.end()
    if position < end:
        # only a '"' after blanks that opens no well-formed quoted name matches no token
        start = text.index('"', position)
        found = _excerpt(text[start:], limit=_QUOTE_EXCERPT)
        raise ValueError(
            f"`text` {_excerpt(text)}: cannot read a formula at position {start}: expected "
            f"a name in double quotes ending with '\"', found {found}"
        )


class _Parser:
    """Operator precedence parsing with explicit stacks (so no depth limit) of
    ``or := and ('|' and)*``, ``and := not ('&' not)*``, ``not := '~' not | '(' or ')' | name``."""

    def __init__(self, text: str, index: dict[str, int]) -> None:
        self.text = text
        self.index = index
        self.token: _Token | None = None
        self.operands: list[Formula] = []
        # "~", "(", "&" and "|" still waiting for their operands
        self.operators: list[str] = []
        self.open_groups = 0
        # one Atom per concept: formulas are immutable, so their nodes can be shared
        self.atoms: dict[str, Atom] = {}

    def parse(self) -> Formula:
        expect_operand = True
        for token in _tokens(self.text):
            self.token = token
            kind, value, _ = token
            if expect_operand:
                expect_operand = self._read_operand(kind, value)
            else:
                expect_operand = self._read_operator(kind, value)
        self.token = None
        if expect_operand:
            raise self._fail("a concept name, '~' or '('")
        if self.open_groups:
            raise self._fail("')'")
        self._reduce(_OR)
        return self.operands[0]

    def _read_operand(self, kind: str, value: str) -> bool:
        """Reads a token where an operand starts; whether an operand is still expected."""
        if kind == "name":
            self.operands.append(self._atom(value))
            self._close_negations()
            return False
        if value in ("~", "("):
            self.operators.append(value)
            self.open_groups += value == "("
            return True
        raise self._fail("a concept name, '~' or '('")

    def _atom(self, name: str) -> Atom:
        atom = self.atoms.get(name)
        if atom is None:
            if name not in self.index:
                raise ValueError(
                    f"`text` {_excerpt(self.text)} names the unknown concept {_excerpt(name)}; "
                    f"known concepts: {_preview(list(self.index))}"
                )
            atom = self.atoms[name] = Atom(self.index[name], name)
        return atom

    def _read_operator(self, kind: str, value: str) -> bool:
        """Reads a token after a complete operand; whether an operand is expected next."""
        if kind == "operator" and value in _BINARY:
            self._reduce(_BINARY[value].precedence)
            self.operators.append(value)
            return True
        if kind == "operator" and value == ")" and self.open_groups:
            self._reduce(_OR)
            self.operators.pop()
            self.open_groups -= 1
            self._close_negations()
            return False
        raise self._fail("')'" if self.open_groups else "an operator '&' or '|'")

    def _reduce(self, weakest: int) -> None:
        """Applies the pending binary operators that bind at least as strongly as ``weakest``."""
        operators, operands = self.operators, self.operands
        while operators and operators[-1] in _BINARY:
            node_type = _BINARY[operators[-1]]
            if node_type.precedence < weakest:
                break
            operators.pop()
            right = operands.pop()
            operands.append(node_type(operands.pop(), right))

    def _close_negations(self) -> None:
        """Applies the ``~`` waiting for the operand just completed."""
        while self.operators and self.operators[-1] == "~":
            self.operators.pop()
            self.operands[-1] = Not(self.operands[-1])

    def _fail(self, expected: str) -> ValueError:
        if self.token is None:
            found = "the end of the text"
        else:
            _, value, start = self.token
            found = f"{_excerpt(value, limit=_TOKEN_EXCERPT)} at position {start}"
        return ValueError(f"`text` {_excerpt(self.text)}: expected {expected}, found {found}")


def _excerpt(text: str, limit: int = _TEXT_EXCERPT) -> str:
    """``repr(text)``, cut to its first ``limit`` characters when longer."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def _preview(names: list[str], limit: int = _PREVIEW_NAMES) -> str:
    shown = ", ".join(
        name if len(name) <= _NAME_EXCERPT else name[:_NAME_EXCERPT] + "..."
        for name in names[:limit]
    )
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
