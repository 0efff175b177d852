"""Mechanical checks of the package's shape: no import cycles, and backbone knowledge stays in backbone files."""

import os
import re

from import_graph import ROOT, cycles, graph, modules

from vmp_jax.models import registry


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles_in_vmp_jax():
    edges = graph()
    assert "vmp_jax.models.factory" in edges["vmp_jax.trained_run"]  # the graph sees real imports
    assert cycles(edges) == []


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
