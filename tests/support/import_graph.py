"""The import graph of the vmp_jax package, from the source (function-local imports included).

    python tests/support/import_graph.py          # one line per module: module -> the vmp_jax modules it imports

`tests/test_imports.py` keeps it free of cycles.
"""

from __future__ import annotations

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def modules(package: str = "vmp_jax") -> dict[str, str]:
    """Module name -> file path, for every module of `package`."""
    out = {}
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def graph(package: str = "vmp_jax") -> dict[str, set[str]]:
    """Module -> the package's modules it imports (an import of a package's name counts as its __init__), from
    every import statement: function-local and `if TYPE_CHECKING:` ones included."""
    mods = modules(package)
    edges = {}
    for name, path in mods.items():
        is_package = path.endswith("__init__.py")
        here = name if is_package else name.rpartition(".")[0]
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        deps = set()
        # Every import counts, `if TYPE_CHECKING:` ones too: a type-only circle is still a circle to a reader.
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    deps.add(full if full in mods else base)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        edges[name] = {d for d in deps if d in mods and d != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by a depth-first search (each reported once, from its smallest module)."""
    found = []

    def visit(start, node, path):
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                found.append([*path, start])
            elif nxt > start and nxt not in path:
                visit(start, nxt, [*path, nxt])

    for start in sorted(edges):
        visit(start, start, [start])
    return found


def main() -> int:
    edges = graph()
    width = max(map(len, edges))
    for name in sorted(edges):
        print(f"{name:<{width}} -> {', '.join(sorted(edges[name]))}")
    found = cycles(edges)
    print(f"cycles: {found if found else 'none'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
