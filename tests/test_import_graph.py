"""No import circle in models/, data_handling/, tools/ or benchmarks/ (imports inside functions and under
TYPE_CHECKING included); models/ and data_handling/ import nothing above them (tools/, the top-level
scripts, benchmarks/, tests/); benchmarks/ under 2,000 lines (models/ importing neither tools/ nor
data_handling/: tests/test_model_package.py)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
PRODUCT_PACKAGES = ("models", "data_handling", "tools")
LIBRARY_PACKAGES = ("models", "data_handling")  # imported by tools/ and the scripts, never the other way


def module_imports(repo: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """dotted module name -> the modules of `packages` it imports anywhere in its file (`from a import b` counts
    as a.b when b is a module, else as a; relative imports resolved; a package's own __init__ is left out)."""
    modules = {}
    for package in packages:
        for path in (repo / package).rglob("*.py"):
            parts = list(path.relative_to(repo).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            imported |= {target for candidate in candidates if (target := known(candidate))}
        graph[name] = {target for target in imported if target != name and not name.startswith(target + ".")}
    return graph


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


def upper_layers(repo: Path) -> set[str]:
    """The top-level names models/ and data_handling/ must not import: tools, benchmarks, tests and every
    script beside them (pretrain, zero_shot_*, example, detect, search, ...)."""
    return {"tools", "benchmarks", "tests"} | {path.stem for path in repo.glob("*.py")}


def upward_imports(repo: Path, packages: tuple[str, ...] = LIBRARY_PACKAGES) -> list[str]:
    """'<file>:<line>: <module> imports <name>' for every import of an upper layer (upper_layers) in the
    packages' files: at the top, inside functions, under TYPE_CHECKING or through
    importlib.import_module / __import__ with a literal name (relative imports stay inside the package)."""
    forbidden = upper_layers(repo)
    found = []
    for package in packages:
        for path in sorted((repo / package).rglob("*.py")):
            parts = path.relative_to(repo).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            in_file: list[tuple[int, str]] = []
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                        and isinstance(node.args[0].value, str) and ast.unparse(node.func) in (
                            "importlib.import_module", "import_module", "__import__"):
                    names = [node.args[0].value]
                else:
                    continue
                in_file += [(node.lineno, f"{path.relative_to(repo)}:{node.lineno}: {module} imports {name}")
                            for name in names if name.split(".")[0] in forbidden]
            found += [line for _, line in sorted(in_file)]
    return found


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


def test_product_packages_import_one_another_without_a_circle():
    graph = module_imports(REPO, PRODUCT_PACKAGES)
    assert {"models.ase_model", "data_handling.wavcaps", "tools.train.trainer"} <= set(graph)
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_models_and_data_handling_import_nothing_above_them():
    assert {"tools", "pretrain", "zero_shot_sed", "example", "detect", "search"} <= upper_layers(REPO)
    offenders = upward_imports(REPO)
    assert not offenders, ("models/ and data_handling/ are imported by tools/ and the scripts, never the other "
                           "way; pass plain values instead:\n" + "\n".join(offenders))


def test_the_upward_import_finder_sees_every_kind_of_import(tmp_path):
    (tmp_path / "lib" / "sub").mkdir(parents=True)
    (tmp_path / "tools").mkdir()
    (tmp_path / "pretrain.py").write_text("")
    (tmp_path / "lib" / "__init__.py").write_text("from . import sub\nimport toolsmith\nfrom tooling import x\n")
    (tmp_path / "lib" / "sub" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tools.config import Config\n")
    (tmp_path / "lib" / "sub" / "cli.py").write_text(
        "import os\n\n\ndef main():\n    import tools.config as config\n    from pretrain import main\n"
        "    return importlib.import_module('tools.train')\n")
    assert upward_imports(tmp_path, ("lib",)) == [
        "lib/sub/__init__.py:3: lib.sub imports tools.config",
        "lib/sub/cli.py:5: lib.sub.cli imports tools.config",
        "lib/sub/cli.py:6: lib.sub.cli imports pretrain",
        "lib/sub/cli.py:7: lib.sub.cli imports tools.train",
    ]


def test_the_product_circle_finder_sees_type_checking_and_relative_imports(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import b\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("from ..a import f\n")
    graph = module_imports(tmp_path, ("pkg",))
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]


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
