"""The import graph runs one way: no module import cycles, and no package imports from a higher layer.

Layers, lowest first (a module may import from its own package or from a lower layer)::

    base (errors, progress, provenance, checksums, options, console, folders, lazy, durable)
    < data < tokenizer < model < train < serve < report < experiments < quickstart < cli/__main__

Every import counts, including those inside functions: a lazy import still ties the two modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[list[str]] = [
    ["gristmill", "gristmill.errors", "gristmill.progress", "gristmill.provenance", "gristmill.checksums",
     "gristmill.options", "gristmill.console", "gristmill.folders", "gristmill.lazy", "gristmill.durable"],
    ["gristmill.data"],
    ["gristmill.tokenizer"],
    ["gristmill.model"],
    ["gristmill.train"],
    ["gristmill.serve"],
    ["gristmill.report"],
    ["gristmill.experiments"],
    ["gristmill.quickstart"],
    ["gristmill.cli", "gristmill.__main__"],
]


def module_files(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` under ``src``."""
    modules = {}
    for path in sorted((src / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(module: str, path: Path, modules: Iterable[str], package: str) -> set[str]:
    """The modules of ``package`` that ``module`` imports, anywhere in its file."""
    known = set(modules)
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name != package and not name.startswith(package + "."):
                continue
            while name and name not in known:  # `from pkg.mod import function` imports pkg.mod
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    modules = module_files(src, package)
    return {name: imports_of(name, path, modules, package) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str, layers: list[list[str]]) -> tuple[int, str]:
    """(layer number, the unit it belongs to): the longest listed name that is ``module`` or its package."""
    best: tuple[int, str] | None = None
    for number, names in enumerate(layers):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (number, name)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return best


def problems(src: Path, package: str, layers: list[list[str]]) -> list[str]:
    """One line per import cycle and per import from a higher layer."""
    graph = import_graph(src, package)
    found = []
    for group in cycles(graph):
        links = [f"{a} -> {b}" for a in group for b in sorted(graph[a]) if b in group]
        found.append(f"import cycle among {', '.join(group)}: {'; '.join(links)}")
    for module in sorted(graph):
        layer, unit = layer_of(module, layers)
        for target in sorted(graph[module]):
            target_layer, target_unit = layer_of(target, layers)
            if target_layer > layer:
                found.append(f"{module} imports {target}: {target_unit} is above {unit}")
    return found


def test_gristmill_imports_run_one_way():
    found = problems(SRC, "gristmill", LAYERS)
    assert not found, "import graph problems:\n  " + "\n  ".join(found)


def test_the_checker_reports_a_cycle_and_an_upward_import(tmp_path):
    def write(relative: str, text: str) -> None:
        path = tmp_path / "fake" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    write("__init__.py", "")
    write("low/__init__.py", "")
    write("low/a.py", "from fake.low import b\n")
    write("low/b.py", "def f():\n    from .a import x\n")  # a cycle through a lazy, relative import
    write("low/c.py", "def g():\n    import fake.high.top\n")  # an upward import inside a function
    write("high/__init__.py", "")
    write("high/top.py", "x = 1\n")
    found = problems(tmp_path, "fake", [["fake"], ["fake.low"], ["fake.high"]])
    assert any(line.startswith("import cycle among fake.low.a, fake.low.b") for line in found), found
    assert "fake.low.c imports fake.high.top: fake.high is above fake.low" in found, found
    assert len(found) == 2, found


def test_importing_the_cli_loads_no_heavy_package():
    heavy = ["torch", "transformers", "onnx", "onnxruntime", "ray", "sklearn", "matplotlib", "fastapi", "uvicorn"]
    corpus = ["pyarrow", "tokenizers"]  # the corpus steps need these, `gristmill --help` does not
    code = ("import sys, gristmill.cli\n"
            f"print(sorted(m for m in {heavy + corpus!r} if m in sys.modules))\n"
            "from gristmill.data.recipe import load_builtin_steps\n"
            "load_builtin_steps()\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["[]", "[]"], f"heavy packages loaded by `import gristmill.cli`: {result.stdout}"
