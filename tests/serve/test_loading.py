"""Loading predictors from model folders: the refusals a user can fix are messages; an ONNX export loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gristmill.serve.backends import PredictError
from gristmill.serve.classifier import Classifier
from gristmill.serve.loading import load_classifier

from .conftest import THREADS


def test_load_errors_are_messages(tiny_ft: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(PredictError, match="ONNX export"):
        load_classifier(tiny_onnx, backend="torch")
    with pytest.raises(PredictError, match="backend"):
        load_classifier(tiny_ft, backend="tensorrt")
    task = json.loads((tiny_ft / "task.json").read_text())
    (tmp_path / "task.json").write_text(json.dumps({**task, "type": "token"}))
    with pytest.raises(PredictError, match="token"):
        load_classifier(tmp_path)
    assert isinstance(load_classifier(tiny_onnx, backend="onnx", threads=THREADS), Classifier)
