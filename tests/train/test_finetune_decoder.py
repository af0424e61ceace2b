"""Fine-tuning a decoder run for sequence classification (last-token pooling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tests.decoder_run import build_decoder_run

from gristmill.model.config import read_config
from gristmill.model.decoder import DecoderSequenceClassifier
from gristmill.serve.loading import classifier_from
from gristmill.train.finetune import FineTuneConfig, finetune
from gristmill.train.finetuned import FineTuneError, load_finetuned
from gristmill.train.tasks import load_task

# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
TASK = Path(__file__).resolve().parents[2] / "sample" / "task"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return build_decoder_run(tmp_path_factory.mktemp("ft-decoder"), steps=20)


def test_finetune_a_decoder_run_and_load_it_back(run, tmp_path):
    data = load_task(TASK / "train.jsonl", TASK / "dev.jsonl", TASK / "test.jsonl", max_length=64)
    cfg = FineTuneConfig(lr=1e-3, batch_size=16, epochs=2, patience=100)
    result = finetune(run, data, cfg, out=tmp_path / "ft", per_class=8, seed=0)
    assert isinstance(result.model, DecoderSequenceClassifier)
    assert result.metrics["model_size"] is None and 0.0 <= result.metrics["test"]["accuracy"] <= 1.0
    # The body starts from the pretrained decoder: with lr 0 its weights are the run's own.
    frozen = finetune(run, data, FineTuneConfig(lr=1e-12, batch_size=16, epochs=1, patience=100), per_class=8, seed=0)
    pretrained = load_file(str(run / "model.safetensors"))["decoder.embeddings.weight"]
    torch.testing.assert_close(frozen.model.decoder.embeddings.weight.detach(), pretrained, atol=1e-6, rtol=0)
    ft = load_finetuned(tmp_path / "ft")
    texts = ["The computer crashed again.", "Are we having fun yet?"]
    probs = classifier_from(ft).predict_proba(texts)
    assert probs.shape == (2, len(ft.labels))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    alone = classifier_from(ft).predict_proba(texts[:1])  # padded in a batch or alone: the same last token
    np.testing.assert_allclose(probs[:1], alone, atol=1e-5)


def test_token_tasks_need_an_encoder(run, tmp_path):
    from gristmill.train.finetuned import build_classifier
    from gristmill.train.tasks import TaskSpec

    spec = TaskSpec(type="token", labels=["O", "B-X"], max_length=32)
    with pytest.raises(FineTuneError, match="encoder"):
        build_classifier(read_config(run / "config.json"), spec)
