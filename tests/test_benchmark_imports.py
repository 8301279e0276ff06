"""benchmarks/ stays a small set of entry points over shared code: no import circle between its modules
(imports inside functions included), and under 2,000 lines."""

from __future__ import annotations

import ast
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def benchmark_imports(folder: Path = BENCHMARKS) -> dict[str, set[str]]:
    """module name -> the benchmarks modules it imports anywhere in its file (`from benchmarks import x` too)."""
    modules = {path.stem for path in folder.glob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        imported = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[1] for alias in node.names
                             if alias.name.startswith("benchmarks.")}
            elif isinstance(node, ast.ImportFrom) and node.module == "benchmarks":
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("benchmarks."):
                imported.add(node.module.split(".")[1])
        graph[name] = (imported & modules) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_benchmark_modules_import_one_another_without_a_circle():
    graph = benchmark_imports()
    assert {"benchmark", "measure", "reference_code", "scripts", "loader", "metrics", "detection"} <= set(graph)
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_the_circle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("from benchmarks.b import f\n")
    (tmp_path / "b.py").write_text("def f():\n    from benchmarks import c\n")
    (tmp_path / "c.py").write_text("import benchmarks.a\n")
    assert find_cycle(benchmark_imports(tmp_path)) == ["a", "b", "c", "a"]
    (tmp_path / "c.py").write_text("import os\n")
    assert find_cycle(benchmark_imports(tmp_path)) is None


def test_benchmarks_stay_under_two_thousand_lines():
    lines = sum(len(path.read_text().splitlines()) for path in BENCHMARKS.glob("*.py"))
    assert lines < 2000, f"benchmarks/*.py has {lines} lines"
