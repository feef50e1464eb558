"""The package's layout in numbers, read off its source without importing it (standard library
only): import cycles, long modules and functions, callers of the launch function, reads of a
run's `meta` record, exit-code mapping sites and paths computed from `__file__`.

`python tests/layout_measures.py` prints them all; each measure is a function returning data.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "keras_parity"
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
# Where exit codes are meant to be chosen: the codes, the exceptions that carry them, main().
EXIT_CODE_HOMES = {"keras_parity.exitcodes", "keras_parity.errors", "keras_parity.__main__"}
PATHS_MODULE = "keras_parity.paths"


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (folders without __init__.py are not modules)."""
    found = {}
    # os.walk follows a linked folder (the built-in models), which Path.rglob does not on 3.11
    files = [Path(d) / f for d, _, names in os.walk(package, followlinks=True) for f in names if f.endswith(".py")]
    for path in sorted(files):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if not all((package.parent.joinpath(*parts[:i]) / "__init__.py").exists() for i in range(1, len(parts))):
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _trees(package: Path = PACKAGE) -> Iterator[tuple[str, Path, ast.Module]]:
    for name, path in modules(package).items():
        yield name, path, ast.parse(path.read_text(), str(path))


def _imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The package modules one import statement loads, at whatever level it stands."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    base = node.module or ""
    if node.level:  # relative: from the module's package, up level - 1 packages
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    targets = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
    if len(targets) < len(node.names) and base in known:  # names defined in the module itself
        targets.add(base)
    return targets


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports, function-level imports included."""
    known = set(modules(package))
    graph: dict[str, set[str]] = {}
    for name, path, tree in _trees(package):
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _imported(name, path, node, known)
        graph[name] = edges - {name}
    return graph


def import_cycles(package: Path = PACKAGE) -> list[list[str]]:
    """The strongly connected components of the import graph with more than one module."""
    graph = import_graph(package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


def long_modules(package: Path = PACKAGE, limit: int = MAX_MODULE_LINES) -> dict[str, int]:
    """Modules over `limit` lines, with their line counts."""
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules(package).items()}
    return {name: n for name, n in sorted(sizes.items(), key=lambda kv: -kv[1]) if n > limit}


def long_functions(package: Path = PACKAGE, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """Functions and methods over `limit` lines (decorators excluded), as 'module:qualified.name'."""
    found = {}
    for name, _, tree in _trees(package):
        for qualname, node in _functions(tree):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found[f"{name}:{qualname}"] = lines
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{prefix}{node.name}", node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def run_backends_callers(package: Path = PACKAGE, function: str = "run_backends") -> dict[str, int]:
    """Modules that call the launch function (other than where it is defined), with their call counts."""
    callers = {}
    for name, _, tree in _trees(package):
        defines = any(isinstance(n, ast.FunctionDef) and n.name == function for n in ast.walk(tree))
        calls = sum(
            1
            for n in ast.walk(tree)
            if isinstance(n, ast.Call)
            and (
                (isinstance(n.func, ast.Name) and n.func.id == function)
                or (isinstance(n.func, ast.Attribute) and n.func.attr == function)
            )
        )
        if calls and not defines:
            callers[name] = calls
    return callers


def _is_meta_read(node: ast.AST) -> bool:
    """`x.meta` read in any form (`x.meta[...]`, `x.meta.get(...)` included), or `meta[...]` and
    `meta.get(...)` on a name called meta."""
    if isinstance(node, ast.Attribute) and node.attr == "meta":
        return isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        return isinstance(node.value, ast.Name) and node.value.id == "meta"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return isinstance(node.func.value, ast.Name) and node.func.value.id == "meta"
    return False


def meta_reads(package: Path = PACKAGE) -> dict[str, int]:
    """Reads of a record called meta by key or attribute (see _is_meta_read), by module."""
    reads = {}
    for name, _, tree in _trees(package):
        count = sum(1 for n in ast.walk(tree) if _is_meta_read(n))
        if count:
            reads[name] = count
    return reads


def _exit_code_use(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Exit":
        return f"Exit.{node.attr}" if node.attr in ("USAGE", "INFRA") else None
    if isinstance(node, ast.Name) and node.id in ("usage_error", "SystemExit"):
        return node.id
    return None


def exit_code_sites(package: Path = PACKAGE) -> list[tuple[str, int, str]]:
    """(module, line, what) for each use of Exit.USAGE, Exit.INFRA, usage_error or SystemExit
    outside exitcodes.py, errors.py, __main__.py and functions named main."""
    sites = []
    for name, _, tree in _trees(package):
        if name in EXIT_CODE_HOMES:
            continue
        inside_main = {
            id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "main" for n in ast.walk(f)
        }
        for n in ast.walk(tree):
            what = _exit_code_use(n)
            if what and id(n) not in inside_main:
                sites.append((name, n.lineno, what))
    return sorted(sites)


def file_paths(package: Path = PACKAGE) -> dict[str, int]:
    """Modules other than keras_parity/paths.py that read `__file__`, with the number of reads."""
    uses = {}
    for name, _, tree in _trees(package):
        count = sum(1 for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "__file__")
        if count and name != PATHS_MODULE:
            uses[name] = count
    return uses


def main() -> None:
    cycles = import_cycles()
    print(f"import cycles: {len(cycles)}")
    for component in cycles:
        print(f"  {' <-> '.join(component)}")
    for title, measure in (
        (f"modules over {MAX_MODULE_LINES} lines", long_modules),
        (f"functions over {MAX_FUNCTION_LINES} lines", long_functions),
        ("callers of run_backends (calls)", run_backends_callers),
        ("meta[...], meta.get( and .meta reads", meta_reads),
        ("modules computing paths from __file__ (reads)", file_paths),
    ):
        found = measure()
        print(f"{title}: {len(found)} ({sum(found.values())} in all)")
        for key, n in found.items():
            print(f"  {key}: {n}")
    sites = exit_code_sites()
    print(f"exit-code mapping sites: {len(sites)} in {len({m for m, _, _ in sites})} modules")
    for module, line, what in sites:
        print(f"  {module}:{line} {what}")


if __name__ == "__main__":
    main()
