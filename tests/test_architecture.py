"""The package's shape, read from its source: parts import one way, arguments go by name.

Each check parses the modules (no import), so a failure names the file and line to fix.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "captum_netinv"
#: The code whose calls and functions are held to the rules (tests are exempt: they may pass
#: positional values to check what a function does with them).
CHECKED = [PACKAGE, ROOT / "benchmarks"]
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 100
MAX_POSITIONAL_ARGUMENTS = 5
#: Folders whose modules form one part each; any other module is a part of its own.
PART_FOLDERS = ("inversion/network", "inversion/neuron", "inversion", "recognition")
PART_FOLDERS += ("visualization", "app", "examples")
#: The parts that hold an attribution method.
METHOD_PARTS = {"inversion.network", "inversion.neuron", "recognition"}


def _python_files(folders: list[Path]) -> Iterator[Path]:
    for folder in folders:
        yield from sorted(path for path in folder.rglob("*.py") if ".ipynb" not in str(path))


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _part_of(module: str) -> str | None:
    r"""The part a ``captum_netinv`` module belongs to, None for other packages."""
    if module != "captum_netinv" and not module.startswith("captum_netinv."):
        return None
    inner = module.removeprefix("captum_netinv").lstrip(".").replace(".", "/")
    for folder in PART_FOLDERS:
        if inner == folder or inner.startswith(folder + "/"):
            return folder.replace("/", ".")
    return inner.split("/")[0] or "captum_netinv"


def _runtime_imports(tree: ast.Module, module: str) -> Iterator[tuple[str, int]]:
    r"""The modules ``tree`` imports when it runs (``TYPE_CHECKING`` blocks left out)."""
    type_checking_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                type_checking_lines.update(range(inner.lineno, (inner.end_lineno or 0) + 1))
    package = module if module.endswith("__init__") else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in type_checking_lines:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            yield base, node.lineno


def _part_graph() -> dict[str, dict[str, str]]:
    r"""part -> {part it imports at run time: the first file:line that does}."""
    graph: dict[str, dict[str, str]] = {}
    for path in _python_files([PACKAGE]):
        module = _module_name(path)
        source = _part_of(module)
        assert source is not None
        tree = ast.parse(path.read_text())
        for imported, line in _runtime_imports(tree, module):
            target = _part_of(imported)
            if target is not None and target != source:
                graph.setdefault(source, {}).setdefault(target, f"{path.name}:{line}")
    return graph


def _cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(part: str) -> list[str] | None:
        if part in visiting:
            return [*visiting[visiting.index(part) :], part]
        if part in done:
            return None
        visiting.append(part)
        for target in graph.get(part, {}):
            if (found := visit(target)) is not None:
                return found
        visiting.pop()
        done.add(part)
        return None

    for part in list(graph):
        if (found := visit(part)) is not None:
            return found
    return None


def test_the_parts_import_each_other_without_a_circle() -> None:
    graph = _part_graph()
    cycle = _cycle(graph)
    where = [graph[a][b] for a, b in zip(cycle, cycle[1:], strict=False)] if cycle else []
    assert cycle is None, f"import circle {' -> '.join(cycle or [])} at {where}"
    # the circle test sees real edges: the app uses the methods, the methods the shared parts
    assert {"inversion.network", "recognition"} <= set(graph["app"])
    assert "inversion" in graph["inversion.neuron"] and "inversion" in graph["inversion.network"]


def test_the_method_folders_do_not_import_each_other() -> None:
    graph = _part_graph()
    assert "inversion.neuron" not in graph.get("inversion.network", {})
    assert "inversion.network" not in graph.get("inversion.neuron", {})
    for part in ("inversion", "_utils", "_activations", "visualization"):
        reached = set(graph.get(part, {})) & METHOD_PARTS
        assert not reached, f"{part} imports the methods {reached} at run time: {graph[part]}"


def _checked_trees() -> Iterator[tuple[Path, ast.Module, str]]:
    for path in _python_files(CHECKED):
        text = path.read_text()
        yield path, ast.parse(text), text


def test_no_module_forwards_arguments_with_locals() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree, _ in _checked_trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id == "locals"
    ]
    assert not found, f"locals() forwards arguments invisibly at {found}"


def _own_packed_tuples(function: ast.AST) -> set[str]:
    r"""Names that ``function`` binds to a tuple display (``options = (a, b, c)``)."""
    return {
        target.id
        for node in ast.walk(function)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def test_calls_pass_settings_by_name() -> None:
    problems = []
    for path, tree, _ in _checked_trees():
        for function in ast.walk(tree):
            # module-level calls too; a module's named constants may be splatted
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
                continue
            packed = set() if isinstance(function, ast.Module) else _own_packed_tuples(function)
            for call in ast.walk(function):
                if not isinstance(call, ast.Call):
                    continue
                where = f"{path.relative_to(ROOT)}:{call.lineno} {ast.unparse(call.func)}"
                positional = [arg for arg in call.args if not isinstance(arg, ast.Starred)]
                if len(positional) > MAX_POSITIONAL_ARGUMENTS:
                    problems.append(f"{where}: {len(positional)} positional arguments")
                for arg in call.args:
                    if isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Name):
                        if arg.value.id in packed:
                            problems.append(f"{where}: splats its own tuple {arg.value.id}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_modules_and_functions_stay_readable_in_size() -> None:
    problems = []
    for path, tree, text in _checked_trees():
        if len(text.splitlines()) > MAX_MODULE_LINES:
            problems.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("captum_netinv.inversion.neuron.target", "inversion.neuron"),
        ("captum_netinv.inversion.settings", "inversion"),
        ("captum_netinv.labeling", "labeling"),
        ("captum_netinv", "captum_netinv"),
        ("torch.nn", None),
    ],
)
def test_parts_are_read_from_module_names(source: str, expected: str | None) -> None:
    assert _part_of(source) == expected


def test_the_circle_check_finds_a_planted_circle() -> None:
    graph = {"a": {"b": "x.py:1"}, "b": {"c": "y.py:2"}, "c": {"a": "z.py:3"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": "x.py:1"}, "b": {}}) is None
