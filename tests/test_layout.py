"""How the product's modules depend on each other: one way, and never in a circle.

::

    jobsite, jobs  ->  filestore, redisstore  ->  storage
          \\__________________________________________/^

``storage`` holds the contracts both backends keep and imports neither of
them nor ``jobs``; ``filestore`` and ``redisstore`` are siblings that do
not import each other, nor ``jobs``; ``jobs`` uses them through the
contracts. The imports are read from the source (every ``import``
statement, also those inside functions and ``TYPE_CHECKING`` blocks: an
import put off to a call still makes a circle).
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PACKAGES = ("storage", "filestore", "redisstore", "jobs", "jobsite")
BACKENDS = ("filestore", "redisstore")


@dataclass(frozen=True)
class Import:
    """``module`` imports ``target`` (a product module), taking ``names`` from it."""

    module: str
    target: str
    names: tuple[str, ...]
    line: int

    def __str__(self) -> str:
        taken = f" ({', '.join(self.names)})" if self.names else ""
        return f"{self.module}:{self.line} imports {self.target}{taken}"


def package_of(module: str) -> str:
    return module.partition(".")[0]


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def name_of(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def modules() -> dict[str, Path]:
    """Every product module by its dotted name (a package by its ``__init__``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _product_module(name: str) -> str | None:
    """The product module ``name`` is, or lies in (``a.b.c`` of a module ``a.b``); None outside."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def _imports_of(module: str, path: Path) -> list[Import]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if target := _product_module(alias.name):
                    found.append(Import(module, target, (), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules():  # from a.b import c, c a module
                    found.append(Import(module, submodule, (), node.lineno))
                elif target := _product_module(base):
                    found.append(Import(module, target, (alias.name,), node.lineno))
    return found


@functools.cache
def imports() -> list[Import]:
    return [found for module, path in modules().items() for found in _imports_of(module, path)]


def imports_from(package: str) -> list[Import]:
    return [found for found in imports() if package_of(found.module) == package]


def test_it_reads_the_imports_it_judges():
    # The rules below hold of nothing if the reading finds nothing.
    found = {(each.module, each.target) for each in imports()}

    assert ("jobs.backends", "storage.protocols") in found
    assert ("jobs.apps", "jobs.tasks") in found  # made inside a method


def test_storage_imports_neither_backend_nor_jobs():
    upward = [
        str(found) for found in imports_from("storage") if package_of(found.target) != "storage"
    ]

    assert upward == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_backend_imports_neither_the_other_nor_jobs(backend):
    allowed = {backend, "storage"}
    outside = [
        str(found) for found in imports_from(backend) if package_of(found.target) not in allowed
    ]

    assert outside == []


def test_no_module_imports_a_private_name_of_another():
    private = [
        str(found)
        for found in imports()
        if any(map(is_private, found.names)) or any(map(is_private, found.target.split(".")))
    ]

    assert private == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_class_of_a_backend_derives_from_a_class_of_the_other(backend):
    (other,) = set(BACKENDS) - {backend}
    borrowed = []
    for module in (name for name in modules() if package_of(name) == backend):
        for cls in vars(importlib.import_module(module)).values():
            if inspect.isclass(cls) and cls.__module__ == module:
                borrowed += [
                    f"{name_of(cls)} derives from {name_of(base)}"
                    for base in cls.__mro__
                    if package_of(base.__module__) == other
                ]

    assert borrowed == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), or with a self-loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycles_finds_a_circle_and_nothing_else():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_product_modules_import_each_other_in_a_circle():
    graph: dict[str, set[str]] = {module: set() for module in modules()}
    for found in imports():
        if found.target != found.module:
            graph[found.module].add(found.target)

    assert cycles(graph) == []
