"""The report's concepts: a 0/1 table, a file-to-concepts mapping, or the classes with an is-a tree.

Each form becomes the ``(N, C)`` boolean matrix and the names that INVERT labels neurons with;
rows that do not match the samples are a :class:`~captum_netinv.app.loading.ReportInputError`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from captum_netinv.app.inputs import ImageData
from captum_netinv.app.loading import ReportInputError

__all__ = ["CLASSES", "load_concepts"]

#: ``--concepts classes``: the class of each sample (and its ancestors in ``--is-a``).
CLASSES = "classes"
#: The column that names a sample's file, in a table or a mapping.
_FILE_COLUMN = "file"
#: The column of a mapping that lists a sample's concepts, separated by ``;``.
_MAPPING_COLUMN = "concepts"
_SEPARATOR = ";"


def _rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise ReportInputError(f"--concepts: no such file: {str(path)!r}")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [[cell.strip() for cell in row] for row in csv.reader(handle) if row]
    if len(rows) < 2:
        raise ReportInputError(f"--concepts: {str(path)!r} needs a header row and data rows")
    return rows


def _sample_order(keys: list[str], data: ImageData, path: Path) -> list[int]:
    r"""For each sample, the row of the table that names its file."""
    if data.files is None:
        raise ReportInputError(
            f"--concepts: {str(path)!r} names files, but --data has no file names "
            "(an ImageFolder, or a tensor file with a 'files' key, has them)"
        )
    row_of = {}
    for row, key in enumerate(keys):
        row_of[key] = row
        row_of.setdefault(Path(key).name, row)
    missing = [name for name in data.files if name not in row_of and Path(name).name not in row_of]
    if missing or len(keys) != len(data.files):
        raise ReportInputError(
            f"--concepts: {len(keys)} rows in {str(path)!r} for {len(data.files)} samples of "
            f"--data; {len(missing)} samples have no row (e.g. {missing[:3]})"
        )
    return [row_of.get(name, row_of.get(Path(name).name, 0)) for name in data.files]


def _table(rows: list[list[str]], data: ImageData, path: Path) -> tuple[Tensor, list[str]]:
    header, body = rows[0], rows[1:]
    by_file = header[0].lower() == _FILE_COLUMN
    names = header[1:] if by_file else header
    values = [row[1:] if by_file else row for row in body]
    for number, row in enumerate(values, start=2):
        if len(row) != len(names) or any(cell not in ("0", "1") for cell in row):
            raise ReportInputError(
                f"--concepts: line {number} of {str(path)!r} must hold {len(names)} cells of "
                f"0 or 1, got {row}"
            )
    matrix = torch.tensor([[cell == "1" for cell in row] for row in values], dtype=torch.bool)
    if by_file:
        matrix = matrix[_sample_order([row[0] for row in body], data, path)]
    elif len(matrix) != len(data.images):
        raise ReportInputError(
            f"--concepts: {len(matrix)} rows in {str(path)!r} for {len(data.images)} samples "
            "of --data (one row per sample, in the data's order)"
        )
    return matrix, names


def _mapping(rows: list[list[str]], data: ImageData, path: Path) -> tuple[Tensor, list[str]]:
    body = rows[1:]
    listed = [
        [name.strip() for name in row[1].split(_SEPARATOR) if name.strip()] if len(row) > 1 else []
        for row in body
    ]
    names = sorted({name for concepts in listed for name in concepts})
    column = {name: index for index, name in enumerate(names)}
    matrix = torch.zeros(len(body), len(names), dtype=torch.bool)
    for row, concepts in enumerate(listed):
        for name in concepts:
            matrix[row, column[name]] = True
    return matrix[_sample_order([row[0] for row in body], data, path)], names


def _ancestors(path: Path) -> dict[str, list[str]]:
    r"""``child,parent`` lines (WordNet style) -> each name's parents."""
    parents: dict[str, list[str]] = {}
    if not path.is_file():
        raise ReportInputError(f"--is-a: no such file: {str(path)!r}")
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 2:
                raise ReportInputError(
                    f"--is-a: line {number} of {str(path)!r} must be `child,parent`, got {row}"
                )
            parents.setdefault(row[0].strip(), []).append(row[1].strip())
    return parents


def _lineage(name: str, parents: dict[str, list[str]]) -> list[str]:
    found, stack = [name], [name]
    while stack:
        for parent in parents.get(stack.pop(), []):
            if parent not in found:
                found.append(parent)
                stack.append(parent)
    return found


def _class_concepts(
    data: ImageData, class_names: Sequence[str], is_a: str | None
) -> tuple[Tensor, list[str]]:
    if data.labels is None:
        raise ReportInputError(
            "--concepts: 'classes' needs labelled data (an ImageFolder, or a 'labels' key)"
        )
    parents = _ancestors(Path(is_a)) if is_a is not None else {}
    lineages = [_lineage(name, parents) for name in class_names]
    names = list(class_names) + sorted(
        {name for lineage in lineages for name in lineage} - set(class_names)
    )
    column = {name: index for index, name in enumerate(names)}
    per_class = torch.zeros(len(class_names), len(names), dtype=torch.bool)
    for index, lineage in enumerate(lineages):
        per_class[index, [column[name] for name in lineage]] = True
    return per_class[data.labels], names


def load_concepts(
    spec: str, data: ImageData, class_names: Sequence[str], is_a: str | None = None
) -> tuple[Tensor, list[str]]:
    r"""
    The concepts of ``--concepts``: one boolean row per sample of ``data``.

    Args:
        spec (str): ``classes`` (each sample's class, with its ancestors from ``is_a``); or a
                    CSV file: a **table** whose header names the concepts and whose rows hold
                    0 / 1, one row per sample (in the data's order, or matched by file name
                    when the first column is ``file``); or a **mapping** with the header
                    ``file,concepts`` whose second column lists a sample's concepts separated
                    by ``;``.
        data (ImageData): The samples.
        class_names (Sequence[str]): The class names (for ``classes``).
        is_a (str, optional): A file of ``child,parent`` lines: a class also shows each of
                    its ancestors (only with ``classes``).

    Returns:
        *(Tensor, list[str])*: the ``(N, C)`` boolean matrix and the concept names.
    """
    if spec == CLASSES:
        return _class_concepts(data, class_names, is_a)
    if is_a is not None:
        raise ReportInputError("--is-a: only with --concepts classes")
    path = Path(spec)
    rows = _rows(path)
    header = [cell.lower() for cell in rows[0]]
    if header == [_FILE_COLUMN, _MAPPING_COLUMN]:
        return _mapping(rows, data, path)
    return _table(rows, data, path)
