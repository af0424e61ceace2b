"""The curated public names of gristmill.data, .tokenizer, .model, .train and .serve: each imports, and the CLI
stays torch-free."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ("gristmill.data", "gristmill.tokenizer", "gristmill.model", "gristmill.train", "gristmill.serve")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_imports(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__, package
    for name in module.__all__:
        value = getattr(module, name)
        assert value is not None and not isinstance(value, type(module)), f"{package}.{name}"
        assert name in dir(module)
        exec(f"from {package} import {name}", {})  # the import statement works too
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_submodules_keep_their_names() -> None:
    # A function named like its module (train.pretrain.pretrain) is not a package name: the attribute stays the module.
    import gristmill.train.pretrain
    from gristmill.train import pretrain

    assert pretrain is gristmill.train.pretrain and callable(pretrain.pretrain)


def test_importing_the_cli_and_the_packages_loads_no_torch() -> None:
    code = ("import sys, gristmill.cli, gristmill.model, gristmill.train, gristmill.serve; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
