"""Mechanical checks of the package's shape: no import cycles, no arrow from the library up to a command, and
backbone knowledge stays in backbone files."""

import os
import re

from import_graph import ROOT, cycles, graph, modules

from vmp_jax.models import registry


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles_in_vmp_jax():
    edges = graph()
    assert "vmp_jax.models.factory" in edges["vmp_jax.training.trained_run"]  # the graph sees real imports
    assert cycles(edges) == []


# The commands and the modules that only they use; everything else is the library they are built on.
COMMANDS = (
    "vmp_jax.export",
    "vmp_jax.predict",
    "vmp_jax.explore",
    "vmp_jax.aot",
    "vmp_jax.visualize",
    "vmp_jax.ablate",
)
COMMAND_MAINS = ("vmp_jax.convert.__main__",)


def is_command(module: str) -> bool:
    return module in COMMAND_MAINS or any(module == c or module.startswith(c + ".") for c in COMMANDS)


def test_the_library_imports_no_command():
    edges = graph()
    assert {"vmp_jax.bundle", "vmp_jax.cli"} <= edges["vmp_jax.export"]  # a command's arrows point down
    upward = sorted(f"{m} -> {d}" for m, deps in edges.items() if not is_command(m) for d in deps if is_command(d))
    assert upward == []


def test_type_only_imports_count_in_the_graph(tmp_path, monkeypatch):
    import import_graph  # pylint: disable=import-outside-toplevel

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from pkg import a\n")
    monkeypatch.setattr(import_graph, "ROOT", str(tmp_path))
    assert cycles(import_graph.graph("pkg")) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_no_module_names_a_backbone_other_than_its_own():
    """Code outside a backbone's model and converter files (and the package's re-exports) uses no backbone's
    name: generic code dispatches through the registry."""
    names = [name for name in registry.names()]
    offenders = []
    for module, path in modules().items():
        if module.endswith("__init__") or path.endswith("__init__.py"):
            continue
        own = module.rpartition(".")[2]
        with open(path, encoding="utf-8") as f:
            code = "\n".join(line.split("#")[0] for line in f.read().splitlines())
        code = re.sub(r'"""(.|\n)*?"""', "", code)  # docstrings are prose
        for name in names:
            if name != own and re.search(rf"""["'.]{name}["'.(]|\b{name}_from_torch\b""", code):
                offenders.append(f"{os.path.relpath(path, ROOT)}: {name}")
    assert offenders == []
