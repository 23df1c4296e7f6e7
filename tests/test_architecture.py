"""The house rules that a linter cannot see: no import circles, an instant CLI, inference without Lightning."""

from __future__ import annotations

import subprocess
import sys

import grimp
import pytest


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components (size > 1) of the import graph restricted to ``modules`` (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v) & modules:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return out


def test_no_import_circles_between_rooms():
    graph = grimp.build_graph("soundloom")
    rooms = [
        "soundloom.core",
        "soundloom.data",
        "soundloom.sounds",
        "soundloom.streams",
        "soundloom.studio",
        "soundloom.cli",
    ]
    for room in rooms:
        graph.squash_module(room)
    assert _cycles(graph, set(rooms)) == []


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("statement", ["import soundloom.cli", "from soundloom.core.errors import SoundloomError"])
def test_cli_and_errors_import_no_torch(statement):
    heavy = {"torch", "lightning", "scipy", "librosa", "pyloudnorm", "matplotlib"} & _imported_after(statement)
    assert heavy == set()


@pytest.mark.parametrize(
    "module",
    ["soundloom.sounds.generator", "soundloom.streams.render", "soundloom.streams.endless", "soundloom.streams.index"],
)
def test_inference_never_imports_lightning(module):
    loaded = _imported_after(f"import {module}")
    assert not {m for m in loaded if m.split(".")[0] in ("lightning", "pytorch_lightning")}
    assert not {m for m in loaded if ".training" in m}


def test_no_import_circles_between_modules():
    graph = grimp.build_graph("soundloom")
    modules = {m for m in graph.modules if not graph.find_children(m)}
    assert _cycles(graph, modules) == []
