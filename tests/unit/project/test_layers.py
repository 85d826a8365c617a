"""The layering contract: a package imports only packages of lower layers, so no import cycles
can come back (the README's layout describes the same order)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

LEAFNET = Path(__file__).resolve().parents[3] / "leafnet"

# Lowest first. A package may import the packages of any lower layer; within a layer only the
# first one (the foundations) may import each other.
LAYERS: list[set[str]] = [
    {"errors", "atomic", "paths", "utilities"},
    {"imageio"},
    {"raw_format"},
    {"verification", "preprocessing", "diffusion"},
    {"models"},
    {"dataset_conversion", "planning", "features", "evaluation", "model_store"},
    {"inference"},
    {"training"},
    {"benchmarks", "experiments"},
]


def package_imports() -> dict[str, set[str]]:
    """leafnet package -> the other leafnet packages it imports (anywhere in its files)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in LEAFNET.rglob("*.py"):
        parts = path.relative_to(LEAFNET).parts
        if parts == ("__init__.py",):
            continue
        package = parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("leafnet.") and name.split(".")[1] != package:
                    edges[package].add(name.split(".")[1])
    return edges


def test_every_package_has_a_layer():
    packages = {p.name.removesuffix(".py") for p in LEAFNET.iterdir()
                if (p.is_dir() and (p / "__init__.py").is_file())
                or (p.suffix == ".py" and p.name != "__init__.py")}
    assert packages == set().union(*LAYERS)


def test_packages_import_only_lower_layers():
    layer_of = {package: index for index, layer in enumerate(LAYERS) for package in layer}
    violations = [
        f"{package} (layer {layer_of[package]}) imports {target} (layer {layer_of[target]})"
        for package, targets in package_imports().items() for target in targets
        if layer_of[target] > layer_of[package]
        or (layer_of[target] == layer_of[package] and layer_of[package] != 0)]
    assert not violations, "\n".join(violations)


def test_the_foundations_import_each_other_without_cycles():
    edges = package_imports()
    for package in LAYERS[0]:
        for target in edges.get(package, ()):
            assert package not in edges.get(target, ()), f"{package} <-> {target}"
